//! The pipeline with an in-memory reporter: concurrent analysts, resumption from checkpoints,
//! determinism of the offline model, failures named by step.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use agents::market::bundled::BundledData;
use agents::model::{Catalog, Models, ModelsConfig, Usage};
use agents::retry::RetryPolicy;
use agents::testing::FakeLlm;
use agents::{Pipeline, PipelineError, Reporter, RunSpec};
use async_trait::async_trait;
use domain::{AnalystKind, Rating, Stance};
use serde_json::Value;

#[derive(Default)]
struct Memory {
    checkpoints: Mutex<HashMap<String, Value>>,
    /// (step, event, when)
    events: Mutex<Vec<(String, &'static str, Instant)>>,
    usage: Mutex<Usage>,
}

#[async_trait]
impl Reporter for Memory {
    type Error = ();

    fn checkpoint(&self, step: &str) -> Option<Value> {
        self.checkpoints.lock().unwrap().get(step).cloned()
    }

    async fn start_step(&self, step: &str, _: Option<&str>) -> Result<(), ()> {
        self.events.lock().unwrap().push((step.into(), "start", Instant::now()));
        Ok(())
    }

    async fn step_progress(&self, _: &str, _: u8, _: Option<&str>) -> Result<(), ()> {
        Ok(())
    }

    async fn complete_step(&self, step: &str, output: Value, usage: Usage) -> Result<(), ()> {
        self.events.lock().unwrap().push((step.into(), "complete", Instant::now()));
        self.checkpoints.lock().unwrap().insert(step.into(), output);
        self.usage.lock().unwrap().add(usage);
        Ok(())
    }
}

impl Memory {
    fn started(&self) -> Vec<String> {
        self.events.lock().unwrap().iter().filter(|e| e.1 == "start").map(|e| e.0.clone()).collect()
    }

    fn at(&self, step: &str, what: &str) -> Instant {
        self.events.lock().unwrap().iter().find(|e| e.0 == step && e.1 == what).unwrap().2
    }
}

fn market() -> Arc<BundledData> {
    Arc::new(BundledData::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/market")).unwrap())
}

fn pipeline(latency: Duration, catalog: Catalog) -> Pipeline {
    let config = ModelsConfig {
        simulated_latency: latency,
        retry: RetryPolicy { max_retries: 0, ..RetryPolicy::default() },
        ..ModelsConfig::default()
    };
    let models = Models::new(catalog, &|_| Some("k".into()), reqwest::Client::new(), config);
    Pipeline::new(market(), Arc::new(models))
}

fn spec(model: &str, analysts: &[AnalystKind]) -> RunSpec {
    RunSpec {
        symbol: "AAPL".into(),
        model_id: model.into(),
        analysts: analysts.to_vec(),
        as_of: Some("2019-12-31".parse().unwrap()),
    }
}

#[tokio::test]
async fn analysts_run_side_by_side() {
    let p = pipeline(Duration::from_millis(300), Catalog::builtin());
    let m = Memory::default();
    let started = Instant::now();
    let r = p.run(&spec("offline", &AnalystKind::ALL), &m).await.unwrap();
    let took = started.elapsed();
    // Every analyst starts before any finishes.
    let last_start = AnalystKind::ALL.iter().map(|a| m.at(a.step_name(), "start")).max().unwrap();
    let first_end = AnalystKind::ALL.iter().map(|a| m.at(a.step_name(), "complete")).min().unwrap();
    assert!(last_start < first_end);
    // One analyst's wait plus the final's, not four plus one.
    assert!(took < Duration::from_millis(1200), "{took:?}");
    assert_eq!(r.reports.len(), 4);
    assert_eq!(r.llm_calls, 5);
    assert_eq!(r.as_of.to_string(), "2019-12-31");
    assert!(r.rule_based);
    assert_eq!(r.chart.len(), 253, "a year of closes up to the as-of date");
    assert!(r.key_risks.iter().any(|k| k.contains("Prices only")));
}

#[tokio::test]
async fn the_offline_model_is_deterministic() {
    let p = pipeline(Duration::ZERO, Catalog::builtin());
    let a = p.run(&spec("offline", &[AnalystKind::Invest, AnalystKind::Risk]), &Memory::default()).await.unwrap();
    let b = p.run(&spec("offline", &[AnalystKind::Risk, AnalystKind::Invest]), &Memory::default()).await.unwrap();
    assert_eq!(a, b);
    // AAPL at the end of 2019: the invest analyst is bullish, the risk analyst neutral. The final
    // score weighs stances by role (invest 0.35, risk 0.25) and confidence.
    assert_eq!((a.reports[0].stance, a.reports[1].stance), (Stance::Bullish, Stance::Neutral));
    let score = 0.35 * a.reports[0].confidence / (0.35 + 0.25);
    assert!(a.summary.contains(&format!("(score {score:+.2})")), "{}", a.summary);
    assert_eq!(a.rating, Rating::from_score(score));
    assert_eq!(a.rating, Rating::Overweight);
    assert!(a.reports[0].report.contains("Rule-based analysis by the offline model"));
    assert_eq!(a.figures[2].label, "12-month return");
    // Independently: adjusted close 2019-12-31 over 2018-12-31 (252 sessions before) in the CSV.
    assert_eq!(a.figures[2].display, "+89.0%");
}

#[tokio::test]
async fn a_resumed_run_skips_checkpointed_steps_and_counts_their_calls_once() {
    let p = pipeline(Duration::ZERO, Catalog::builtin());
    let all = [AnalystKind::Invest, AnalystKind::Risk, AnalystKind::Technical];
    let first = Memory::default();
    let full = p.run(&spec("offline", &all), &first).await.unwrap();

    let resumed = Memory::default();
    for step in ["Data Collection", "Invest Analyst", "Risk Analyst"] {
        resumed.checkpoints.lock().unwrap().insert(step.into(), first.checkpoint(step).unwrap());
    }
    let again = p.run(&spec("offline", &all), &resumed).await.unwrap();
    assert_eq!(resumed.started(), vec!["Technical Analyst", "Final Assessment"]);
    assert_eq!(again, full, "the same result from stored and fresh steps");
    assert_eq!(again.llm_calls, 4, "checkpointed calls are counted from the checkpoints");
    assert_eq!(resumed.usage.lock().unwrap().calls, 2, "only the new steps made calls");
}

#[tokio::test]
async fn a_failing_model_fails_the_run_naming_the_step() {
    let fake = FakeLlm::start().await;
    let toml = format!(
        "[[model]]\nid = \"broken\"\nlabel = \"Broken\"\nprovider = \"openai-compatible\"\nbase_url = \"{}\"\nmodel = \"x\"\n",
        fake.base_url("unauthorized")
    );
    let p = pipeline(Duration::ZERO, Catalog::from_toml(&toml).unwrap());
    let m = Memory::default();
    match p.run(&spec("broken", &[AnalystKind::Risk]), &m).await {
        Err(PipelineError::Failed { step, message }) => {
            assert_eq!(step.as_deref(), Some("Risk Analyst"));
            assert_eq!(
                message,
                "Risk Analyst (broken): the model provider rejected the API key (401). Check the API key."
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(m.checkpoint("Data Collection").is_some(), "finished steps stay finished");
    match p.run(&spec("nope", &[AnalystKind::Risk]), &Memory::default()).await {
        Err(PipelineError::Failed { step: None, message }) => {
            assert_eq!(message, "the model 'nope' is not in the catalog.")
        }
        other => panic!("{other:?}"),
    }
}
