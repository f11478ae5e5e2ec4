//! Test helpers (feature `testing`): throwaway SQLite and PostgreSQL databases, and a scripted
//! [`Handler`] whose behaviour a test chooses step by step.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Value, json};

use crate::clock::Clock;
use crate::context::{Handler, JobContext, JobError};
use crate::job::{JobId, NewJob};
use crate::store::{Database, JobStore};

/// The kind of the jobs [`ScriptedHandler`] runs.
pub const SCRIPTED: &str = "scripted";

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

    /// Opens the database and applies the queue's migrations.
    pub async fn open(&self, clock: Arc<dyn Clock>) -> Database {
        let db = Database::connect(&self.url, clock).await.expect("open the test database");
        db.migrate_queue().await.expect("migrate the queue");
        db
    }

    /// The queue of a freshly opened database.
    pub async fn store(&self, clock: Arc<dyn Clock>) -> Arc<dyn JobStore> {
        self.open(clock).await.queue().clone()
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

/// A job for [`ScriptedHandler`] of `owner`, whose steps are `a`, `b` and `c`: priority 0,
/// three attempts, a ten-minute timeout. Override fields with struct update syntax.
pub fn new_job(owner: &str) -> NewJob {
    NewJob { progress: json!({"done": []}), ..NewJob::new(SCRIPTED, owner, json!({"steps": ["a", "b", "c"]})) }
}

/// What the scripted handler does at one step.
#[derive(Debug, Clone, PartialEq)]
pub enum StepScript {
    /// Report progress, then store the step's checkpoint.
    Complete,
    /// Fail with this message.
    Fail(String),
    /// Never return (until cancelled or timed out).
    Hang,
    /// Store the checkpoint, then never return: a worker that dies right after a checkpoint.
    CompleteThenHang,
    /// Report progress, wait this long, then store the checkpoint.
    Slow(Duration),
}

/// A [`Handler`] that walks the job's `args.steps`, doing what the script says at each
/// (complete by default), skipping steps with a checkpoint, and recording which steps it ran.
/// Its progress document is `{"done": [steps done], "current": step}`; its output
/// `{"steps": n}`, the steps done in all.
#[derive(Default)]
pub struct ScriptedHandler {
    pub script: HashMap<String, StepScript>,
    pub executed: Mutex<Vec<(JobId, String)>>,
}

impl ScriptedHandler {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with(mut self, step: &str, script: StepScript) -> Self {
        self.script.insert(step.to_string(), script);
        self
    }

    pub fn executed(&self) -> Vec<(JobId, String)> {
        self.executed.lock().expect("not poisoned").clone()
    }
}

#[async_trait]
impl Handler for ScriptedHandler {
    async fn run(&self, ctx: JobContext) -> Result<Value, JobError> {
        let job = ctx.job().clone();
        let steps: Vec<String> = serde_json::from_value(job.args["steps"].clone()).unwrap_or_default();
        let mut done: Vec<String> = steps.iter().filter(|s| ctx.checkpoint(s).is_some()).cloned().collect();
        for step in steps {
            if ctx.checkpoint(&step).is_some() {
                continue;
            }
            self.executed.lock().expect("not poisoned").push((job.job_id, step.clone()));
            let script = self.script.get(&step).cloned().unwrap_or(StepScript::Complete);
            ctx.report(json!({"done": done, "current": step}), true).await?;
            match script {
                StepScript::Complete | StepScript::CompleteThenHang | StepScript::Slow(_) => {
                    if let StepScript::Slow(d) = script {
                        tokio::time::sleep(d).await;
                    }
                    done.push(step.clone());
                    ctx.save(&step, json!({"step": step, "attempt": job.attempt}), json!({"done": done})).await?;
                    if script == StepScript::CompleteThenHang {
                        std::future::pending::<()>().await;
                    }
                }
                StepScript::Fail(message) => return Err(JobError::Failed(message)),
                StepScript::Hang => std::future::pending::<()>().await,
            }
        }
        Ok(json!({"steps": done.len()}))
    }

    fn noun(&self) -> &'static str {
        "scripted job"
    }
}

/// A parent of `children` scripted jobs of `owner`, at most `child_limit` of the owner's
/// children running at once.
pub fn new_family(owner: &str, children: usize, child_limit: u32) -> crate::job::Insert {
    crate::job::Insert {
        job: NewJob { child_limit: Some(child_limit), ..new_job(owner) },
        children: (0..children).map(|_| NewJob { priority: -10, ..new_job(owner) }).collect(),
        owner_limit: None,
    }
}

/// Runs each listed test function against a fresh SQLite and a fresh PostgreSQL database:
/// `both_backends!(name, …)` where each `name(h: Harness)` is an async function and
/// `Harness::new(TestDb)` opens the harness the test file defines.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name(super::Harness::new($crate::testing::TestDb::sqlite()).await).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name(super::Harness::new($crate::testing::TestDb::postgres().await).await).await;
                }
            )*
        }
    };
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
