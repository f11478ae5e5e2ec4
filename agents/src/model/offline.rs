//! The offline model: deterministic, rule-based analysts over the computed figures. It needs
//! no key and no network, gives the same answer for the same data, and says in every report
//! that no language model wrote it.
//!
//! The rules themselves are plain functions in [`crate::rules`] (the analysts and the final
//! assessment) and [`crate::team`] (the team after the analysts); this is the [`Model`] that
//! calls them.
//!
//! It can wait `simulated_latency` per call, like a hosted model would, so the progress view
//! has something to show; it reports what it is doing around that wait.

use std::time::Duration;

use async_trait::async_trait;
use domain::{AnalystKind, AnalystReport, Argument, TeamRole, TradePlan, Verdict};

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

    async fn think(&self, progress: &dyn CallProgress) {
        progress.report(30, "Weighing the signals").await;
        if !self.latency.is_zero() {
            tokio::time::sleep(self.latency).await;
        }
        progress.report(90, "Writing the report").await;
    }
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
        self.think(progress).await;
        Ok((rules::view(kind, data), Usage { calls: 1, ..Usage::default() }))
    }

    async fn assessment(
        &self,
        data: &MarketSnapshot,
        reports: &[AnalystReport],
        progress: &dyn CallProgress,
    ) -> Result<(Decision, Usage), ModelError> {
        self.think(progress).await;
        Ok((rules::final_assessment(data, reports), Usage { calls: 1, ..Usage::default() }))
    }

    async fn argue(
        &self,
        role: TeamRole,
        brief: &Brief<'_>,
        progress: &dyn CallProgress,
    ) -> Result<(Argument, Usage), ModelError> {
        self.think(progress).await;
        let argument = match (role, brief.plan) {
            (TeamRole::BullResearcher | TeamRole::BearResearcher, _) => team::research(role, brief),
            (_, Some(plan)) => team::risk(role, brief, plan),
            (_, None) => return Err(ModelError::InvalidAnswer(format!("{} needs the trader's plan", role.title()))),
        };
        Ok((argument, Usage { calls: 1, ..Usage::default() }))
    }

    async fn judge(&self, brief: &Brief<'_>, progress: &dyn CallProgress) -> Result<(Verdict, Usage), ModelError> {
        self.think(progress).await;
        Ok((team::judge(brief), Usage { calls: 1, ..Usage::default() }))
    }

    async fn plan(&self, brief: &Brief<'_>, progress: &dyn CallProgress) -> Result<(TradePlan, Usage), ModelError> {
        self.think(progress).await;
        let verdict = brief.verdict.ok_or_else(|| ModelError::InvalidAnswer("the trader needs a verdict".into()))?;
        Ok((team::plan(brief, verdict), Usage { calls: 1, ..Usage::default() }))
    }

    async fn decide(&self, brief: &Brief<'_>, progress: &dyn CallProgress) -> Result<(Decision, Usage), ModelError> {
        self.think(progress).await;
        let (Some(verdict), Some(plan)) = (brief.verdict, brief.plan) else {
            return Err(ModelError::InvalidAnswer("the portfolio manager needs a verdict and a plan".into()));
        };
        Ok((team::decide(brief, verdict, plan), Usage { calls: 1, ..Usage::default() }))
    }
}
