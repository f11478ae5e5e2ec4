//! The OpenAI-compatible chat model against a fake provider that speaks the protocol: streamed
//! and plain answers, 429 with Retry-After, 500, bodies that are not JSON, answers that are not
//! the JSON asked for (one repair, then a clear failure), a rejected key, a hang, and a stream
//! that goes silent.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use agents::analysts::key_figures;
use agents::market::bundled::BundledData;
use agents::market::{LOOKBACK, MarketData};
use agents::model::{CallProgress, Catalog, ModelError, Models, ModelsConfig};
use agents::retry::RetryPolicy;
use agents::snapshot::{self, MarketSnapshot};
use agents::testing::{Behaviour, FakeLlm};
use async_trait::async_trait;
use domain::{AnalystKind, Rating, Stance};

/// Records what a model reports, the pieces of text it passes on, and its stalls.
#[derive(Default)]
struct Recorder(Mutex<Vec<(u8, String)>>, Mutex<Vec<String>>, Mutex<Vec<Option<domain::Stall>>>);

#[async_trait]
impl CallProgress for Recorder {
    async fn report(&self, percent: u8, detail: &str) {
        self.0.lock().unwrap().push((percent, detail.to_string()));
    }

    async fn text(&self, delta: &str) {
        self.1.lock().unwrap().push(delta.to_string());
    }

    async fn stalled(&self, stall: Option<&domain::Stall>) {
        self.2.lock().unwrap().push(stall.cloned());
    }
}

async fn data() -> MarketSnapshot {
    let market = BundledData::load(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/market")).unwrap();
    let series = market.daily("MSFT", None, LOOKBACK).await.unwrap();
    let bench = market.daily("^GSPC", series.last_date(), LOOKBACK).await.unwrap();
    snapshot::compute(&series, Some(&bench), "bundled")
}

fn models(fake: &FakeLlm, mode: &str, stream: bool, retry: RetryPolicy, call_timeout: Duration) -> Models {
    let config = ModelsConfig { call_timeout, retry, ..ModelsConfig::default() };
    models_with(fake, mode, stream, config)
}

fn models_with(fake: &FakeLlm, mode: &str, stream: bool, config: ModelsConfig) -> Models {
    let toml = format!(
        "[[model]]\nid = \"fake\"\nlabel = \"Fake\"\nprovider = \"openai-compatible\"\nbase_url = \"{}\"\nmodel = \"fake-1\"\napi_key_env = \"FAKE_KEY\"\nstream = {stream}\n",
        fake.base_url(mode)
    );
    Models::new(
        Catalog::from_toml(&toml).unwrap(),
        &|v| (v == "FAKE_KEY").then(|| "sk-secret".into()),
        reqwest::Client::new(),
        config,
    )
}

/// `n` retries, 10 ms apart.
fn retries_every_10ms(n: u32) -> RetryPolicy {
    RetryPolicy { max_retries: n, base_delay: Duration::from_millis(10), max_delay: Duration::from_millis(10) }
}

fn quick_retries() -> RetryPolicy {
    RetryPolicy { max_retries: 3, base_delay: Duration::from_millis(20), max_delay: Duration::from_millis(200) }
}

#[tokio::test]
async fn a_streamed_answer_is_parsed_counted_and_reports_progress() {
    let fake = FakeLlm::start().await;
    fake.set_chunk_delay(Duration::from_millis(60));
    let model = models(&fake, "ok", true, quick_retries(), Duration::from_secs(10)).get("fake").unwrap();
    let progress = Recorder::default();
    let d = data().await;
    let (view, usage) = model.analyst_view(AnalystKind::Risk, &d, &progress).await.unwrap();
    assert_eq!(view.stance, Stance::Bullish);
    assert_eq!(view.confidence, 0.7);
    assert!(view.report.starts_with("**Risk Analyst** (language model)"), "{}", view.report);
    assert_eq!(usage.calls, 1);
    assert_eq!(usage.tokens.prompt, 400, "the provider's usage report is used");
    assert!(usage.tokens.completion > 0);
    let calls = fake.calls();
    assert_eq!(calls.len(), 1);
    assert!(calls[0].stream);
    assert_eq!(calls[0].step, "Risk Analyst");
    assert_eq!(calls[0].authorization.as_deref(), Some("Bearer sk-secret"));
    assert_eq!(calls[0].model, "fake-1");
    // Progress moved while the answer arrived, forward only.
    let seen: Vec<u8> =
        progress.0.lock().unwrap().iter().filter(|(_, d)| d == "Receiving the answer").map(|(p, _)| *p).collect();
    assert!(seen.len() >= 2, "{seen:?}");
    assert!(seen.windows(2).all(|w| w[0] <= w[1]) && seen.iter().all(|p| (10..=80).contains(p)), "{seen:?}");
    // The text was passed on as it arrived, read: in pieces that join to the answer's fields
    // (the fake writes them in key order), prose as prose, not the JSON the model streamed.
    let pieces = progress.1.lock().unwrap().clone();
    assert!(pieces.len() >= 2, "{pieces:?}");
    let shown = pieces.concat();
    assert!(shown.starts_with("Confidence: 0.7\n\n**Risk Analyst** (language model)\n\nThe figures"), "{shown}");
    assert!(shown.ends_with("- Risk is moderate\n\nStance: bullish"), "{shown}");
    assert!(!shown.contains(['{', '"']) && !shown.contains("\\n"), "read, not raw JSON: {shown}");
}

#[tokio::test]
async fn a_plain_answer_for_the_final_assessment() {
    let fake = FakeLlm::start().await;
    let model = models(&fake, "ok", false, quick_retries(), Duration::from_secs(10)).get("fake").unwrap();
    let (d, usage) = model.assessment(&data().await, &[], &Recorder::default()).await.unwrap();
    let a = &d.assessment;
    assert_eq!(a.rating, Rating::Overweight);
    assert_eq!(a.key_risks.len(), 2);
    // The model names the rating; the plan for it is the desk's, long for an Overweight.
    assert_eq!(d.trade.plan.direction, domain::Direction::Long);
    assert_eq!(usage.calls, 1);
    assert!(!fake.calls()[0].stream);
}

#[tokio::test]
async fn rate_limits_and_server_errors_are_retried_with_backoff_honouring_retry_after() {
    let fake = FakeLlm::start().await;
    fake.queue("Invest Analyst", Behaviour::Status(429, Some(1)));
    fake.queue("Invest Analyst", Behaviour::Status(500, None));
    let model = models(&fake, "ok", true, quick_retries(), Duration::from_secs(10)).get("fake").unwrap();
    let started = Instant::now();
    let (view, usage) = model.analyst_view(AnalystKind::Invest, &data().await, &Recorder::default()).await.unwrap();
    assert_eq!(view.stance, Stance::Bullish);
    assert_eq!(fake.calls().len(), 3, "429, 500, then the answer");
    assert_eq!(usage.calls, 1, "only answered calls count");
    // Retry-After: 1 s was honoured (capped by max_delay 200 ms here), and so was the backoff.
    assert!(started.elapsed() >= Duration::from_millis(200), "{:?}", started.elapsed());
}

#[tokio::test]
async fn a_provider_that_keeps_failing_gives_a_clear_error_after_the_retries() {
    let fake = FakeLlm::start().await;
    let model = models(&fake, "ratelimit", true, quick_retries(), Duration::from_secs(10)).get("fake").unwrap();
    let err = model.analyst_view(AnalystKind::Invest, &data().await, &Recorder::default()).await.unwrap_err();
    assert_eq!(err, ModelError::RateLimited(4));
    assert_eq!(fake.calls().len(), 4);

    let fake = FakeLlm::start().await;
    let model = models(&fake, "fail", true, quick_retries(), Duration::from_secs(10)).get("fake").unwrap();
    let err = model.analyst_view(AnalystKind::Invest, &data().await, &Recorder::default()).await.unwrap_err();
    assert_eq!(err, ModelError::Upstream { status: 500, message: "fake provider error 500".into() });
}

#[tokio::test]
async fn a_rejected_key_fails_at_once() {
    let fake = FakeLlm::start().await;
    let model = models(&fake, "unauthorized", true, quick_retries(), Duration::from_secs(10)).get("fake").unwrap();
    let err = model.analyst_view(AnalystKind::Invest, &data().await, &Recorder::default()).await.unwrap_err();
    assert_eq!(err, ModelError::Unauthorized(401));
    assert_eq!(fake.calls().len(), 1, "no retry of a rejected key");
    assert!(!err.to_string().contains("sk-secret"));
}

#[tokio::test]
async fn a_malformed_body_and_a_broken_stream_are_retried() {
    let fake = FakeLlm::start().await;
    fake.queue("Technical Analyst", Behaviour::Malformed);
    fake.queue("Technical Analyst", Behaviour::BrokenStream);
    let model = models(&fake, "ok", true, quick_retries(), Duration::from_secs(10)).get("fake").unwrap();
    let (view, _) = model.analyst_view(AnalystKind::Technical, &data().await, &Recorder::default()).await.unwrap();
    assert_eq!(view.stance, Stance::Bullish);
    assert_eq!(fake.calls().len(), 3);
}

#[tokio::test]
async fn an_unusable_answer_gets_one_repair_then_a_clear_failure() {
    // Repaired: the first answer is prose, the second is right.
    let fake = FakeLlm::start().await;
    fake.queue("Sentiment Analyst", Behaviour::Content("Honestly, it looks great!".into()));
    let model = models(&fake, "ok", true, quick_retries(), Duration::from_secs(10)).get("fake").unwrap();
    let (view, usage) = model.analyst_view(AnalystKind::Sentiment, &data().await, &Recorder::default()).await.unwrap();
    assert_eq!(view.stance, Stance::Bullish);
    assert_eq!(usage.calls, 2, "the rejected answer cost a call too");
    let calls = fake.calls();
    assert_eq!((calls[0].messages, calls[1].messages), (2, 4), "the repair carries the bad answer and the reason");

    // Not repaired: prose twice.
    let fake = FakeLlm::start().await;
    let model = models(&fake, "garbage", true, quick_retries(), Duration::from_secs(10)).get("fake").unwrap();
    let err = model.analyst_view(AnalystKind::Sentiment, &data().await, &Recorder::default()).await.unwrap_err();
    assert_eq!(err, ModelError::InvalidAnswer("no JSON object found (also after one correction)".into()));
    assert_eq!(fake.calls().len(), 2);
}

#[tokio::test]
async fn a_hang_is_cut_by_the_timeouts() {
    let fake = FakeLlm::start().await;
    let retry = retries_every_10ms(1);
    let model = models(&fake, "hang", true, retry, Duration::from_millis(300)).get("fake").unwrap();
    let started = Instant::now();
    let err = model.analyst_view(AnalystKind::Risk, &data().await, &Recorder::default()).await.unwrap_err();
    assert_eq!(err, ModelError::Timeout(2));
    // Without the timeouts the fake never answers: a wide bound still tells the two apart.
    assert!(started.elapsed() < Duration::from_secs(20), "{:?}", started.elapsed());
}

/// Two pieces of an answer, then silence: the call says it is stalled after `stall_after`,
/// naming the model and when it gives up, and is abandoned after `stall_timeout` — here
/// twice, the retry included — with an error that names the model and the silence.
#[tokio::test]
async fn a_silent_stream_is_reported_stalled_then_given_up() {
    let fake = FakeLlm::start().await;
    let config = ModelsConfig {
        call_timeout: Duration::from_secs(30),
        stall_after: Duration::from_millis(300),
        stall_timeout: Duration::from_secs(1),
        retry: retries_every_10ms(1),
        ..ModelsConfig::default()
    };
    let model = models_with(&fake, "stall", true, config).get("fake").unwrap();
    let recorder = Recorder::default();
    let started = Instant::now();
    let err = model.analyst_view(AnalystKind::Risk, &data().await, &recorder).await.unwrap_err();
    assert_eq!(err, ModelError::Silent { model: "Fake".into(), secs: 1, tries: 2 });
    assert_eq!(err.to_string(), "no output from Fake for 1 s (2 tries)");
    assert_eq!(fake.calls().len(), 2);
    // Each attempt: stalled once its 300 ms passed, then cleared when it was given up.
    let stalls = recorder.2.lock().unwrap().clone();
    assert_eq!(stalls.len(), 4, "{stalls:?}");
    for pair in stalls.chunks(2) {
        let stall = pair[0].as_ref().expect("a stall first");
        assert_eq!(stall.model, "Fake");
        assert_eq!((stall.gives_up_at - stall.since).num_milliseconds(), 1_000);
        assert_eq!(pair[1], None, "then its end");
    }
    // What it wrote each time reached the step before it went quiet, read: its first piece
    // ends inside a key, so the two show as one, the confidence and the report's start.
    let pieces = recorder.1.lock().unwrap().clone();
    assert_eq!(pieces.len(), 2, "{pieces:?}");
    assert!(pieces.iter().all(|p| p.starts_with("Confidence: 0.7\n\n**Risk")), "{pieces:?}");
    // Two attempts of a second each, not the 30 s call timeout.
    assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
}

/// A call that answers within its stall limit is never reported stalled, and the overall
/// call timeout bounds the silence when it is the shorter: the stall says so.
#[tokio::test]
async fn the_stall_limit_is_the_sooner_of_silence_and_the_call_timeout() {
    let fake = FakeLlm::start().await;
    let config = ModelsConfig {
        call_timeout: Duration::from_millis(700),
        stall_after: Duration::from_millis(200),
        stall_timeout: Duration::from_secs(60),
        retry: retries_every_10ms(0),
        ..ModelsConfig::default()
    };
    let model = models_with(&fake, "hang", false, config.clone()).get("fake").unwrap();
    let recorder = Recorder::default();
    let err = model.analyst_view(AnalystKind::Risk, &data().await, &recorder).await.unwrap_err();
    assert_eq!(err, ModelError::Timeout(1));
    let stalls = recorder.2.lock().unwrap().clone();
    let stall = stalls[0].as_ref().expect("a plain answer that never comes stalls too, counted from the request");
    assert_eq!((stall.gives_up_at - stall.since).num_milliseconds(), 700);

    let model = models_with(&fake, "ok", true, config).get("fake").unwrap();
    let recorder = Recorder::default();
    model.analyst_view(AnalystKind::Risk, &data().await, &recorder).await.unwrap();
    assert!(recorder.2.lock().unwrap().is_empty());
}

#[tokio::test]
async fn prompts_carry_the_computed_figures() {
    let fake = FakeLlm::start().await;
    let model = models(&fake, "ok", false, quick_retries(), Duration::from_secs(10)).get("fake").unwrap();
    let d = data().await;
    let _ = model.analyst_view(AnalystKind::Invest, &d, &Recorder::default()).await.unwrap();
    assert_eq!(fake.calls()[0].step, "Invest Analyst");
    let figures = key_figures(AnalystKind::Invest, &d);
    assert_eq!(figures[0].display, "27.95", "MSFT's close on 2013-03-01");
    let prompt = &fake.calls()[0].prompt;
    assert!(prompt.contains("You are the Invest Analyst") && prompt.contains("2013-03-01"), "{prompt}");
    assert!(prompt.contains("\"Last close\"") && prompt.contains("27.95"), "key figures are in the prompt");
    assert!(prompt.contains("\"rsi14\""), "and every computed figure");
    assert!(!prompt.contains("\"chart\""), "but not the chart's points");
}

/// A streamed answer whose bytes arrive in 3-byte pieces — every multi-byte character and
/// every event split across network chunks — is decoded intact.
#[tokio::test]
async fn multi_byte_characters_split_across_chunks_arrive_intact() {
    let fake = FakeLlm::start().await;
    fake.set_chunk_bytes(3);
    let report = "Größere Schwankungen — naïve €5 bets, 株価 📈 and a café.";
    let answer = serde_json::json!({ "stance": "neutral", "confidence": 0.5, "report": report }).to_string();
    fake.queue("You are the Risk Analyst", Behaviour::Content(answer));
    let model = models(&fake, "ok", true, quick_retries(), Duration::from_secs(10)).get("fake").unwrap();
    let (view, _) = model.analyst_view(AnalystKind::Risk, &data().await, &Recorder::default()).await.unwrap();
    assert_eq!(view.report, report);
    assert!(fake.calls()[0].stream);
}

/// At start, a hosted model whose provider does not answer (nothing listens on its port) is
/// listed as unavailable with the reason; one that answers, whatever it answers, stays
/// available; the offline model is never asked.
#[tokio::test]
async fn a_provider_that_does_not_answer_the_probe_is_listed_unavailable() {
    let fake = FakeLlm::start().await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}/v1", closed.local_addr().unwrap());
    drop(closed);
    let toml = format!(
        "[[model]]\nid = \"offline\"\nlabel = \"Offline\"\nprovider = \"offline\"\n\
         [[model]]\nid = \"up\"\nlabel = \"Up\"\nprovider = \"openai-compatible\"\nbase_url = \"{}\"\nmodel = \"m\"\n\
         [[model]]\nid = \"down\"\nlabel = \"Down\"\nprovider = \"openai-compatible\"\nbase_url = \"{dead}\"\nmodel = \"m\"\n",
        fake.base_url("ok")
    );
    let models =
        Models::new(Catalog::from_toml(&toml).unwrap(), &|_| None, reqwest::Client::new(), ModelsConfig::default());
    assert!(models.infos().iter().all(|m| m.available), "nothing is known before the probe");
    models.probe(Duration::from_secs(2)).await;
    let infos = models.infos();
    let of = |id: &str| infos.iter().find(|m| m.id == id).unwrap().clone();
    assert!(of("offline").available && of("up").available);
    let down = of("down");
    assert!(!down.available);
    assert!(down.reason.as_deref().unwrap().contains("could not be reached at start"), "{down:?}");
}

/// The trader's plan and the risk analysts' stops are checked against the plan's direction: a
/// model that contradicts it is asked again once, with the reason; one that then follows the
/// plan is taken as it answered, one that still contradicts it is kept with the contradiction
/// shown under its answer; one that follows it at once is asked once.
#[tokio::test]
async fn answers_that_contradict_the_plan_are_asked_again_once_then_shown() {
    use agents::assessment::Brief;
    use domain::plan::PlanWhy;
    use domain::{Action, Direction, Levels, TradePlan, Verdict};
    use serde_json::json;
    let d = data().await;
    let verdict = Verdict { action: Action::Sell, confidence: 0.7, reasoning: "The bear's case is stronger.".into() };
    let brief = Brief {
        data: &d,
        reports: &[],
        debate: &[],
        verdict: Some(&verdict),
        plan: None,
        risk_debate: &[],
        round: 1,
        rounds: 1,
    };
    let plan_answer = |action: &str, stop: f64| {
        json!({ "action": action, "entry": 28.0, "stopLoss": stop, "positionSize": 0.05, "reasoning": "My plan." })
            .to_string()
    };
    let (long, short) = (plan_answer("Buy", 26.5), plan_answer("Sell", 29.5));
    let trader = "You are the Trader";
    let shown =
        "**Contradicts the plan:** the research verdict is Sell, which makes the plan short, but this plan is long";

    // A long against a Sell, then a short: the short is taken.
    let fake = FakeLlm::start().await;
    fake.queue(trader, Behaviour::Content(long.clone()));
    fake.queue(trader, Behaviour::Content(short.clone()));
    let model = models(&fake, "ok", false, quick_retries(), Duration::from_secs(10)).get("fake").unwrap();
    let (plan, usage) = model.plan(&brief, &Recorder::default()).await.unwrap();
    assert_eq!(plan.direction, Direction::Short);
    assert!(!plan.reasoning.contains("Contradicts"), "{}", plan.reasoning);
    assert_eq!(usage.calls, 2);
    let calls = fake.calls();
    assert_eq!((calls[0].messages, calls[1].messages), (2, 4), "asked again with its answer and the reason");
    assert!(
        calls[1]
            .prompt
            .contains("contradicts the trade plan: the research verdict is Sell, which makes the plan short"),
        "{}",
        calls[1].prompt
    );
    assert!(calls[0].prompt.contains("\"researchVerdict\""), "the prompt carries the verdict as data");

    // A long twice: kept, and the contradiction is shown.
    let fake = FakeLlm::start().await;
    fake.queue(trader, Behaviour::Content(long.clone()));
    fake.queue(trader, Behaviour::Content(long.clone()));
    let model = models(&fake, "ok", false, quick_retries(), Duration::from_secs(10)).get("fake").unwrap();
    let (plan, usage) = model.plan(&brief, &Recorder::default()).await.unwrap();
    assert_eq!((plan.direction, usage.calls), (Direction::Long, 2));
    assert!(plan.reasoning.starts_with("My plan.") && plan.reasoning.contains(shown), "{}", plan.reasoning);
    assert!(plan.reasoning.contains("asked once to correct this"), "{}", plan.reasoning);

    // A long, then an answer that is not JSON: the long is kept, shown as contradicting.
    let fake = FakeLlm::start().await;
    fake.queue(trader, Behaviour::Content(long.clone()));
    fake.queue(trader, Behaviour::Content("Fine, whatever you say.".into()));
    let model = models(&fake, "ok", false, quick_retries(), Duration::from_secs(10)).get("fake").unwrap();
    let (plan, _) = model.plan(&brief, &Recorder::default()).await.unwrap();
    assert!(plan.reasoning.contains(shown), "{}", plan.reasoning);

    // A short at once: one call.
    let fake = FakeLlm::start().await;
    fake.queue(trader, Behaviour::Content(short.clone()));
    let model = models(&fake, "ok", false, quick_retries(), Duration::from_secs(10)).get("fake").unwrap();
    let (plan, usage) = model.plan(&brief, &Recorder::default()).await.unwrap();
    assert_eq!((plan.direction, usage.calls), (Direction::Short, 1));

    // The risk debate over a short at 28.00: a stop below the entry would close it at a gain.
    let short_plan = TradePlan::open(
        Direction::Short,
        Levels { entry: 28.0, stop: 29.5, target: 25.0 },
        20,
        0.05,
        PlanWhy::default(),
        "Short it.".into(),
    )
    .unwrap();
    let brief = Brief { plan: Some(&short_plan), ..brief };
    let risk = "You are the Conservative Risk Analyst";
    let turn = |stop: f64| json!({ "argument": "Keep it tight.", "positionSize": 0.03, "stopLoss": stop }).to_string();
    let fake = FakeLlm::start().await;
    fake.queue(risk, Behaviour::Content(turn(27.0)));
    fake.queue(risk, Behaviour::Content(turn(29.0)));
    let model = models(&fake, "ok", false, quick_retries(), Duration::from_secs(10)).get("fake").unwrap();
    let (a, usage) = model.argue(domain::TeamRole::ConservativeRisk, &brief, &Recorder::default()).await.unwrap();
    assert_eq!((a.stop_loss, usage.calls, a.text.as_str()), (Some(29.0), 2, "Keep it tight."));
    assert!(fake.calls()[1].prompt.contains("so a stop-loss must be above the entry, but 27.00 is not"));
    assert!(fake.calls()[0].prompt.contains("\"traderPlan\""), "the prompt carries the plan as data");

    let fake = FakeLlm::start().await;
    fake.queue(risk, Behaviour::Content(turn(27.0)));
    fake.queue(risk, Behaviour::Content(turn(27.5)));
    let model = models(&fake, "ok", false, quick_retries(), Duration::from_secs(10)).get("fake").unwrap();
    let (a, _) = model.argue(domain::TeamRole::ConservativeRisk, &brief, &Recorder::default()).await.unwrap();
    assert_eq!(a.stop_loss, Some(27.5));
    assert!(
        a.text.contains("**Contradicts the plan:** the plan is a short at 28.00, so a stop-loss must be above the entry, but 27.50 is not"),
        "{}",
        a.text
    );
}
