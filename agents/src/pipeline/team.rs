//! The team after the analysts, for `standard` and `deep` runs:
//! Bull and Bear Researchers (a debate of N rounds) → Research Manager → Trader → Aggressive,
//! Conservative and Neutral Risk Analysts (a debate of N rounds) → Final Assessment (the
//! portfolio manager).
//!
//! Within a round the debaters run side by side: each answers the debate up to the previous
//! round, so no one waits for the other side's turn of the same round. Rounds, and the
//! managers and the trader, run one after another because each reads what came before.
//!
//! Each turn is checkpointed under `"<step> · round <n>"` as it completes, and the debate
//! steps complete (with their checkpoint) after their last round; a resumed attempt takes
//! back every stored turn and asks only for the missing ones.

use std::collections::HashSet;
use std::sync::Mutex;

use async_trait::async_trait;
use domain::{
    AnalystReport, Argument, FINAL_ASSESSMENT, RunOptions, TeamReport, TeamRole, TradePlan, ValidStart, Verdict,
};

use super::{Pipeline, PipelineError, Reporter, StepReports, StoredAssessment, model_failure, restore, stored};
use crate::assessment::{Assessment, Brief, Decision};
use crate::model::{CallProgress, Model, Usage};
use crate::snapshot::MarketSnapshot;

/// The checkpoint key of one debate turn.
pub fn turn_key(role: TeamRole, round: u32) -> String {
    format!("{} · round {round}", role.step_name())
}

pub(super) struct TeamRun<'a, R: Reporter> {
    pipeline: &'a Pipeline,
    spec: &'a ValidStart,
    reporter: &'a R,
    model: &'a dyn Model,
    manager: &'a dyn Model,
    data: &'a MarketSnapshot,
    reports: &'a [AnalystReport],
    rounds: u32,
    /// Steps this attempt has started (a resumed debate step starts at its first missing turn).
    started: Mutex<HashSet<&'static str>>,
}

/// Progress of one debate turn, as a share of its step: round `round` of `rounds`.
struct RoundProgress<'a, R: Reporter> {
    reporter: &'a R,
    step: &'a str,
    round: u32,
    rounds: u32,
    /// Whether this turn has written any text yet.
    wrote: std::sync::atomic::AtomicBool,
}

impl<R: Reporter> RoundProgress<'_, R> {
    fn percent(&self, within: u8) -> u8 {
        let done = f64::from(self.round - 1) * 100.0 + f64::from(within.min(100));
        (done / f64::from(self.rounds)).floor() as u8
    }

    fn detail(&self, what: &str) -> String {
        format!("round {} of {}: {what}", self.round, self.rounds)
    }
}

#[async_trait]
impl<R: Reporter> CallProgress for RoundProgress<'_, R> {
    async fn report(&self, percent: u8, detail: &str) {
        let _ = self.reporter.step_progress(self.step, self.percent(percent), Some(&self.detail(detail))).await;
    }

    /// A later round's text follows the earlier rounds' after a blank line.
    async fn text(&self, delta: &str) {
        if self.round > 1 && !self.wrote.swap(true, std::sync::atomic::Ordering::Relaxed) {
            let _ = self.reporter.step_text(self.step, "\n\n").await;
        }
        let _ = self.reporter.step_text(self.step, delta).await;
    }

    async fn stalled(&self, stall: Option<&domain::Stall>) {
        let _ = self.reporter.step_stalled(self.step, stall).await;
    }

    async fn log(&self, event: domain::LogEvent) {
        let _ = self.reporter.log(Some(self.step), event).await;
    }
}

type Result<T, E> = std::result::Result<T, PipelineError<E>>;

impl<'a, R: Reporter> TeamRun<'a, R> {
    pub(super) fn new(
        pipeline: &'a Pipeline,
        spec: &'a ValidStart,
        reporter: &'a R,
        model: &'a dyn Model,
        manager: &'a dyn Model,
        data: &'a MarketSnapshot,
        reports: &'a [AnalystReport],
    ) -> Self {
        let rounds = RunOptions::debate_rounds(&spec.options).max(1);
        Self { pipeline, spec, reporter, model, manager, data, reports, rounds, started: Mutex::new(HashSet::new()) }
    }

    fn brief(&self) -> Brief<'a> {
        Brief {
            data: self.data,
            reports: self.reports,
            debate: &[],
            verdict: None,
            plan: None,
            risk_debate: &[],
            round: 1,
            rounds: self.rounds,
        }
    }

    pub(super) async fn run(&self, spent: &mut Usage) -> Result<(StoredAssessment, TeamReport), R::Error> {
        let debate = self.debate(&TeamRole::RESEARCHERS, None, &[], spent).await?;
        let verdict = self.verdict(&debate, spent).await?;
        let plan = self.plan(&debate, &verdict, spent).await?;
        let risk_debate = self.debate(&TeamRole::RISK_DEBATERS, Some((&verdict, &plan)), &debate, spent).await?;
        let decision = self.decision(&debate, &verdict, &plan, &risk_debate, spent).await?;
        let report = TeamReport {
            depth: self.spec.options.depth,
            rounds: self.rounds,
            debate,
            verdict,
            risk_debate,
            decision: decision.reasoning.clone(),
            deep_model_id: self.spec.options.deep_model_id.as_ref().map(|m| m.to_string()),
        };
        Ok((decision, report))
    }

    /// The rounds of one debate. With `decided`, it is the risk debate over that plan, and
    /// `earlier` is the investment debate the risk analysts may read.
    async fn debate(
        &self,
        roles: &[TeamRole],
        decided: Option<(&Verdict, &TradePlan)>,
        earlier: &[Argument],
        spent: &mut Usage,
    ) -> Result<Vec<Argument>, R::Error> {
        let mut said: Vec<Argument> = Vec::new();
        for round in 1..=self.rounds {
            let mut turns: Vec<Option<Argument>> = vec![None; roles.len()];
            let mut todo = Vec::new();
            for (i, role) in roles.iter().enumerate() {
                match restore::<Argument>(self.reporter.checkpoint(&turn_key(*role, round))) {
                    Some(s) => {
                        spent.add(s.usage());
                        turns[i] = Some(s.output);
                    }
                    None => todo.push(i),
                }
            }
            if let Some(first) = todo.first() {
                self.pipeline
                    .check_budget(self.reporter, self.spec, spent, todo.len() as u32, roles[*first].step_name())
                    .await?;
                let mut brief = self.brief();
                brief.round = round;
                match decided {
                    None => brief.debate = &said,
                    Some((verdict, plan)) => {
                        brief.debate = earlier;
                        brief.verdict = Some(verdict);
                        brief.plan = Some(plan);
                        brief.risk_debate = &said;
                    }
                }
                let fresh =
                    futures::future::try_join_all(todo.iter().map(|i| self.turn(roles[*i], round, &brief))).await?;
                for (i, (argument, usage)) in todo.iter().zip(fresh) {
                    spent.add(usage);
                    turns[*i] = Some(argument);
                }
            }
            said.extend(turns.into_iter().flatten());
            // A side with nothing new has rested: further rounds would only repeat it.
            if said.iter().any(|a| a.round == round && a.rests) {
                break;
            }
        }
        for role in roles {
            let step = role.step_name();
            if self.reporter.checkpoint(step).is_none() {
                let theirs: Vec<&Argument> = said.iter().filter(|a| a.role == *role).collect();
                // The turns carried the cost; the step's checkpoint only marks it done.
                self.reporter
                    .complete_step(step, stored(&theirs, Usage::default()), Usage::default(), self.model.id())
                    .await?;
            }
        }
        Ok(said)
    }

    /// One debater's turn in one round, checkpointed when it completes.
    async fn turn(&self, role: TeamRole, round: u32, brief: &Brief<'_>) -> Result<(Argument, Usage), R::Error> {
        let step = role.step_name();
        let progress =
            RoundProgress { reporter: self.reporter, step, round, rounds: self.rounds, wrote: Default::default() };
        let first = self.started.lock().expect("not poisoned").insert(step);
        if first {
            self.reporter.start_step(step, Some(&progress.detail("waiting for the model"))).await?;
        } else {
            self.reporter
                .step_progress(step, progress.percent(0), Some(&progress.detail("waiting for the model")))
                .await?;
        }
        let (argument, usage) =
            self.model.argue(role, brief, &progress).await.map_err(|e| model_failure(step, self.model.id(), e))?;
        let usage = self.pipeline.priced(self.model.id(), usage);
        let percent = progress.percent(100);
        self.reporter
            .save_turn(step, &turn_key(role, round), percent, stored(&argument, usage), usage, self.model.id())
            .await?;
        Ok((argument, usage))
    }

    async fn verdict(&self, debate: &[Argument], spent: &mut Usage) -> Result<Verdict, R::Error> {
        let step = TeamRole::ResearchManager.step_name();
        if let Some(s) = restore::<Verdict>(self.reporter.checkpoint(step)) {
            spent.add(s.usage());
            return Ok(s.output);
        }
        self.pipeline.check_budget(self.reporter, self.spec, spent, 1, step).await?;
        self.reporter.start_step(step, Some("Waiting for the model")).await?;
        let progress = StepReports { reporter: self.reporter, step };
        let brief = Brief { debate, ..self.brief() };
        let (verdict, usage) =
            self.manager.judge(&brief, &progress).await.map_err(|e| model_failure(step, self.manager.id(), e))?;
        let usage = self.pipeline.priced(self.manager.id(), usage);
        self.reporter.complete_step(step, stored(&verdict, usage), usage, self.manager.id()).await?;
        spent.add(usage);
        Ok(verdict)
    }

    async fn plan(&self, debate: &[Argument], verdict: &Verdict, spent: &mut Usage) -> Result<TradePlan, R::Error> {
        let step = TeamRole::Trader.step_name();
        if let Some(s) = restore::<TradePlan>(self.reporter.checkpoint(step)) {
            spent.add(s.usage());
            return Ok(s.output);
        }
        self.pipeline.check_budget(self.reporter, self.spec, spent, 1, step).await?;
        self.reporter.start_step(step, Some("Waiting for the model")).await?;
        let progress = StepReports { reporter: self.reporter, step };
        let brief = Brief { debate, verdict: Some(verdict), ..self.brief() };
        let (plan, usage) =
            self.model.plan(&brief, &progress).await.map_err(|e| model_failure(step, self.model.id(), e))?;
        let usage = self.pipeline.priced(self.model.id(), usage);
        self.reporter.complete_step(step, stored(&plan, usage), usage, self.model.id()).await?;
        spent.add(usage);
        Ok(plan)
    }

    async fn decision(
        &self,
        debate: &[Argument],
        verdict: &Verdict,
        plan: &TradePlan,
        risk_debate: &[Argument],
        spent: &mut Usage,
    ) -> Result<StoredAssessment, R::Error> {
        let step = FINAL_ASSESSMENT;
        if let Some(s) = restore::<StoredAssessment>(self.reporter.checkpoint(step)) {
            spent.add(s.usage());
            return Ok(s.output);
        }
        self.pipeline.check_budget(self.reporter, self.spec, spent, 1, step).await?;
        self.reporter.start_step(step, Some("Waiting for the model")).await?;
        let progress = StepReports { reporter: self.reporter, step };
        let brief = Brief { debate, verdict: Some(verdict), plan: Some(plan), risk_debate, ..self.brief() };
        let (decision, usage) =
            self.manager.decide(&brief, &progress).await.map_err(|e| model_failure(step, self.manager.id(), e))?;
        let usage = self.pipeline.priced(self.manager.id(), usage);
        let Decision { assessment: Assessment { rating, confidence, summary, key_risks }, reasoning, trade } = decision;
        let out = StoredAssessment { rating, confidence, summary, key_risks, reasoning, trade };
        self.reporter.complete_step(step, stored(&out, usage), usage, self.manager.id()).await?;
        spent.add(usage);
        Ok(out)
    }
}
