//! Where the job engine meets the analysis: the pipeline as a [`jobs::Analysis`], and the
//! engine's [`JobContext`] as the pipeline's [`Reporter`].

use std::sync::Arc;

use agents::model::Usage;
use agents::{Budget, Pipeline, PipelineError, Reporter, RunSpec};
use async_trait::async_trait;
use domain::AnalysisResult;
use jobs::{Analysis, AnalysisError, JobContext, JobStore, StepUsage};

use crate::budget::{self, DailyBudget};
use serde_json::Value;

pub struct TradingAnalysis {
    pipeline: Arc<Pipeline>,
    /// The owners' daily budget, and where their spending is read.
    daily: Option<(DailyBudget, Arc<dyn JobStore>)>,
}

impl TradingAnalysis {
    pub fn new(pipeline: Arc<Pipeline>) -> Self {
        Self { pipeline, daily: None }
    }

    /// Holds each run to what is left of its owner's `budget`, read before each model step.
    pub fn with_daily_budget(mut self, budget: DailyBudget, store: Arc<dyn JobStore>) -> Self {
        self.daily = (!budget.is_off()).then_some((budget, store));
        self
    }
}

#[async_trait]
impl Analysis for TradingAnalysis {
    async fn run(&self, ctx: JobContext) -> Result<AnalysisResult, AnalysisError> {
        let spec = ctx.spec();
        let run = RunSpec {
            symbol: spec.symbol.clone(),
            model_id: spec.model_id.clone(),
            analysts: spec.analysts.clone(),
            as_of: spec.as_of,
            options: spec.options.clone(),
        };
        let reporter = JobReporter { ctx: ctx.clone(), daily: self.daily.clone() };
        self.pipeline.run(&run, &reporter).await.map_err(|e| match e {
            PipelineError::Failed { step, message } => AnalysisError::Failed { step, message },
            PipelineError::Reporter(e) => e,
        })
    }
}

struct JobReporter {
    ctx: JobContext,
    daily: Option<(DailyBudget, Arc<dyn JobStore>)>,
}

#[async_trait]
impl Reporter for JobReporter {
    type Error = AnalysisError;

    fn checkpoint(&self, step: &str) -> Option<Value> {
        self.ctx.checkpoint(step).cloned()
    }

    async fn start_step(&self, step: &str, detail: Option<&str>) -> Result<(), AnalysisError> {
        self.ctx.start_step(step, detail).await
    }

    async fn step_progress(&self, step: &str, percent: u8, detail: Option<&str>) -> Result<(), AnalysisError> {
        self.ctx.step_progress(step, percent, detail).await
    }

    async fn complete_step(&self, step: &str, output: Value, usage: Usage, model: &str) -> Result<(), AnalysisError> {
        self.ctx.complete_step(step, output, step_usage(usage), model).await
    }

    async fn save_turn(
        &self,
        step: &str,
        key: &str,
        percent: u8,
        output: Value,
        usage: Usage,
        model: &str,
    ) -> Result<(), AnalysisError> {
        self.ctx.save_turn(step, key, percent, output, step_usage(usage), model).await
    }

    /// The daily budget less what the owner's runs spent in the window, read now, this run
    /// aside: the database holds what every run of the owner has spent so far (on every worker),
    /// so runs of one owner running at once share what is left.
    async fn daily_left(&self) -> Result<Option<Budget>, AnalysisError> {
        let Some((budget, store)) = &self.daily else {
            return Ok(None);
        };
        let now = store.clock().now();
        let mut used = store
            .usage_since(&self.ctx.spec().user_id, now - budget::WINDOW)
            .await
            .map_err(|e| AnalysisError::Engine(format!("reading the daily budget: {e}")))?;
        let own = self.ctx.spent();
        used.tokens = used.tokens.saturating_sub(own.tokens.total());
        used.cost_usd = (used.cost_usd - own.cost_usd).max(0.0);
        let left = budget.remaining(&used);
        Ok(Some(Budget { max_tokens: left.tokens, max_cost_usd: left.cost_usd }))
    }
}

fn step_usage(usage: Usage) -> StepUsage {
    StepUsage { llm_calls: usage.calls, tokens: usage.tokens, cost_usd: usage.cost_usd }
}
