//! Test helpers (feature `testing`): throwaway SQLite and PostgreSQL databases, and a scripted
//! [`Analysis`] whose behaviour a test chooses step by step.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::NaiveDate;
use domain::{AnalysisResult, Rating, TokenUsage};
use serde_json::json;

use crate::analysis::{Analysis, AnalysisError, JobContext, StepUsage};
use crate::clock::Clock;
use crate::store::{JobStore, postgres::PostgresStore, sqlite::SqliteStore};

/// The server PostgreSQL tests use: `TEST_DATABASE_URL`, or the local one CI provides.
pub fn postgres_admin_url() -> String {
    std::env::var("TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// The same server URL, naming another database.
pub fn with_database(url: &str, name: &str) -> String {
    let scheme_end = url.find("://").map(|i| i + 3).unwrap_or(0);
    let (base, query) = match url.find('?') {
        Some(q) => (&url[..q], &url[q..]),
        None => (url, ""),
    };
    let authority_end = base[scheme_end..].find('/').map(|i| scheme_end + i).unwrap_or(base.len());
    format!("{}/{}{}", &base[..authority_end], name, query)
}

/// A database that exists for one test.
pub struct TestDb {
    pub url: String,
    cleanup: Cleanup,
}

enum Cleanup {
    File(std::path::PathBuf),
    Database { admin_url: String, name: String },
}

impl TestDb {
    /// A fresh SQLite file in the temp directory.
    pub fn sqlite() -> Self {
        let path = std::env::temp_dir().join(format!("ta-test-{}.db", uuid::Uuid::new_v4().simple()));
        Self { url: format!("sqlite://{}", path.display()), cleanup: Cleanup::File(path) }
    }

    /// A fresh PostgreSQL database, `ta_test_<unix time>_<random>`. Databases of this shape
    /// older than a day (left by a test that crashed) are dropped on the way.
    pub async fn postgres() -> Self {
        use sqlx::Connection;
        let admin_url = postgres_admin_url();
        let mut admin = sqlx::PgConnection::connect(&admin_url)
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL is needed for this test ({admin_url}): {e}"));
        let now = chrono::Utc::now().timestamp();
        let stale: Vec<String> =
            sqlx::query_scalar("select datname from pg_database where datname like 'ta\\_test\\_%'")
                .fetch_all(&mut admin)
                .await
                .unwrap_or_default();
        for name in stale {
            let born = name.split('_').nth(2).and_then(|t| t.parse::<i64>().ok()).unwrap_or(now);
            if now - born > 86_400 {
                let _ = sqlx::query(sqlx::AssertSqlSafe(format!("drop database if exists \"{name}\" with (force)")))
                    .execute(&mut admin)
                    .await;
            }
        }
        let name = format!("ta_test_{now}_{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        sqlx::query(sqlx::AssertSqlSafe(format!("create database \"{name}\"")))
            .execute(&mut admin)
            .await
            .expect("create test database");
        let url = with_database(&admin_url, &name);
        Self { url, cleanup: Cleanup::Database { admin_url, name } }
    }

    /// Opens the store and applies migrations.
    pub async fn store(&self, clock: Arc<dyn Clock>) -> Arc<dyn JobStore> {
        let store: Arc<dyn JobStore> = if self.url.starts_with("sqlite:") {
            Arc::new(SqliteStore::connect(&self.url, clock).await.expect("open sqlite"))
        } else {
            Arc::new(PostgresStore::connect(&self.url, clock).await.expect("open postgres"))
        };
        store.migrate().await.expect("migrate");
        store
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        match &self.cleanup {
            Cleanup::File(path) => {
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
                }
            }
            Cleanup::Database { admin_url, name } => {
                let (admin_url, name) = (admin_url.clone(), name.clone());
                // Drop may run inside a runtime; do the async work on a thread of its own.
                let _ = std::thread::spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
                    rt.block_on(async move {
                        use sqlx::Connection;
                        if let Ok(mut admin) = sqlx::PgConnection::connect(&admin_url).await {
                            let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                                "drop database if exists \"{name}\" with (force)"
                            )))
                            .execute(&mut admin)
                            .await;
                        }
                    });
                })
                .join();
            }
        }
    }
}

/// A run to insert in tests: AAPL with the invest and risk analysts, the offline model, three
/// attempts, a ten-minute timeout. Override fields with struct update syntax.
pub fn new_job(user: &str) -> crate::model::NewJob {
    crate::model::NewJob {
        run_id: domain::RunId::from_uuid(uuid::Uuid::new_v4()),
        user_id: user.to_string(),
        symbol: "AAPL".into(),
        model_id: "offline".into(),
        analysts: vec![domain::AnalystKind::Invest, domain::AnalystKind::Risk],
        as_of: None,
        priority: 0,
        max_attempts: 3,
        timeout_ms: 600_000,
        retry_of: None,
        idempotency_key: None,
        request_hash: None,
        options: domain::RunOptions::default(),
        backtest_id: None,
    }
}

/// What the scripted analysis does at one step.
#[derive(Debug, Clone, PartialEq)]
pub enum StepScript {
    /// Start, report 50 %, complete with one "LLM call".
    Complete,
    /// Start, then fail with this message.
    Fail(String),
    /// Start, then never return (until cancelled or timed out).
    Hang,
    /// Complete the step, then never return: a worker that dies right after a checkpoint.
    CompleteThenHang,
    /// Start, report progress, then wait this long before completing.
    Slow(Duration),
}

/// An [`Analysis`] that walks the job's steps, doing what the script says at each (complete by
/// default), skipping steps with a checkpoint, and recording which steps it executed.
#[derive(Default)]
pub struct ScriptedAnalysis {
    pub script: HashMap<String, StepScript>,
    pub executed: Mutex<Vec<(domain::RunId, String)>>,
}

impl ScriptedAnalysis {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with(mut self, step: &str, script: StepScript) -> Self {
        self.script.insert(step.to_string(), script);
        self
    }

    pub fn executed(&self) -> Vec<(domain::RunId, String)> {
        self.executed.lock().expect("not poisoned").clone()
    }
}

/// A plausible result for a scripted run.
pub fn sample_result(symbol: &str, llm_calls: u32) -> AnalysisResult {
    AnalysisResult {
        symbol: symbol.to_string(),
        as_of: NaiveDate::from_ymd_opt(2023, 9, 21).expect("date"),
        model_id: "scripted".into(),
        rating: Rating::Hold,
        confidence: 0.5,
        summary: "Scripted.".into(),
        key_risks: vec![],
        reports: vec![],
        figures: vec![],
        chart: vec![],
        llm_calls,
        tokens: TokenUsage::default(),
        rule_based: true,
        cost_usd: None,
        team: None,
        invest_analyst: None,
        risk_analyst: None,
        sentiment_analyst: None,
        technical_analyst: None,
        final_assessment: None,
    }
}

#[async_trait]
impl Analysis for ScriptedAnalysis {
    async fn run(&self, ctx: JobContext) -> Result<AnalysisResult, AnalysisError> {
        let spec = ctx.spec().clone();
        let mut calls = 0;
        for step in domain::step_names(&spec.analysts, spec.options.depth) {
            if ctx.checkpoint(&step).is_some() {
                continue;
            }
            self.executed.lock().expect("not poisoned").push((spec.run_id, step.clone()));
            let script = self.script.get(&step).cloned().unwrap_or(StepScript::Complete);
            ctx.start_step(&step, Some("working")).await?;
            match script {
                StepScript::Complete | StepScript::CompleteThenHang | StepScript::Slow(_) => {
                    ctx.step_progress(&step, 50, None).await?;
                    if let StepScript::Slow(d) = script {
                        tokio::time::sleep(d).await;
                    }
                    let usage =
                        StepUsage { llm_calls: 1, tokens: TokenUsage { prompt: 10, completion: 5 }, cost_usd: 0.0 };
                    ctx.complete_step(&step, json!({ "step": step, "attempt": spec.attempt }), usage, &spec.model_id)
                        .await?;
                    calls += 1;
                    if script == StepScript::CompleteThenHang {
                        std::future::pending::<()>().await;
                    }
                }
                StepScript::Fail(message) => return Err(AnalysisError::failed(step, message)),
                StepScript::Hang => std::future::pending::<()>().await,
            }
        }
        Ok(sample_result(&spec.symbol, calls))
    }
}

/// A backtest of `cells` cells for `user` (AAPL, one as-of date per cell), at most
/// `max_running` of them running at once.
pub fn new_backtest(user: &str, cells: usize, max_running: u32) -> crate::model::NewBacktest {
    let backtest_id = domain::RunId::from_uuid(uuid::Uuid::new_v4());
    let from = chrono::NaiveDate::from_ymd_opt(2019, 1, 2).expect("date");
    let spec = domain::backtest::BacktestSpec {
        symbols: vec!["AAPL".into()],
        from,
        to: from,
        every_days: 1,
        horizons: vec![5, 20],
        model_id: "offline".into(),
        analysts: vec![domain::AnalystKind::Invest, domain::AnalystKind::Risk],
        options: domain::RunOptions::default(),
        bearish: domain::backtest::BearishPosition::Flat,
    };
    let cells = (0..cells)
        .map(|i| crate::model::NewJob {
            as_of: Some(from + chrono::Duration::days(i as i64)),
            priority: crate::model::CELL_PRIORITY,
            backtest_id: Some(backtest_id),
            ..new_job(user)
        })
        .collect();
    crate::model::NewBacktest { backtest_id, user_id: user.to_string(), spec, max_running, cells }
}

#[cfg(test)]
mod tests {
    #[test]
    fn database_names_replace_the_path_only() {
        assert_eq!(super::with_database("postgres://u@h:5432/postgres", "x"), "postgres://u@h:5432/x");
        assert_eq!(super::with_database("postgres://u@h/db?sslmode=disable", "x"), "postgres://u@h/x?sslmode=disable");
        assert_eq!(super::with_database("postgres://u@h:5432", "x"), "postgres://u@h:5432/x");
    }
}
