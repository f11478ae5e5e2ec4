//! The Trading Agents team through the real binary: a `standard` run over HTTP, a budget that
//! ends a run, and SIGKILL in the middle of a debate.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use agents::testing::{Behaviour, FakeLlm};
use common::{Server, fake_catalog, spawn_worker, steps, stopped_before_research_manager, visitor, wait_until_done};
use domain::{Depth, JobStatus, RunOptions, StepStatus};
use jobs::testing::TestDb;
use serde_json::{Value, json};

const TEAM: [&str; 8] = [
    "Bull Researcher",
    "Bear Researcher",
    "Research Manager",
    "Trader",
    "Aggressive Risk Analyst",
    "Conservative Risk Analyst",
    "Neutral Risk Analyst",
    "Final Assessment",
];

/// `depth: standard` over REST: every step in order, completed; the result carries the team,
/// the blueprint's fields and `currentStep: "Complete"`; History shows the depth.
#[tokio::test]
async fn a_standard_run_completes_over_http() {
    let server = Server::start(TestDb::sqlite(), &[]).await;
    let c = visitor(&server).await;
    let resp = c
        .post(server.url("/api/trading/run"))
        .json(&json!({"symbol": "MSFT", "analysts": ["invest", "risk"], "depth": "standard"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    let run_id = resp.json::<Value>().await.unwrap()["runId"].as_str().unwrap().to_string();
    let (done, seen) = wait_until_done(&c, &server, &run_id, Duration::from_secs(60)).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert!(seen.windows(2).all(|w| w[0] <= w[1]), "progress never goes back: {seen:?}");
    let mut expected = vec!["Data Collection", "Invest Analyst", "Risk Analyst"];
    expected.extend(TEAM);
    assert_eq!(steps(&done), expected.iter().map(|s| (s.to_string(), "completed".to_string())).collect::<Vec<_>>());
    assert_eq!(done["currentStep"], "Complete");
    assert_eq!(done["depth"], "standard");
    assert_eq!(done["llmCalls"], 2 + 2 + 1 + 1 + 3 + 1);
    let r = &done["result"];
    assert_eq!(r["team"]["rounds"], 1);
    assert_eq!(r["team"]["debate"].as_array().unwrap().len(), 2);
    assert_eq!(r["team"]["riskDebate"].as_array().unwrap().len(), 3);
    assert!(["long", "flat", "short"].contains(&r["trade"]["proposed"]["direction"].as_str().unwrap()));
    assert_eq!(r["finalAssessment"]["rating"], r["rating"]);
    assert!(r["investAnalyst"].is_object() && r["riskAnalyst"].is_object());
    assert!(r.get("sentimentAnalyst").is_none(), "only the analysts that ran");

    let runs: Value = c.get(server.url("/api/trading/runs")).send().await.unwrap().json().await.unwrap();
    assert_eq!(runs["runs"][0]["depth"], "standard");

    // The run page shows the team: the transcript and the trader's proposal.
    let page = c.get(server.url(&format!("/runs/{run_id}"))).send().await.unwrap().text().await.unwrap();
    for marker in ["data-testid=\"team\"", "data-testid=\"trade-plan\"", "Round 1 of 1", "Bull Researcher"] {
        assert!(page.contains(marker), "the run page lacks {marker}");
    }
    // One plan: the page, the summary, the portfolio manager and the Markdown export write the
    // final plan's numbers alike, to the decimal, and its direction is the rating's.
    let result: domain::AnalysisResult = serde_json::from_value(r.clone()).unwrap();
    let trade = result.trade.as_ref().expect("a trade");
    assert_eq!(trade.plan.direction, domain::Direction::of_rating(result.rating));
    let line = trade.plan.line();
    assert!(result.summary.contains(&line), "{}", result.summary);
    assert!(result.team.as_ref().unwrap().decision.contains(&line));
    let headline = format!("{}{}", line[..1].to_uppercase(), &line[1..]);
    assert!(page.contains(&headline), "the page's plan line is {headline}");
    // The text of the page's plan cell `id`.
    let text_of = |id: &str| {
        let at = page.find(&format!("data-testid=\"plan-{id}\""))?;
        let rest = &page[at..];
        let start = rest.find('>')? + 1;
        Some(rest[start..start + rest[start..].find('<')?].to_string())
    };
    let cell = |id: &str, v: String| text_of(id) == Some(v);
    let p = &trade.plan;
    assert!(cell("size", domain::plan::size(p.size_pct)), "size {} shown as {:?}", p.size_pct, text_of("size"));
    assert!(cell("risk", domain::plan::risk(p.risk_pct)), "risk {} shown as {:?}", p.risk_pct, text_of("risk"));
    match p.levels {
        Some(l) => {
            assert!(cell("entry", domain::plan::price(l.entry)) && cell("stop", domain::plan::price(l.stop)));
            assert!(cell("target", domain::plan::price(l.target)));
        }
        // A flat plan has no entry: the row is absent, or says none beside the proposal's.
        None => assert!(matches!(text_of("entry").as_deref(), None | Some("none"))),
    }
    let md = c.get(server.url(&format!("/runs/{run_id}/report.md"))).send().await.unwrap();
    assert_eq!(md.status(), 200);
    assert!(md.headers()["content-type"].to_str().unwrap().starts_with("text/markdown"));
    let md = md.text().await.unwrap();
    assert!(md.contains(&format!("**{headline}**")), "{md}");
    assert!(md.contains(&format!("| Size | {} |", domain::plan::size(p.size_pct))), "{md}");
    assert!(md.contains(&format!("| Risk | {} |", domain::plan::risk(p.risk_pct))), "{md}");
    // The note that no language model wrote it: once on the page, once in the export.
    assert_eq!(page.matches(domain::RULE_BASED_NOTE).count(), 1);
    assert_eq!(md.matches(domain::RULE_BASED_NOTE).count(), 1);
    for team in ["Analysts", "Research", "Trading", "Risk", "Portfolio"] {
        assert!(page.contains(&format!("data-team=\"{team}\"")), "no {team} group on the progress view");
    }
}

/// A token budget ends a run `failed` with "budget exceeded", names the step it did not start,
/// and keeps the steps that finished.
#[tokio::test]
async fn a_run_over_its_budget_fails_and_keeps_finished_steps() {
    let fake = FakeLlm::start().await;
    let catalog = fake_catalog(&std::env::temp_dir(), &fake.base_url("ok"));
    let server =
        Server::start(TestDb::sqlite(), &[("MODEL_CATALOG", catalog.to_str().unwrap()), ("FAKE_API_KEY", "sk-test")])
            .await;
    let c = visitor(&server).await;
    let resp = c
        .post(server.url("/api/trading/run"))
        .json(
            &json!({"symbol": "AAPL", "modelId": "fake", "analysts": ["risk"], "depth": "standard", "maxTokens": 1500}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    let run_id = resp.json::<Value>().await.unwrap()["runId"].as_str().unwrap().to_string();
    let (done, _) = wait_until_done(&c, &server, &run_id, Duration::from_secs(60)).await;
    let _ = std::fs::remove_file(&catalog);
    assert_eq!(done["status"], "failed", "{done}");
    let error = done["error"].as_str().unwrap();
    assert!(error.starts_with("budget exceeded: "), "{error}");
    stopped_before_research_manager(&done);
    assert!(done["tokens"].as_u64().unwrap() <= 1500, "{done}");
    assert!(fake.calls().iter().all(|c| c.step != "Research Manager"));
}

/// SIGKILL while the bear argues round 2 of 3: another worker process finishes the run from
/// its checkpoints, asking again only for the interrupted turn — every other turn and step is
/// asked for exactly once — and counting each finished call once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_worker_killed_mid_debate_resumes_without_repeating_finished_turns() {
    let db = TestDb::postgres().await;
    let store = common::Records::open(&db).await;
    let fake = FakeLlm::start().await;
    let catalog = fake_catalog(&std::env::temp_dir(), &fake.base_url("ok"));
    let catalog = catalog.to_str().unwrap().to_string();
    fake.queue(
        "answer the bull's latest points directly. This is round 2 of 3",
        Behaviour::Delay(Duration::from_secs(120)),
    );
    let env = [("MODEL_CATALOG", catalog.as_str()), ("FAKE_API_KEY", "sk-test"), ("LEASE_SECS", "6")];

    let start = domain::ValidStart {
        symbol: "AAPL".parse().unwrap(),
        model_id: "fake".parse().unwrap(),
        analysts: vec![domain::AnalystKind::Invest, domain::AnalystKind::Risk],
        as_of: None,
        options: RunOptions { depth: Depth::Deep, rounds: Some(3), ..RunOptions::default() },
    };
    let id = store.insert_start("team", &start, 600_000).await;
    let wait = |what: &'static str, cond: Box<dyn Fn(&application::run::Run) -> bool>| {
        let store = &store;
        async move { store.wait_for(id, Duration::from_secs(60), what, cond).await }
    };
    let mut first = spawn_worker(&db.url, &env);
    let before = wait(
        "bull round 2 stored, bear round 2 waiting",
        Box::new(|j| j.checkpoints.contains_key("Bull Researcher · round 2")),
    )
    .await;
    first.start_kill().unwrap();
    first.wait().await.unwrap();
    assert!(before.checkpoints.contains_key("Bear Researcher · round 1"));
    assert!(!before.checkpoints.contains_key("Bear Researcher · round 2"));
    let bear = before.progress.steps.iter().find(|s| s.name == "Bear Researcher").unwrap();
    assert_eq!(bear.status, StepStatus::InProgress);

    let mut second = spawn_worker(&db.url, &env);
    let done = wait("completion", Box::new(|j| j.status.is_terminal())).await;
    second.start_kill().unwrap();
    let _ = std::fs::remove_file(&catalog);
    assert_eq!(done.status, JobStatus::Completed, "{:?}", done.error);
    assert_eq!(done.attempt, 2);
    let mut calls: HashMap<String, usize> = HashMap::new();
    for c in fake.calls() {
        *calls.entry(c.step).or_default() += 1;
    }
    let expected: HashMap<String, usize> = [
        ("Invest Analyst", 1),
        ("Risk Analyst", 1),
        ("Bull Researcher", 3),
        ("Bear Researcher", 4), // rounds 1–3, and the round-2 call the kill interrupted
        ("Research Manager", 1),
        ("Trader", 1),
        ("Aggressive Risk Analyst", 3),
        ("Conservative Risk Analyst", 3),
        ("Neutral Risk Analyst", 3),
        ("Final Assessment", 1),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_eq!(calls, expected);
    assert_eq!(done.progress.usage.calls, 2 + 6 + 1 + 1 + 9 + 1, "each finished call counted once");
    let team = done.result.unwrap().team.unwrap();
    assert_eq!(team.debate.len(), 6);
    assert_eq!(team.risk_debate.len(), 9);
}
