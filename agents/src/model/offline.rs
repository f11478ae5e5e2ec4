//! The offline model: deterministic, rule-based analysts over the computed figures. It needs
//! no key and no network, gives the same answer for the same data, and says in every report
//! that no language model wrote it.
//!
//! The rules themselves are plain functions in [`crate::rules`] (the analysts and the final
//! assessment) and [`crate::team`] (the team after the analysts); this is the [`Model`] that
//! calls them.
//!
//! It can take `simulated_latency` per call, like a hosted model would, so the progress view
//! has something to show: it works its answer out at once, then writes its text in pieces
//! spread over that time, as a hosted model streams its tokens.

use std::time::Duration;

use async_trait::async_trait;
use domain::{AnalystKind, AnalystReport, Argument, LogEvent, TeamRole, TradePlan, Verdict};

use super::{CallProgress, Model, ModelError, Usage};
use crate::assessment::{AnalystView, Brief, Decision};
use crate::snapshot::MarketSnapshot;
use crate::{rules, team};

pub struct OfflineModel {
    latency: Duration,
}

impl OfflineModel {
    pub fn new(latency: Duration) -> Self {
        Self { latency }
    }

    /// Writes `text` in pieces spread over the simulated latency (all at once without one).
    async fn write(&self, text: &str, progress: &dyn CallProgress) {
        let asked = tokio::time::Instant::now();
        let mut first = None;
        progress.report(30, "Weighing the signals").await;
        let pieces = pieces(text, self.pieces());
        let pause = self.latency / pieces.len().max(1) as u32;
        for (i, piece) in pieces.iter().enumerate() {
            if !pause.is_zero() {
                tokio::time::sleep(pause).await;
            }
            first.get_or_insert_with(|| asked.elapsed());
            progress.text(piece).await;
            let done = 30 + (60 * (i + 1) / pieces.len()) as u8;
            progress.report(done, "Writing the report").await;
        }
        progress.report(90, "Writing the report").await;
        let ms = |d: Duration| d.as_millis() as u64;
        progress
            .log(LogEvent::Call {
                model: self.id().to_string(),
                tokens_in: 0,
                tokens_out: 0,
                cost_usd: 0.0,
                latency_ms: ms(asked.elapsed()),
                first_output_ms: first.map(ms),
            })
            .await;
    }

    /// How many pieces a text is written in: one every ~200 ms of latency, 1 to 30.
    fn pieces(&self) -> usize {
        (self.latency.as_millis() / PIECE_EVERY_MS).clamp(1, 30) as usize
    }
}

const PIECE_EVERY_MS: u128 = 200;

/// `text` cut into at most `n` pieces of about equal length, at word ends where it can be and
/// always at character boundaries; joined they are `text`.
fn pieces(text: &str, n: usize) -> Vec<&str> {
    if text.is_empty() {
        return vec![];
    }
    let target = text.len().div_ceil(n.max(1));
    let mut out = Vec::with_capacity(n);
    let mut rest = text;
    while !rest.is_empty() {
        if rest.len() <= target || out.len() + 1 == n {
            out.push(rest);
            break;
        }
        let mut cut = target;
        while !rest.is_char_boundary(cut) {
            cut += 1;
        }
        // Move the cut to the next space, unless there is none soon.
        if let Some(space) = rest[cut..].find(' ').filter(|&s| s < target) {
            cut += space + 1;
        }
        out.push(&rest[..cut]);
        rest = &rest[cut..];
    }
    out
}

#[async_trait]
impl Model for OfflineModel {
    fn id(&self) -> &str {
        "offline"
    }

    fn rule_based(&self) -> bool {
        true
    }

    async fn analyst_view(
        &self,
        kind: AnalystKind,
        data: &MarketSnapshot,
        progress: &dyn CallProgress,
    ) -> Result<(AnalystView, Usage), ModelError> {
        let view = rules::view(kind, data);
        self.write(&view.report, progress).await;
        Ok((view, Usage { calls: 1, ..Usage::default() }))
    }

    async fn assessment(
        &self,
        data: &MarketSnapshot,
        reports: &[AnalystReport],
        progress: &dyn CallProgress,
    ) -> Result<(Decision, Usage), ModelError> {
        let decision = rules::final_assessment(data, reports);
        self.write(&decision.assessment.summary, progress).await;
        Ok((decision, Usage { calls: 1, ..Usage::default() }))
    }

    async fn argue(
        &self,
        role: TeamRole,
        brief: &Brief<'_>,
        progress: &dyn CallProgress,
    ) -> Result<(Argument, Usage), ModelError> {
        let argument = match (role, brief.plan) {
            (TeamRole::BullResearcher | TeamRole::BearResearcher, _) => team::research(role, brief),
            (_, Some(plan)) => team::risk(role, brief, plan),
            (_, None) => return Err(ModelError::InvalidAnswer(format!("{} needs the trader's plan", role.title()))),
        };
        self.write(&argument.text, progress).await;
        Ok((argument, Usage { calls: 1, ..Usage::default() }))
    }

    async fn judge(&self, brief: &Brief<'_>, progress: &dyn CallProgress) -> Result<(Verdict, Usage), ModelError> {
        let verdict = team::judge(brief);
        self.write(&verdict.reasoning, progress).await;
        Ok((verdict, Usage { calls: 1, ..Usage::default() }))
    }

    async fn plan(&self, brief: &Brief<'_>, progress: &dyn CallProgress) -> Result<(TradePlan, Usage), ModelError> {
        let verdict = brief.verdict.ok_or_else(|| ModelError::InvalidAnswer("the trader needs a verdict".into()))?;
        let plan = team::plan(brief, verdict);
        self.write(&plan.reasoning, progress).await;
        Ok((plan, Usage { calls: 1, ..Usage::default() }))
    }

    async fn decide(&self, brief: &Brief<'_>, progress: &dyn CallProgress) -> Result<(Decision, Usage), ModelError> {
        let (Some(verdict), Some(plan)) = (brief.verdict, brief.plan) else {
            return Err(ModelError::InvalidAnswer("the portfolio manager needs a verdict and a plan".into()));
        };
        let decision = team::decide(brief, verdict, plan);
        self.write(&decision.reasoning, progress).await;
        Ok((decision, Usage { calls: 1, ..Usage::default() }))
    }
}

#[cfg(test)]
mod tests {
    use super::pieces;

    #[test]
    fn pieces_join_to_the_text_at_char_boundaries() {
        let text = "Ünïcode — text with spaces and a verylongwordwithoutspacesatall, more words here.";
        for n in 1..12 {
            let p = pieces(text, n);
            assert!(p.len() <= n && !p.is_empty(), "{n}: {p:?}");
            assert_eq!(p.concat(), text);
        }
        assert!(pieces("", 3).is_empty());
    }
}
