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
use agents::{Pipeline, PipelineError, Reporter};
use async_trait::async_trait;
use domain::{Action, AnalystKind, Depth, Direction, Rating, RunOptions, Stance, TeamRole, ValidStart};
use serde_json::Value;

#[derive(Default)]
struct Memory {
    checkpoints: Mutex<HashMap<String, Value>>,
    /// (step, event, when)
    events: Mutex<Vec<(String, &'static str, Instant)>>,
    usage: Mutex<Usage>,
    /// Step details as reported, in order.
    details: Mutex<Vec<(String, String)>>,
    /// A crash: the reporter stops the run right after storing this checkpoint.
    crash_after: Option<String>,
    /// What is left of the owner's daily budget, as the reporter answers it.
    daily_left: Option<domain::Budget>,
    /// How often the pipeline asked for it.
    daily_asked: std::sync::atomic::AtomicU32,
}

#[async_trait]
impl Reporter for Memory {
    type Error = ();

    fn checkpoint(&self, step: &str) -> Option<Value> {
        self.checkpoints.lock().unwrap().get(step).cloned()
    }

    async fn start_step(&self, step: &str, detail: Option<&str>) -> Result<(), ()> {
        self.events.lock().unwrap().push((step.into(), "start", Instant::now()));
        if let Some(d) = detail {
            self.details.lock().unwrap().push((step.into(), d.into()));
        }
        Ok(())
    }

    async fn step_progress(&self, step: &str, _: u8, detail: Option<&str>) -> Result<(), ()> {
        if let Some(d) = detail {
            self.details.lock().unwrap().push((step.into(), d.into()));
        }
        Ok(())
    }

    async fn complete_step(&self, step: &str, output: Value, usage: Usage, _: &str) -> Result<(), ()> {
        self.events.lock().unwrap().push((step.into(), "complete", Instant::now()));
        self.store(step, output, usage)
    }

    async fn save_turn(&self, _: &str, key: &str, _: u8, output: Value, usage: Usage, _: &str) -> Result<(), ()> {
        self.events.lock().unwrap().push((key.into(), "turn", Instant::now()));
        self.store(key, output, usage)
    }

    async fn daily_left(&self) -> Result<Option<domain::Budget>, ()> {
        self.daily_asked.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(self.daily_left)
    }
}

impl Memory {
    fn with_daily_left(budget: domain::Budget) -> Self {
        Memory { daily_left: Some(budget), ..Memory::default() }
    }

    fn store(&self, key: &str, output: Value, usage: Usage) -> Result<(), ()> {
        self.checkpoints.lock().unwrap().insert(key.into(), output);
        self.usage.lock().unwrap().add(usage);
        if self.crash_after.as_deref() == Some(key) { Err(()) } else { Ok(()) }
    }

    fn completed(&self) -> Vec<String> {
        self.events.lock().unwrap().iter().filter(|e| e.1 == "complete").map(|e| e.0.clone()).collect()
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

fn deeper(model: &str, analysts: &[AnalystKind], depth: Depth, rounds: u32) -> ValidStart {
    ValidStart { options: RunOptions { depth, rounds: Some(rounds), ..RunOptions::default() }, ..spec(model, analysts) }
}

fn spec(model: &str, analysts: &[AnalystKind]) -> ValidStart {
    ValidStart {
        symbol: "AAPL".parse().unwrap(),
        model_id: model.parse().unwrap(),
        analysts: analysts.to_vec(),
        as_of: Some("2019-12-31".parse().unwrap()),
        options: Default::default(),
    }
}

#[tokio::test]
async fn analysts_run_side_by_side() {
    let latency = Duration::from_millis(500);
    let p = pipeline(latency, Catalog::builtin());
    let m = Memory::default();
    let started = Instant::now();
    let r = p.run(&spec("offline", &AnalystKind::ALL), &m).await.unwrap();
    let took = started.elapsed();
    // Every analyst starts before any finishes.
    let last_start = AnalystKind::ALL.iter().map(|a| m.at(a.step_name(), "start")).max().unwrap();
    let first_end = AnalystKind::ALL.iter().map(|a| m.at(a.step_name(), "complete")).min().unwrap();
    assert!(last_start < first_end);
    // One analyst's wait plus the final's (2 calls), not four plus one (5 calls): anything
    // short of four calls' time is side by side, however slow the machine's own work.
    assert!(took < latency * 4, "{took:?} for calls of {latency:?}");
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
    // The note that no language model was used is the page's to say once, not each report's.
    assert!(!a.reports[0].report.contains("Rule-based analysis") && a.rule_based);
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

const TEAM_STEPS: [&str; 8] = [
    "Bull Researcher",
    "Bear Researcher",
    "Research Manager",
    "Trader",
    "Aggressive Risk Analyst",
    "Conservative Risk Analyst",
    "Neutral Risk Analyst",
    "Final Assessment",
];

fn chat_catalog(fake: &FakeLlm, mode: &str) -> Catalog {
    let toml = format!(
        "[[model]]\nid = \"chat\"\nlabel = \"Chat\"\nprovider = \"openai-compatible\"\nbase_url = \"{base}\"\nmodel = \"small\"\n\
         input_price_per_mtok = 2.0\noutput_price_per_mtok = 10.0\n\n\
         [[model]]\nid = \"deep\"\nlabel = \"Deep\"\nprovider = \"openai-compatible\"\nbase_url = \"{base}\"\nmodel = \"large\"\n\
         input_price_per_mtok = 20.0\noutput_price_per_mtok = 100.0\n",
        base = fake.base_url(mode)
    );
    Catalog::from_toml(&toml).unwrap()
}

/// A `standard` run completes offline with every team step after the analysts, in order, and
/// every role's output in the result: one round of each debate, the verdict, the trader's plan
/// (stop two ATRs from the entry), and the portfolio manager's five-level rating.
#[tokio::test]
async fn a_standard_run_completes_with_the_whole_team_in_order() {
    let p = pipeline(Duration::ZERO, Catalog::builtin());
    let m = Memory::default();
    let r = p.run(&deeper("offline", &AnalystKind::ALL, Depth::Standard, 1), &m).await.unwrap();
    let analysts: Vec<&str> = AnalystKind::ALL.iter().map(|a| a.step_name()).collect();
    let completed = m.completed();
    assert_eq!(completed[0], "Data Collection");
    let mut first_five = completed[1..5].to_vec();
    first_five.sort();
    let mut sorted_analysts = analysts.clone();
    sorted_analysts.sort();
    assert_eq!(first_five, sorted_analysts, "the analysts come first, side by side");
    // Bull and bear argue side by side within a round; the rest follow one by one.
    let mut team = completed[5..].to_vec();
    team[..2].sort();
    assert_eq!(team[..2], ["Bear Researcher", "Bull Researcher"]);
    assert_eq!(team[2..4], ["Research Manager", "Trader"]);
    let mut risk = team[4..7].to_vec();
    risk.sort();
    assert_eq!(risk, ["Aggressive Risk Analyst", "Conservative Risk Analyst", "Neutral Risk Analyst"]);
    assert_eq!(team[7], "Final Assessment");

    let t = r.team.as_ref().expect("a team report");
    assert_eq!((t.depth, t.rounds), (Depth::Standard, 1));
    assert_eq!(
        t.debate.iter().map(|a| (a.role, a.round)).collect::<Vec<_>>(),
        vec![(TeamRole::BullResearcher, 1), (TeamRole::BearResearcher, 1)]
    );
    assert_eq!(t.risk_debate.len(), 3);
    assert!(t.risk_debate.iter().all(|a| a.position_size.is_some() && a.stop_loss.is_some()));
    // AAPL at the end of 2019: the evidence leans bullish, so the manager says Buy and the
    // trader buys at the last close with a stop two ATRs below it.
    assert_eq!(t.verdict.action, Action::Buy);
    let trade = r.trade.as_ref().expect("a trade");
    let proposed = trade.proposed.as_ref().expect("the trader's proposal");
    assert_eq!(proposed.direction, Direction::Long);
    let close = r.figures[0].value.unwrap();
    let levels = proposed.levels.expect("a long plan has levels");
    assert_eq!(levels.entry, (close * 100.0).round() / 100.0);
    assert!(levels.stop < close && levels.stop > close * 0.85, "{}", levels.stop);
    assert!(levels.target > close, "{}", levels.target);
    assert!((2.0..=15.0).contains(&proposed.size_pct));
    assert_eq!(trade.plan.direction, Direction::of_rating(r.rating));
    for text in t.debate.iter().chain(&t.risk_debate).map(|a| &a.text).chain([
        &t.verdict.reasoning,
        &proposed.reasoning,
        &t.decision,
    ]) {
        assert!(!text.contains("Rule-based analysis") && !text.is_empty(), "{text}");
    }
    // The bull cites supporting figures, the bear weak ones.
    assert!(t.debate[0].text.contains("the case for owning"), "{}", t.debate[0].text);
    assert!(t.debate[1].text.contains("the case against"), "{}", t.debate[1].text);
    assert_eq!(r.llm_calls, 4 + 2 + 1 + 1 + 3 + 1);
    // The blueprint's result shape rides along.
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["finalAssessment"]["rating"], json["rating"]);
    assert_eq!(json["finalAssessment"]["reasoning"], json["team"]["decision"]);
    assert_eq!(json["investAnalyst"]["analyst"], "invest");
    assert_eq!(json["sentimentAnalyst"]["report"], json["reports"][2]["report"]);
    let again = p.run(&deeper("offline", &AnalystKind::ALL, Depth::Standard, 1), &Memory::default()).await.unwrap();
    assert_eq!(again, r, "deterministic across runs");
}

/// A `deep` run argues up to three rounds: each debate step says its round while it runs,
/// later rounds answer the other side, a side with no new figure rests and the debate ends
/// there, and the whole is deterministic.
#[tokio::test]
async fn a_deep_run_argues_three_rounds_deterministically() {
    let p = pipeline(Duration::ZERO, Catalog::builtin());
    let m = Memory::default();
    let spec = deeper("offline", &[AnalystKind::Invest, AnalystKind::Risk], Depth::Deep, 3);
    let r = p.run(&spec, &m).await.unwrap();
    let t = r.team.as_ref().unwrap();
    assert_eq!(t.rounds, 3);
    let rounds: Vec<(TeamRole, u32)> = t.debate.iter().map(|a| (a.role, a.round)).collect();
    // Two analysts give the bear two figures: it has nothing new in round 2, rests, and the
    // debate ends after that round.
    assert_eq!(
        rounds,
        vec![
            (TeamRole::BullResearcher, 1),
            (TeamRole::BearResearcher, 1),
            (TeamRole::BullResearcher, 2),
            (TeamRole::BearResearcher, 2),
        ]
    );
    assert!(t.debate[3].rests && t.debate[3].text.contains("rest my case"), "{}", t.debate[3].text);
    assert_eq!(t.risk_debate.len(), 9);
    assert!(t.debate[2].text.contains("The bear argued"), "round 2 answers the other side: {}", t.debate[2].text);
    let details = m.details.lock().unwrap().clone();
    for round in 1..=2 {
        let label = format!("round {round} of 3");
        assert!(
            details.iter().any(|(s, d)| s == "Bull Researcher" && d.starts_with(&label)),
            "no '{label}' in {details:?}"
        );
    }
    for (i, step) in TEAM_STEPS.iter().enumerate() {
        assert_eq!(m.completed()[3 + i], *step, "team steps complete in order (one analyst pair aside)");
    }
    assert_eq!(r.llm_calls, 2 + 4 + 1 + 1 + 9 + 1);
    let again = p.run(&spec, &Memory::default()).await.unwrap();
    assert_eq!(again, r);
}

/// A run that stops in the middle of a debate (a crash right after a turn is stored) resumes
/// without asking the model again for any finished turn: across both attempts, every step
/// costs exactly the calls of an uninterrupted run.
#[tokio::test]
async fn a_resumed_debate_repeats_no_finished_turn() {
    let fake = FakeLlm::start().await;
    let p = pipeline(Duration::ZERO, chat_catalog(&fake, "ok"));
    let spec = deeper("chat", &[AnalystKind::Risk], Depth::Deep, 3);

    let whole = p.run(&spec, &Memory::default()).await.unwrap();
    let per_step = |calls: &[agents::testing::Call]| {
        let mut n: HashMap<String, usize> = HashMap::new();
        for c in calls {
            *n.entry(c.step.clone()).or_default() += 1;
        }
        n
    };
    let uninterrupted = per_step(&fake.calls());
    assert_eq!(uninterrupted["Bull Researcher"], 3);
    assert_eq!(uninterrupted["Neutral Risk Analyst"], 3);
    assert_eq!(uninterrupted["Trader"], 1);
    let before = fake.calls().len();

    let crashed = Memory { crash_after: Some("Bear Researcher · round 2".into()), ..Memory::default() };
    assert!(p.run(&spec, &crashed).await.is_err());
    let resumed = Memory::default();
    *resumed.checkpoints.lock().unwrap() = crashed.checkpoints.lock().unwrap().clone();
    let again = p.run(&spec, &resumed).await.unwrap();
    let both = per_step(&fake.calls()[before..]);
    // Bull round 2 ran beside bear round 2 and was stored before the crash, or not: either way
    // no turn is asked for twice.
    assert_eq!(both, uninterrupted, "calls per step over crash and resume");
    assert!(!resumed.started().contains(&"Data Collection".to_string()));
    assert!(
        !resumed
            .events
            .lock()
            .unwrap()
            .iter()
            .any(|e| e.0 == "Bear Researcher · round 1" || e.0 == "Bear Researcher · round 2")
    );
    assert_eq!(again.llm_calls, whole.llm_calls, "stored turns count once");
    assert_eq!(again.team.as_ref().unwrap().debate.len(), 6);
}

/// Chat models get role prompts carrying the reports and the debate so far; the two managers
/// use the run's `deepModelId`, and its prices.
#[tokio::test]
async fn chat_roles_read_the_debate_and_managers_use_the_deep_model() {
    let fake = FakeLlm::start().await;
    let p = pipeline(Duration::ZERO, chat_catalog(&fake, "ok"));
    let mut spec = deeper("chat", &[AnalystKind::Invest], Depth::Deep, 2);
    spec.options.deep_model_id = Some("deep".parse().unwrap());
    let r = p.run(&spec, &Memory::default()).await.unwrap();
    let calls = fake.calls();
    let model_of = |step: &str| calls.iter().filter(|c| c.step == step).map(|c| c.model.clone()).collect::<Vec<_>>();
    assert_eq!(model_of("Research Manager"), vec!["large"]);
    assert_eq!(model_of("Final Assessment"), vec!["large"]);
    assert_eq!(model_of("Trader"), vec!["small"]);
    assert_eq!(model_of("Bull Researcher"), vec!["small", "small"]);
    let bear: Vec<_> = calls.iter().filter(|c| c.step == "Bear Researcher").collect();
    assert!(!bear[0].prompt.contains("investmentDebate"), "round 1 has no debate yet");
    assert!(bear[1].prompt.contains("The figures make my case"), "round 2 reads round 1");
    assert!(bear[1].prompt.contains("round 2 of 2"));
    let neutral = calls.iter().find(|c| c.step == "Neutral Risk Analyst").unwrap();
    assert!(neutral.prompt.contains("traderPlan") && neutral.prompt.contains("researchVerdict"));
    assert!(neutral.prompt.contains("Invest Analyst"), "the analysts' reports travel along");
    // The trader's 6 % with a stop at 275, and the neutral analyst's 5 % at 250, for the
    // portfolio manager's Overweight: long, risking 5 × 40 / 290 = 0.69 % of the portfolio.
    let trade = r.trade.as_ref().unwrap();
    let proposed = trade.proposed.as_ref().unwrap();
    assert_eq!((proposed.levels.unwrap().stop, proposed.size_pct, proposed.risk_pct), (275.0, 6.0, 0.31));
    let l = trade.plan.levels.unwrap();
    assert_eq!((l.entry, l.stop, l.target), (290.0, 250.0, 320.0));
    assert_eq!((trade.plan.size_pct, trade.plan.risk_pct), (5.0, 0.69));
    let t = r.team.unwrap();
    assert_eq!(t.deep_model_id.as_deref(), Some("deep"));
    assert!(!r.rule_based);
    // Two prices: the managers' calls cost ten times as much.
    let cost = r.cost_usd.unwrap();
    let small = (r.tokens.prompt as f64 * 2.0 + r.tokens.completion as f64 * 10.0) / 1e6;
    assert!(cost > small, "{cost} > {small}");
}

/// A token budget ends the run before the call that would exceed it, naming that step, and
/// keeps the finished steps.
#[tokio::test]
async fn a_budget_ends_the_run_and_keeps_finished_steps() {
    let fake = FakeLlm::start().await;
    let p = pipeline(Duration::ZERO, chat_catalog(&fake, "ok"));
    let mut spec = deeper("chat", &[AnalystKind::Risk], Depth::Standard, 1);
    // About 440 tokens a call: the analyst and the two researchers fit, the manager would not.
    spec.options.max_tokens = Some(1_500);
    let m = Memory::default();
    match p.run(&spec, &m).await {
        Err(PipelineError::Failed { step, message }) => {
            assert_eq!(step.as_deref(), Some("Research Manager"));
            assert!(message.starts_with("budget exceeded: "), "{message}");
            assert!(message.contains("of 1500 allowed"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(m.completed(), vec!["Data Collection", "Risk Analyst", "Bull Researcher", "Bear Researcher"]);
    assert!(fake.calls().iter().all(|c| c.step != "Research Manager"), "the manager was never asked");
    let used = m.usage.lock().unwrap().tokens.total();
    assert!(used <= 1_500, "{used}");

    // A cost budget works the same way, at the catalog's prices.
    let mut spec = deeper("chat", &[AnalystKind::Risk], Depth::Standard, 1);
    spec.options.max_cost_usd = Some(0.0001);
    match p.run(&spec, &Memory::default()).await {
        Err(PipelineError::Failed { message, .. }) => assert!(message.contains("budget exceeded: $"), "{message}"),
        other => panic!("{other:?}"),
    }
}

/// What is left of the owner's daily budget is a second budget, asked of the reporter before
/// every model step and debate round (so that another run of the owner spending meanwhile
/// counts): the lower of the two ends the run, and the message says which it was.
#[tokio::test]
async fn what_is_left_of_the_daily_budget_ends_the_run_like_its_own_budget() {
    let fake = FakeLlm::start().await;
    let p = pipeline(Duration::ZERO, chat_catalog(&fake, "ok"));
    let mut spec = deeper("chat", &[AnalystKind::Risk], Depth::Standard, 1);
    spec.options.max_tokens = Some(100_000);
    let m = Memory::with_daily_left(domain::Budget { max_tokens: Some(1_500), max_cost_usd: None });
    match p.run(&spec, &m).await {
        Err(PipelineError::Failed { step, message }) => {
            assert_eq!(step.as_deref(), Some("Research Manager"));
            assert!(message.starts_with("daily budget exceeded: "), "{message}");
            assert!(message.contains("of 1500 left of the daily budget; Research Manager"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(m.completed(), vec!["Data Collection", "Risk Analyst", "Bull Researcher", "Bear Researcher"]);

    // Asked once per check: the analysts, the research debate's round, the Research Manager,
    // the Trader, the risk debate's round and the Final Assessment.
    let m = Memory::with_daily_left(domain::Budget { max_tokens: Some(1_000_000), max_cost_usd: None });
    p.run(&spec, &m).await.unwrap();
    assert_eq!(m.daily_asked.load(std::sync::atomic::Ordering::SeqCst), 6);

    // The run's own budget, when lower, is the one named.
    let mut spec = deeper("chat", &[AnalystKind::Risk], Depth::Standard, 1);
    spec.options.max_tokens = Some(1_500);
    let m = Memory::with_daily_left(domain::Budget { max_tokens: Some(100_000), max_cost_usd: None });
    match p.run(&spec, &m).await {
        Err(PipelineError::Failed { message, .. }) => assert!(message.starts_with("budget exceeded: "), "{message}"),
        other => panic!("{other:?}"),
    }

    // Nothing left: not one model call is made.
    let before = fake.calls().len();
    let spec = deeper("chat", &[AnalystKind::Risk], Depth::Standard, 1);
    let m = Memory::with_daily_left(domain::Budget { max_tokens: None, max_cost_usd: Some(0.0) });
    match p.run(&spec, &m).await {
        Err(PipelineError::Failed { step, message }) => {
            assert_eq!(step.as_deref(), Some("Risk Analyst"));
            assert!(message.starts_with("daily budget exceeded: $0.0000 spent of $0.0000"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(fake.calls().len(), before);
}
