//! Models behind one trait: the built-in offline analysts and OpenAI-compatible chat APIs.
//!
//! A model writes two things: one analyst's view (stance, confidence, Markdown report) and the
//! final assessment, whose shapes are in [`crate::assessment`]. The figures it reasons over are always computed by us
//! ([`crate::analysts::key_figures`]); what a model adds is judgement and prose.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use domain::{AnalystKind, AnalystReport, Argument, ModelInfo, TeamRole, TradePlan, Verdict};

use crate::assessment::{AnalystView, Brief, Decision};
use crate::retry::RetryPolicy;
use crate::snapshot::MarketSnapshot;

pub mod catalog;
pub mod offline;
pub mod openai;
pub mod prompt;
pub mod readable;
pub mod team_prompt;

pub use catalog::{Catalog, CatalogEntry, Provider};

/// Model calls made, tokens spent, and what they cost (set by the pipeline from the catalog's
/// prices; models leave the cost 0).
pub use domain::Usage;

/// Where a model call reports how far along its answer is (0–100, with a word on what it does).
#[async_trait]
pub trait CallProgress: Send + Sync {
    async fn report(&self, percent: u8, detail: &str);

    /// The next piece of the text the model is writing, as it arrives. The pieces of one step,
    /// joined, are its text.
    async fn text(&self, _delta: &str) {}

    /// The model has produced nothing for a while (`Some`), or is writing again after such a
    /// silence, or is about to be asked again (`None`).
    async fn stalled(&self, _stall: Option<&domain::Stall>) {}

    /// An event for the run's log: an answered call, a retry.
    async fn log(&self, _event: domain::LogEvent) {}
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ModelError {
    #[error("the model '{0}' is not in the catalog")]
    Unknown(String),
    #[error("the model '{0}' cannot be used: {1}")]
    Unavailable(String, String),
    #[error("the model provider kept rate limiting requests ({0} tries)")]
    RateLimited(u32),
    #[error("the model provider failed ({status}): {message}")]
    Upstream { status: u16, message: String },
    #[error("the model provider rejected the API key ({0})")]
    Unauthorized(u16),
    #[error("the model did not answer in time ({0} tries)")]
    Timeout(u32),
    /// The call was given up after `secs` seconds without any output, `tries` times.
    #[error("no output from {model} for {secs} s ({tries} tries)")]
    Silent { model: String, secs: u64, tries: u32 },
    #[error("the model's answer could not be used: {0}")]
    InvalidAnswer(String),
    #[error("the model provider cannot be reached: {0}")]
    Network(String),
}

#[async_trait]
pub trait Model: Send + Sync + 'static {
    fn id(&self) -> &str;

    /// True for the built-in rule-based model.
    fn rule_based(&self) -> bool;

    async fn analyst_view(
        &self,
        kind: AnalystKind,
        data: &MarketSnapshot,
        progress: &dyn CallProgress,
    ) -> Result<(AnalystView, Usage), ModelError>;

    /// The final assessment of a quick run, with the trade settled for its rating.
    async fn assessment(
        &self,
        data: &MarketSnapshot,
        reports: &[AnalystReport],
        progress: &dyn CallProgress,
    ) -> Result<(Decision, Usage), ModelError>;

    /// One debate turn: a bull or bear researcher, or a risk analyst, in `brief.round`.
    async fn argue(
        &self,
        role: TeamRole,
        brief: &Brief<'_>,
        progress: &dyn CallProgress,
    ) -> Result<(Argument, Usage), ModelError>;

    /// The research manager's verdict on the bull/bear debate.
    async fn judge(&self, brief: &Brief<'_>, progress: &dyn CallProgress) -> Result<(Verdict, Usage), ModelError>;

    /// The trader's plan from the verdict.
    async fn plan(&self, brief: &Brief<'_>, progress: &dyn CallProgress) -> Result<(TradePlan, Usage), ModelError>;

    /// The portfolio manager's decision, after the risk debate.
    async fn decide(&self, brief: &Brief<'_>, progress: &dyn CallProgress) -> Result<(Decision, Usage), ModelError>;
}

/// What a call of a hosted model is expected to take when its catalog entry does not say.
pub const HOSTED_CALL_DEFAULT: Duration = Duration::from_secs(10);
/// What the offline model's rules take beyond its simulated latency.
const OFFLINE_CALL: Duration = Duration::from_millis(50);

/// How the registry builds models.
#[derive(Debug, Clone)]
pub struct ModelsConfig {
    /// What the offline model waits per call, to behave like a hosted model (`SIMULATED_LATENCY_MS`).
    pub simulated_latency: Duration,
    /// Per-call timeout when the catalog entry sets none.
    pub call_timeout: Duration,
    /// A call that has produced nothing for this long is reported stalled (`STALL_AFTER_SECS`).
    pub stall_after: Duration,
    /// A call that has produced nothing for this long — from the request, or from its last
    /// output — is abandoned and retried (`STALL_TIMEOUT_SECS`).
    pub stall_timeout: Duration,
    pub retry: RetryPolicy,
}

impl Default for ModelsConfig {
    fn default() -> Self {
        Self {
            simulated_latency: Duration::ZERO,
            call_timeout: Duration::from_secs(120),
            stall_after: Duration::from_secs(30),
            stall_timeout: Duration::from_secs(180),
            retry: RetryPolicy::default(),
        }
    }
}

/// The models of a catalog, with their keys read from the environment once.
pub struct Models {
    catalog: Catalog,
    keys: HashMap<String, String>,
    client: reqwest::Client,
    config: ModelsConfig,
    offline: Arc<offline::OfflineModel>,
    /// Models whose provider did not answer the probe at start, with why ([`Models::probe`]).
    unreachable: std::sync::RwLock<HashMap<String, String>>,
}

impl Models {
    /// `env` looks up API key variables (the process environment in production).
    pub fn new(
        catalog: Catalog,
        env: &dyn Fn(&str) -> Option<String>,
        client: reqwest::Client,
        config: ModelsConfig,
    ) -> Self {
        let keys = catalog
            .entries()
            .iter()
            .filter_map(|e| e.api_key_env.as_ref())
            .filter_map(|var| env(var).filter(|v| !v.trim().is_empty()).map(|v| (var.clone(), v)))
            .collect();
        let offline = Arc::new(offline::OfflineModel::new(config.simulated_latency));
        Self { catalog, keys, client, config, offline, unreachable: Default::default() }
    }

    /// Asks the provider of every hosted model that has its key whether it answers at all
    /// (`GET <base_url>/models`, any HTTP answer will do), side by side, within `timeout`; those
    /// that do not are listed as unavailable with the reason. They can still be asked for: a
    /// provider down at start may be up by the time a run needs it.
    pub async fn probe(&self, timeout: Duration) {
        let keys = |var: &str| self.keys.get(var).cloned();
        let hosted = self.catalog.entries().iter().filter(|e| {
            e.provider == Provider::OpenaiCompatible && e.unavailable_reason(&keys).is_none() && e.base_url.is_some()
        });
        let answers = futures::future::join_all(hosted.map(|e| async move {
            let url = format!("{}/models", e.base_url.as_deref().unwrap_or_default().trim_end_matches('/'));
            let key = e.api_key_env.as_ref().and_then(|v| self.keys.get(v));
            let mut request = self.client.get(url).timeout(timeout);
            if let Some(key) = key {
                request = request.bearer_auth(key);
            }
            let failure = match request.send().await {
                Ok(_) => None,
                Err(err) if err.is_timeout() => {
                    Some(format!("{} did not answer within {timeout:?} at start", e.provider_name()))
                }
                Err(_) => Some(format!("{} could not be reached at start", e.provider_name())),
            };
            (e.id.clone(), failure)
        }))
        .await;
        let unreachable = answers.into_iter().filter_map(|(id, why)| why.map(|w| (id, w))).collect();
        *self.unreachable.write().expect("not poisoned") = unreachable;
    }

    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    pub fn infos(&self) -> Vec<ModelInfo> {
        let unreachable = self.unreachable.read().expect("not poisoned");
        let mut infos = self.catalog.infos(&|var| self.keys.get(var).cloned());
        for info in infos.iter_mut() {
            if let Some(why) = unreachable.get(&info.id) {
                info.available = false;
                info.reason = Some(why.clone());
            }
        }
        infos
    }

    /// How long one call of model `id` usually takes: the catalog's `expected_call_secs`, or
    /// for the offline model its simulated latency, or [`HOSTED_CALL_DEFAULT`].
    pub fn expected_call(&self, id: &str) -> Duration {
        match self.catalog.get(id) {
            Some(e) if e.expected_call_secs.is_some_and(|s| s.is_finite() && s >= 0.0) => {
                Duration::from_secs_f64(e.expected_call_secs.unwrap_or_default())
            }
            Some(e) if e.provider == Provider::Offline => self.config.simulated_latency + OFFLINE_CALL,
            _ => HOSTED_CALL_DEFAULT,
        }
    }

    pub fn get(&self, id: &str) -> Result<Arc<dyn Model>, ModelError> {
        let entry = self.catalog.get(id).ok_or_else(|| ModelError::Unknown(id.to_string()))?;
        if let Some(reason) = entry.unavailable_reason(&|var| self.keys.get(var).cloned()) {
            return Err(ModelError::Unavailable(id.to_string(), reason));
        }
        Ok(match entry.provider {
            Provider::Offline => self.offline.clone(),
            Provider::OpenaiCompatible => {
                let key = entry.api_key_env.as_ref().and_then(|v| self.keys.get(v)).cloned();
                Arc::new(openai::ChatModel::new(entry.clone(), key, self.client.clone(), &self.config))
            }
        })
    }
}
