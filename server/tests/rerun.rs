//! Rerunning a run from a stage (`POST /api/trading/runs/{runId}/rerun`, and the run page's
//! form) through the real binary on SQLite and PostgreSQL, with a fake provider counting the
//! calls: the stages before `from` taken over byte for byte with no model call and no cost, the
//! later ones run anew (with another managers' model), the link between the two, the log; and
//! what is refused — another identity's run, a stage that is not one, a stage whose earlier
//! steps the source never finished.

mod common;

use std::time::Duration;

use agents::testing::FakeLlm;
use common::{Server, fake_models, start_run, steps, visitor, wait_until_done};
use jobs::testing::TestDb;
use serde_json::{Value, json};

async fn rerun(c: &reqwest::Client, server: &Server, run_id: &str, body: Value) -> (u16, Value) {
    let resp = c.post(server.url(&format!("/api/trading/runs/{run_id}/rerun"))).json(&body).send().await.unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

async fn a_rerun_from_research_takes_the_analysts_over_and_runs_the_rest(db: TestDb) {
    let fake = FakeLlm::start().await;
    let catalog = fake_models(&fake, &[("fake", "ok"), ("strong", "ok")]);
    let server = Server::start(db, &[("MODEL_CATALOG", catalog.as_str()), ("FAKE_API_KEY", "sk-test")]).await;
    let c = visitor(&server).await;
    let source_id = start_run(
        &c,
        &server,
        json!({"symbol": "AAPL", "modelId": "fake", "analysts": ["invest", "risk"], "depth": "standard"}),
    )
    .await;
    let (source, _) = wait_until_done(&c, &server, &source_id, Duration::from_secs(60)).await;
    assert_eq!(source["status"], "completed", "{source}");
    let before = fake.calls().len();

    let (status, started) = rerun(&c, &server, &source_id, json!({"from": "research", "deepModelId": "strong"})).await;
    assert_eq!(status, 202, "{started}");
    let run_id = started["runId"].as_str().unwrap().to_string();
    assert_ne!(run_id, source_id);
    let (done, _) = wait_until_done(&c, &server, &run_id, Duration::from_secs(60)).await;
    let _ = std::fs::remove_file(&catalog);
    assert_eq!(done["status"], "completed", "{done}");

    // No model was asked anything for the analysts; every later stage asked again.
    let calls: Vec<_> = fake.calls().into_iter().skip(before).collect();
    let asked: Vec<&str> = calls.iter().map(|c| c.step.as_str()).collect();
    assert!(!asked.contains(&"Invest Analyst") && !asked.contains(&"Risk Analyst"), "{asked:?}");
    for step in ["Bull Researcher", "Bear Researcher", "Research Manager", "Trader", "Final Assessment"] {
        assert!(asked.contains(&step), "{step} ran anew: {asked:?}");
    }

    // The analysts' reports are the source's, byte for byte; the steps say they were taken over.
    let reports = |v: &Value| serde_json::to_string(&v["result"]["reports"]).unwrap();
    assert_eq!(reports(&done), reports(&source));
    for s in done["steps"].as_array().unwrap() {
        let taken = ["Data Collection", "Invest Analyst", "Risk Analyst"].contains(&s["name"].as_str().unwrap());
        assert_eq!(s["status"], "completed", "{s}");
        assert_eq!(s.get("reused") == Some(&json!(true)), taken, "{s}");
    }
    assert_eq!(steps(&done).len(), steps(&source).len());
    // Only the new calls are counted and paid for.
    assert_eq!(done["llmCalls"].as_u64().unwrap(), calls.len() as u64);
    assert!(done["result"]["costUsd"].as_f64().unwrap() < source["result"]["costUsd"].as_f64().unwrap());
    assert_eq!(done["rerunOf"], json!({"runId": source_id, "from": "research"}));
    assert_eq!(done["result"]["team"]["debate"].as_array().unwrap().len(), 2, "the debate ran");

    // The log says what was taken over, and from where.
    let log: Value =
        c.get(server.url(&format!("/api/trading/runs/{run_id}/log"))).send().await.unwrap().json().await.unwrap();
    let reused: Vec<&Value> = log["entries"].as_array().unwrap().iter().filter(|e| e["kind"] == "reused").collect();
    assert_eq!(reused.len(), 1, "{log}");
    assert_eq!(reused[0]["from"], source_id.as_str());
    assert_eq!(reused[0]["steps"], json!(["Data Collection", "Invest Analyst", "Risk Analyst"]));
    // The managers asked the stronger model, the others the run's own.
    let called: Vec<(&str, &str)> = log["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "call")
        .map(|e| (e["step"].as_str().unwrap(), e["model"].as_str().unwrap()))
        .collect();
    assert!(
        called.contains(&("Research Manager", "strong")) && called.contains(&("Final Assessment", "strong")),
        "{called:?}"
    );
    assert!(called.contains(&("Trader", "fake")) && called.contains(&("Bull Researcher", "fake")), "{called:?}");
    assert!(!called.iter().any(|(s, _)| ["Invest Analyst", "Risk Analyst"].contains(s)), "{called:?}");

    // The run page's form does the same without a script: to the new run's page.
    let resp = c
        .post(server.url(&format!("/runs/{source_id}/rerun")))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("from=portfolio&model=&depth=")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "followed to the new run's page");
    let landed = resp.url().path().to_string();
    assert!(landed.starts_with("/runs/") && !landed.ends_with(&source_id), "{landed}");
    let page = resp.text().await.unwrap();
    assert!(page.contains(&format!("rerun of {} from portfolio", &source_id[..8])), "the page says what it reruns");
}

#[tokio::test]
async fn a_rerun_from_research_takes_the_analysts_over_and_runs_the_rest_on_sqlite() {
    a_rerun_from_research_takes_the_analysts_over_and_runs_the_rest(TestDb::sqlite()).await;
}

#[tokio::test]
async fn a_rerun_from_research_takes_the_analysts_over_and_runs_the_rest_on_postgres() {
    a_rerun_from_research_takes_the_analysts_over_and_runs_the_rest(TestDb::postgres().await).await;
}

/// What cannot be rerun says why, field by field, and another identity's run is not there.
#[tokio::test]
async fn reruns_that_cannot_be_are_refused_with_why() {
    let server = Server::start(TestDb::sqlite(), &[]).await;
    let c = visitor(&server).await;
    let quick = start_run(&c, &server, json!({"symbol": "AAPL", "analysts": ["risk"]})).await;
    let (done, _) = wait_until_done(&c, &server, &quick, Duration::from_secs(60)).await;
    assert_eq!(done["status"], "completed");

    let field = |problem: &Value| problem["errors"][0]["field"].as_str().unwrap_or_default().to_string();
    let (status, problem) = rerun(&c, &server, &quick, json!({"from": "lunch"})).await;
    assert_eq!((status, field(&problem)), (400, "from".into()), "{problem}");
    let (status, problem) = rerun(&c, &server, &quick, json!({})).await;
    assert_eq!((status, field(&problem)), (400, "from".into()), "{problem}");
    // A quick run has no research stage; made standard, its research was never done.
    let (status, problem) = rerun(&c, &server, &quick, json!({"from": "research"})).await;
    assert_eq!(status, 400, "{problem}");
    assert!(problem["errors"][0]["message"].as_str().unwrap().contains("has no research stage"), "{problem}");
    let (status, problem) = rerun(&c, &server, &quick, json!({"from": "trading", "depth": "standard"})).await;
    assert_eq!(status, 400, "{problem}");
    assert!(problem["errors"][0]["message"].as_str().unwrap().contains("has no finished Bull Researcher"), "{problem}");
    let (status, problem) = rerun(&c, &server, &quick, json!({"from": "portfolio", "modelId": "gpt-9"})).await;
    assert_eq!((status, field(&problem)), (400, "modelId".into()), "{problem}");

    let other = visitor(&server).await;
    let (status, problem) = rerun(&other, &server, &quick, json!({"from": "portfolio"})).await;
    assert_eq!(status, 404, "{problem}");
    let (status, _) = rerun(&c, &server, "not-a-run", json!({"from": "portfolio"})).await;
    assert_eq!(status, 400);

    // A quick run rerun from its final assessment: the analyst taken over, one new call.
    let (status, started) = rerun(&c, &server, &quick, json!({"from": "portfolio"})).await;
    assert_eq!(status, 202, "{started}");
    let id = started["runId"].as_str().unwrap();
    let (again, _) = wait_until_done(&c, &server, id, Duration::from_secs(60)).await;
    assert_eq!(again["status"], "completed", "{again}");
    assert_eq!(again["llmCalls"], 1);
    assert_eq!(again["result"]["reports"], done["result"]["reports"]);
}
