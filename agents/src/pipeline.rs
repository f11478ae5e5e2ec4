//! The Trading Agents pipeline: Data Collection → the selected analysts, concurrently →
//! (for `standard` and `deep` runs, the team: see [`team`]) → Final Assessment.
//!
//! It reports through a [`Reporter`] and knows nothing of how progress is stored. Each step's
//! output is handed to the reporter when the step completes, and each debate turn's when the
//! turn completes; on a later attempt the reporter returns those outputs as checkpoints and
//! they are not produced again — no model call is repeated and the calls they cost are counted
//! once.
//!
//! # Budget
//! A run may carry a token and a cost budget. Before each model step or debate round the
//! pipeline compares what was spent, plus what the next calls will likely cost (the mean of
//! the calls so far), with the budget; a run that would exceed it fails with "budget exceeded"
//! naming the step it did not start. Everything finished before stays checkpointed.
//!
//! A run is also held to what is left of its owner's daily budget, checked the same way and
//! asked of the reporter afresh at each check ([`Reporter::daily_left`]), so that runs of one
//! owner running at once share it rather than each taking all of it; a run that would go over
//! it fails with "daily budget exceeded".

mod team;

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::NaiveDate;
use domain::{
    AnalysisResult, AnalystKind, AnalystReport, Budget, DATA_COLLECTION, FINAL_ASSESSMENT, Figure, LogEvent,
    TokenUsage, ValidStart,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::analysts::key_figures;
use crate::assessment::{Assessment, Decision};
use crate::format::{figure, level, pct, signed_pct};
use crate::market::{BENCHMARK, LOOKBACK, MarketData, MarketError, Series, require_history};
use crate::model::{CallProgress, Model, ModelError, Models, Usage};
use crate::news::RssNews;
use crate::snapshot::{self, Headline, MarketSnapshot};
use crate::vader::Lexicon;

/// Where the pipeline reports. `Error` is the reporter's reason to stop (e.g. cancelled).
#[async_trait]
pub trait Reporter: Send + Sync {
    type Error: Send;

    /// The output of a step an earlier attempt completed.
    fn checkpoint(&self, step: &str) -> Option<Value>;

    async fn start_step(&self, step: &str, detail: Option<&str>) -> Result<(), Self::Error>;

    async fn step_progress(&self, step: &str, percent: u8, detail: Option<&str>) -> Result<(), Self::Error>;

    /// The next piece of the text a model writes for `step`, as it arrives; joined, the pieces
    /// of a step are its text.
    async fn step_text(&self, _step: &str, _delta: &str) -> Result<(), Self::Error> {
        Ok(())
    }

    /// The model of `step` has produced nothing for a while (`Some`), or writes again (`None`).
    async fn step_stalled(&self, _step: &str, _stall: Option<&domain::Stall>) -> Result<(), Self::Error> {
        Ok(())
    }

    /// An event for the run's log, in `step` (none for the run as a whole).
    async fn log(&self, _step: Option<&str>, _event: domain::LogEvent) -> Result<(), Self::Error> {
        Ok(())
    }

    /// Completes `step` with its `output` and what its calls to `model` (a catalog id) cost.
    async fn complete_step(&self, step: &str, output: Value, usage: Usage, model: &str) -> Result<(), Self::Error>;

    /// Stores one turn of a step that takes several (a debate round) under `key`, without
    /// completing the step; `percent` is the step's progress after it. A later attempt gets the
    /// turn back from [`Reporter::checkpoint`]`(key)`.
    async fn save_turn(
        &self,
        step: &str,
        key: &str,
        percent: u8,
        output: Value,
        usage: Usage,
        model: &str,
    ) -> Result<(), Self::Error>;

    /// What the run's owner may still spend on this run, now: their daily budget less what
    /// their other runs have spent so far. Asked before each model step or debate round, so
    /// that runs of one owner running at once share what is left. `None` is no limit.
    async fn daily_left(&self) -> Result<Option<Budget>, Self::Error> {
        Ok(None)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum PipelineError<E> {
    /// The analysis cannot be done; `message` is for the user.
    Failed { step: Option<String>, message: String },
    /// The reporter asked to stop.
    Reporter(E),
}

impl<E> From<E> for PipelineError<E> {
    fn from(e: E) -> Self {
        PipelineError::Reporter(e)
    }
}

/// A step's output as checkpointed: the output and what it cost.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Stored<T> {
    output: T,
    calls: u32,
    tokens: TokenUsage,
    #[serde(default)]
    cost_usd: f64,
}

impl<T> Stored<T> {
    fn usage(&self) -> Usage {
        Usage { calls: self.calls, tokens: self.tokens, cost_usd: self.cost_usd }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StoredAssessment {
    rating: domain::Rating,
    confidence: f64,
    summary: String,
    key_risks: Vec<String>,
    /// The portfolio manager's reasoning (team runs only).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    reasoning: String,
    /// Required: a checkpoint from before plans existed is decided again.
    trade: domain::Trade,
}

pub struct Pipeline {
    market: Arc<dyn MarketData>,
    models: Arc<Models>,
    news: Option<(Arc<RssNews>, Arc<Lexicon>)>,
}

struct StepReports<'a, R: Reporter> {
    reporter: &'a R,
    step: &'a str,
}

#[async_trait]
impl<R: Reporter> CallProgress for StepReports<'_, R> {
    async fn report(&self, percent: u8, detail: &str) {
        // A stop request surfaces at the next start/complete; the worker also drops the run.
        let _ = self.reporter.step_progress(self.step, percent, Some(detail)).await;
    }

    async fn text(&self, delta: &str) {
        let _ = self.reporter.step_text(self.step, delta).await;
    }

    async fn stalled(&self, stall: Option<&domain::Stall>) {
        let _ = self.reporter.step_stalled(self.step, stall).await;
    }

    async fn log(&self, event: domain::LogEvent) {
        let _ = self.reporter.log(Some(self.step), event).await;
    }
}

/// A checkpoint of another run, taken over by a run that reruns it: its output as it is, its
/// cost not counted again (the run that made it paid for it). `None` for a value that is not a
/// checkpoint this version can read.
pub fn taken_over(checkpoint: &Value) -> Option<Value> {
    let stored: Stored<Value> = serde_json::from_value(checkpoint.clone()).ok()?;
    Some(self::stored(&stored.output, Usage::default()))
}

fn restore<T: DeserializeOwned>(value: Option<Value>) -> Option<Stored<T>> {
    // An output that no longer decodes (written by another version) is recomputed.
    value.and_then(|v| serde_json::from_value(v).ok())
}

fn stored<T: Serialize>(output: &T, usage: Usage) -> Value {
    serde_json::to_value(Stored { output, calls: usage.calls, tokens: usage.tokens, cost_usd: usage.cost_usd })
        .expect("plain data")
}

fn model_failure<E>(step: &str, model: &str, e: ModelError) -> PipelineError<E> {
    let hint = match &e {
        ModelError::RateLimited(_) => " Try again in a few minutes.",
        ModelError::Unauthorized(_) => " Check the API key.",
        ModelError::Timeout(_) | ModelError::Silent { .. } | ModelError::Network(_) => {
            " The provider may be down; try again later."
        }
        ModelError::Upstream { status, .. } if *status >= 500 => " The provider may be down; try again later.",
        _ => "",
    };
    PipelineError::Failed { step: Some(step.to_string()), message: format!("{step} ({model}): {e}.{hint}") }
}

fn data_failure<E>(e: MarketError) -> PipelineError<E> {
    PipelineError::Failed { step: Some(DATA_COLLECTION.to_string()), message: format!("{DATA_COLLECTION}: {e}.") }
}

impl Pipeline {
    pub fn new(market: Arc<dyn MarketData>, models: Arc<Models>) -> Self {
        Self { market, models, news: None }
    }

    pub fn with_news(mut self, news: Arc<RssNews>, lexicon: Arc<Lexicon>) -> Self {
        self.news = Some((news, lexicon));
        self
    }

    pub fn market(&self) -> &Arc<dyn MarketData> {
        &self.market
    }

    pub fn models(&self) -> &Arc<Models> {
        &self.models
    }

    pub async fn run<R: Reporter>(
        &self,
        spec: &ValidStart,
        reporter: &R,
    ) -> Result<AnalysisResult, PipelineError<R::Error>> {
        let model = self
            .models
            .get(spec.model_id.as_str())
            .map_err(|e| PipelineError::Failed { step: None, message: format!("{e}.") })?;
        let manager = match &spec.options.deep_model_id {
            Some(id) => self
                .models
                .get(id.as_str())
                .map_err(|e| PipelineError::Failed { step: None, message: format!("{e}.") })?,
            None => model.clone(),
        };
        let mut usage = Usage::default();

        let data = match restore::<MarketSnapshot>(reporter.checkpoint(DATA_COLLECTION)) {
            Some(s) => s.output,
            None => {
                let data = self.collect(spec, reporter).await?;
                reporter
                    .complete_step(
                        DATA_COLLECTION,
                        stored(&data, Usage::default()),
                        Usage::default(),
                        spec.model_id.as_str(),
                    )
                    .await?;
                data
            }
        };

        let mut reports: BTreeMap<AnalystKind, AnalystReport> = BTreeMap::new();
        let mut todo = Vec::new();
        for kind in &spec.analysts {
            match restore::<AnalystReport>(reporter.checkpoint(kind.step_name())) {
                Some(s) => {
                    usage.add(s.usage());
                    reports.insert(*kind, s.output);
                }
                None => todo.push(*kind),
            }
        }
        if let Some(first) = todo.first() {
            self.check_budget(reporter, spec, &usage, todo.len() as u32, first.step_name()).await?;
        }
        let fresh =
            futures::future::try_join_all(todo.iter().map(|k| self.analyst(*k, &data, model.as_ref(), reporter)))
                .await?;
        for (report, u) in fresh {
            usage.add(u);
            reports.insert(report.analyst, report);
        }
        let reports: Vec<AnalystReport> = reports.into_values().collect();

        let (assessment, team) = if spec.options.depth.is_quick() {
            let assessment = match restore::<StoredAssessment>(reporter.checkpoint(FINAL_ASSESSMENT)) {
                Some(s) => {
                    usage.add(s.usage());
                    s.output
                }
                None => {
                    self.check_budget(reporter, spec, &usage, 1, FINAL_ASSESSMENT).await?;
                    reporter.start_step(FINAL_ASSESSMENT, Some("Waiting for the model")).await?;
                    let progress = StepReports { reporter, step: FINAL_ASSESSMENT };
                    let (a, u) = model
                        .assessment(&data, &reports, &progress)
                        .await
                        .map_err(|e| model_failure(FINAL_ASSESSMENT, model.id(), e))?;
                    let u = self.priced(model.id(), u);
                    let Decision {
                        assessment: Assessment { rating, confidence, summary, key_risks },
                        reasoning,
                        trade,
                    } = a;
                    let out = StoredAssessment { rating, confidence, summary, key_risks, reasoning, trade };
                    reporter.complete_step(FINAL_ASSESSMENT, stored(&out, u), u, model.id()).await?;
                    usage.add(u);
                    out
                }
            };
            (assessment, None)
        } else {
            let run = team::TeamRun::new(self, spec, reporter, model.as_ref(), manager.as_ref(), &data, &reports);
            let (assessment, report) = run.run(&mut usage).await?;
            (assessment, Some(report))
        };

        let rule_based = model.rule_based() && manager.rule_based();
        // One model: price the total at once (the per-step costs summed differ in the last bits).
        let cost_usd = if model.id() == manager.id() { self.cost(model.id(), usage.tokens) } else { usage.cost_usd };
        Ok(AnalysisResult {
            symbol: data.symbol.clone(),
            as_of: data.as_of,
            model_id: spec.model_id.to_string(),
            rating: assessment.rating,
            confidence: assessment.confidence,
            summary: assessment.summary,
            trade: Some(assessment.trade),
            key_risks: assessment.key_risks,
            reports,
            figures: headline_figures(&data),
            chart: data.chart.clone(),
            llm_calls: usage.calls,
            tokens: usage.tokens,
            rule_based,
            cost_usd: (!rule_based).then_some(cost_usd),
            team,
            invest_analyst: None,
            risk_analyst: None,
            sentiment_analyst: None,
            technical_analyst: None,
            final_assessment: None,
        }
        .with_blueprint_fields())
    }

    /// Fails the run when what it spent, plus what `calls` more calls will likely cost, is over
    /// its budget, or over what is left of its owner's daily budget (read from the reporter
    /// now). The likely cost of a call is the mean of the calls so far.
    async fn check_budget<R: Reporter>(
        &self,
        reporter: &R,
        spec: &ValidStart,
        spent: &Usage,
        calls: u32,
        next: &str,
    ) -> Result<(), PipelineError<R::Error>> {
        let o = &spec.options;
        let own = Budget { max_tokens: o.max_tokens, max_cost_usd: o.max_cost_usd };
        let (what, of) = match over_budget(&own, spent, calls, "allowed") {
            Some(what) => (what, "budget exceeded"),
            None => {
                let daily = reporter.daily_left().await?;
                match daily.as_ref().and_then(|d| over_budget(d, spent, calls, "left of the daily budget")) {
                    Some(what) => (what, "daily budget exceeded"),
                    None => return Ok(()),
                }
            }
        };
        Err(PipelineError::Failed {
            step: Some(next.to_string()),
            message: format!("{of}: {what}; {next} would go over it. Finished steps are kept."),
        })
    }

    /// `usage` with its cost at the catalog's prices of `model_id`.
    fn priced(&self, model_id: &str, mut usage: Usage) -> Usage {
        usage.cost_usd = self.cost(model_id, usage.tokens);
        usage
    }

    /// US dollars for these tokens at the catalog's prices (per million tokens).
    fn cost(&self, model_id: &str, tokens: TokenUsage) -> f64 {
        self.models
            .catalog()
            .get(model_id)
            .map(|e| {
                (tokens.prompt as f64 * e.input_price_per_mtok + tokens.completion as f64 * e.output_price_per_mtok)
                    / 1e6
            })
            .unwrap_or(0.0)
    }

    async fn collect<R: Reporter>(
        &self,
        spec: &ValidStart,
        reporter: &R,
    ) -> Result<MarketSnapshot, PipelineError<R::Error>> {
        let step = DATA_COLLECTION;
        reporter.start_step(step, Some(&format!("Loading {} prices", spec.symbol))).await?;
        let series = self.market.daily(spec.symbol.as_str(), spec.as_of, LOOKBACK).await.map_err(data_failure)?;
        let as_of = series.last_date().expect("non-empty");
        require_history(&series, as_of).map_err(data_failure)?;
        reporter.log(Some(step), self.read(&series)).await?;
        reporter.step_progress(step, 40, Some("Loading the S&P 500")).await?;
        let benchmark = self.benchmark(&series, as_of).await;
        if let Some(b) = benchmark.as_ref().filter(|b| b.symbol != series.symbol) {
            reporter.log(Some(step), self.read(b)).await?;
        }
        reporter.step_progress(step, 70, Some("Computing indicators")).await?;
        let mut data = snapshot::compute(&series, benchmark.as_ref(), self.market.name());
        if let (Some((news, lexicon)), None) = (&self.news, spec.as_of) {
            reporter.step_progress(step, 85, Some("Reading headlines")).await?;
            match news.headlines(spec.symbol.as_str()).await {
                Ok(titles) => {
                    data.headlines =
                        titles.into_iter().map(|t| Headline { score: lexicon.compound(&t), title: t }).collect();
                    let headlines = data.headlines.len() as u32;
                    reporter.log(Some(step), LogEvent::News { headlines, error: None }).await?;
                }
                // Headlines are a bonus: the analysis goes on from prices alone.
                Err(e) => {
                    tracing::warn!(symbol = %spec.symbol, error = %e, "no headlines");
                    reporter.log(Some(step), LogEvent::News { headlines: 0, error: Some(e.to_string()) }).await?;
                }
            }
        }
        Ok(data)
    }

    /// The log's note of a series read.
    fn read(&self, series: &Series) -> LogEvent {
        let (first, last) = (series.first_date(), series.last_date());
        LogEvent::Data {
            source: self.market.name().to_string(),
            symbol: series.symbol.clone(),
            rows: series.bars.len() as u32,
            first: first.unwrap_or_default(),
            last: last.unwrap_or_default(),
        }
    }

    /// The S&P 500 over the same window, or its last stretch before the window when the
    /// series ends earlier (the note on beta then says so); `None` when there is none.
    async fn benchmark(&self, series: &Series, as_of: NaiveDate) -> Option<Series> {
        if series.symbol == BENCHMARK {
            return Some(series.clone());
        }
        match self.market.daily(BENCHMARK, Some(as_of), LOOKBACK).await {
            Ok(s) => Some(s),
            Err(MarketError::OutOfRange { last, as_of: wanted, .. }) if wanted > last => {
                self.market.daily(BENCHMARK, Some(last), LOOKBACK).await.ok()
            }
            Err(e) => {
                tracing::warn!(error = %e, "no benchmark data");
                None
            }
        }
    }

    async fn analyst<R: Reporter>(
        &self,
        kind: AnalystKind,
        data: &MarketSnapshot,
        model: &dyn Model,
        reporter: &R,
    ) -> Result<(AnalystReport, Usage), PipelineError<R::Error>> {
        let step = kind.step_name();
        reporter.start_step(step, Some("Waiting for the model")).await?;
        let progress = StepReports { reporter, step };
        let (view, usage) =
            model.analyst_view(kind, data, &progress).await.map_err(|e| model_failure(step, model.id(), e))?;
        let usage = self.priced(model.id(), usage);
        let report = AnalystReport {
            analyst: kind,
            stance: view.stance,
            confidence: view.confidence,
            key_figures: key_figures(kind, data),
            report: view.report,
        };
        reporter.complete_step(step, stored(&report, usage), usage, model.id()).await?;
        Ok((report, usage))
    }
}

/// What `spent` is of `budget` when it, plus what `calls` more calls will likely cost, goes over.
fn over_budget(budget: &Budget, spent: &Usage, calls: u32, allowed: &str) -> Option<String> {
    let per_call = |total: f64| if spent.calls > 0 { total / f64::from(spent.calls) } else { 0.0 };
    let over = |used: f64, max: f64| used >= max || used + per_call(used) * f64::from(calls) > max;
    let used_tokens = spent.tokens.total() as f64;
    if let Some(max) = budget.max_tokens.filter(|max| over(used_tokens, *max as f64)) {
        return Some(format!("{} tokens used of {max} {allowed}", spent.tokens.total()));
    }
    if let Some(max) = budget.max_cost_usd.filter(|max| over(spent.cost_usd, *max)) {
        return Some(format!("${:.4} spent of ${max:.4} {allowed}", spent.cost_usd));
    }
    None
}

/// The figures table of a result.
fn headline_figures(d: &MarketSnapshot) -> Vec<Figure> {
    vec![
        figure("Last close", Some(d.last_close), level),
        figure("1-day change", d.change_1d, signed_pct),
        figure("12-month return", d.momentum_12m, signed_pct),
        figure("52-week high", d.high_52w, level),
        figure("52-week low", d.low_52w, level),
        figure("Volatility (1Y)", d.volatility_1y, pct),
        figure("Max drawdown (1Y)", d.max_drawdown_1y, |v| signed_pct(-v)),
        figure("RSI(14)", d.rsi14, |v| format!("{v:.1}")),
        figure("Beta vs S&P 500", d.beta, |v| format!("{v:.2}")),
    ]
}
