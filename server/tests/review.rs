//! Never a guessed rating: a provider whose final decision is prose, not the scale, even after
//! the one correction asked of it, gives a completed run rated `Review` with the model's own
//! words and a flat plan — counted on the stats and found by the history's rating filter — in
//! a quick run (the final assessment) and in a standard one (the portfolio manager).

mod common;

use std::time::Duration;

use agents::testing::{Behaviour, FakeLlm};
use common::{Server, fake_models, start_run, visitor, wait_until_done};
use jobs::testing::TestDb;
use serde_json::{Value, json};

/// What only the AAPL run's final prompt says (the MSFT run beside it answers normally).
const QUICK: &str = "have reported on AAPL as of";
const PORTFOLIO_MANAGER: &str = "Portfolio Manager of a trading firm's team, working on AAPL";

const PROSE: &str = "On balance I like the name, though I would wait for a better entry before committing.";

async fn get_json(c: &reqwest::Client, url: String) -> Value {
    let resp = c.get(url).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

async fn an_unreadable_final_decision_is_left_for_review(db: TestDb, depth: &str, prompt: &str) {
    let fake = FakeLlm::start().await;
    let catalog = fake_models(&fake, &[("fake", "ok")]);
    // The first answer and the answer to the correction: prose both times.
    fake.queue(prompt, Behaviour::Content(PROSE.into()));
    fake.queue(prompt, Behaviour::Content(PROSE.into()));
    let server = Server::start(db, &[("MODEL_CATALOG", catalog.as_str()), ("FAKE_API_KEY", "sk-test")]).await;
    let c = visitor(&server).await;
    let settled = start_run(
        &c,
        &server,
        json!({"symbol": "MSFT", "modelId": "fake", "analysts": ["technical"], "depth": "quick"}),
    )
    .await;
    let run_id =
        start_run(&c, &server, json!({"symbol": "AAPL", "modelId": "fake", "analysts": ["technical"], "depth": depth}))
            .await;
    let (done, _) = wait_until_done(&c, &server, &run_id, Duration::from_secs(90)).await;
    let (other, _) = wait_until_done(&c, &server, &settled, Duration::from_secs(90)).await;
    let _ = std::fs::remove_file(&catalog);
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(other["status"], "completed", "{other}");

    let result = &done["result"];
    assert_eq!(result["rating"], "Review", "{result}");
    assert_eq!(result["confidence"], 0.0);
    assert_eq!(result["summary"], PROSE, "the model's own words");
    let risk = result["keyRisks"][0].as_str().unwrap();
    assert!(risk.starts_with("fake's final decision could not be read into the rating scale"), "{risk}");
    assert_eq!(result["trade"]["final"]["direction"], "flat", "no position on a decision nobody could read");
    if depth != "quick" {
        assert_eq!(result["finalAssessment"]["reasoning"], PROSE, "the portfolio manager's words as its reasoning");
    }
    let asked: Vec<_> = fake.calls().into_iter().filter(|c| c.prompt.contains(prompt)).collect();
    assert_eq!(asked.len(), 2, "asked once, then once more with the reason");
    assert!(asked[1].messages > asked[0].messages, "the second call carries the correction");
    let rated = other["result"]["rating"].as_str().unwrap();
    assert_ne!(rated, "Review", "a readable decision keeps its rating");

    // The history's rating filter finds it, and only it.
    let reviews = get_json(&c, server.url("/api/trading/runs?rating=Review")).await;
    let ids: Vec<&str> = reviews["runs"].as_array().unwrap().iter().map(|r| r["runId"].as_str().unwrap()).collect();
    assert_eq!(ids, [run_id.as_str()], "{reviews}");
    let rated_runs = get_json(&c, server.url(&format!("/api/trading/runs?rating={rated}"))).await;
    let ids: Vec<&str> = rated_runs["runs"].as_array().unwrap().iter().map(|r| r["runId"].as_str().unwrap()).collect();
    assert_eq!(ids, [settled.as_str()], "{rated_runs}");
    let page = c.get(server.url("/runs?rating=Review")).send().await.unwrap().text().await.unwrap();
    assert!(page.contains(&run_id) && !page.contains(&settled), "the /runs page filters the same way");

    // Counted on the stats.
    let stats = get_json(&c, server.url("/api/trading/stats")).await;
    assert_eq!((stats["lastDay"]["completed"].as_u64(), stats["lastDay"]["review"].as_u64()), (Some(2), Some(1)));
}

#[tokio::test]
async fn a_quick_runs_unreadable_assessment_is_left_for_review_sqlite() {
    an_unreadable_final_decision_is_left_for_review(TestDb::sqlite(), "quick", QUICK).await;
}

#[tokio::test]
async fn a_quick_runs_unreadable_assessment_is_left_for_review_postgres() {
    an_unreadable_final_decision_is_left_for_review(TestDb::postgres().await, "quick", QUICK).await;
}

#[tokio::test]
async fn a_portfolio_managers_unreadable_decision_is_left_for_review() {
    an_unreadable_final_decision_is_left_for_review(TestDb::sqlite(), "standard", PORTFOLIO_MANAGER).await;
}
