//! Types shared by the browser and the server. Everything here compiles to WebAssembly and
//! depends on serde alone (plus uuid and chrono for ids and dates). The `openapi` feature, for
//! the server only, derives each type's JSON schema (`utoipa::ToSchema`) from its serde form.
//!
//! Reading order:
//! - [`ids`]: `RunId`, `BacktestId`, `Symbol`, `ModelId` — validated newtypes.
//! - [`analyst`]: the analysts a user can pick and the step names of the pipeline.
//! - [`status`]: `JobStatus` and `StepStatus`, the job state machine's vocabulary.
//! - [`request`]: `StartRequest` as it arrives over the wire, and its validation.
//! - [`progress`]: the body of `GET /api/trading/progress/:runId`.
//! - [`result`]: `AnalysisResult`, the final assessment.
//! - [`countdown`]: the remaining time a page shows, kept honest as estimates change.
//! - [`export`]: a finished analysis as one Markdown document.
//! - [`plan`]: the trade a run ends on — the trader's proposal, the final plan, what changed.
//! - [`team`]: research depth and the roles after the analysts (debates, trader, risk, portfolio).
//! - [`backtest`]: a backtest's scorecard (per-rating hit rates, the strategy and baselines).
//! - [`history`]: the history's filters, its keyset cursor and run tags.
//! - [`log`]: a run's log — data read, model calls, retries, stalls, its end.
//! - [`compare`]: 2–4 runs side by side, as one table of rows marked where they differ.
//! - [`outcome`]: how a run turned out — the returns after its as-of day, against the index.
//! - [`api`]: the other request/response bodies (runs list, models, analysts, problem details).

pub mod access;
pub mod analyst;
pub mod api;
pub mod backtest;
pub mod batch;
pub mod compare;
pub mod countdown;
pub mod export;
pub mod history;
pub mod ids;
pub mod log;
pub mod outcome;
pub mod plan;
pub mod progress;
pub mod rating;
pub mod request;
pub mod result;
pub mod schedule;
pub mod status;
pub mod team;
pub mod webhook;

pub use access::{ApiToken, ShareLink};
pub use analyst::{AnalystKind, DATA_COLLECTION, FINAL_ASSESSMENT, step_names};
pub use api::{AnalystInfo, ModelInfo, Problem, RunSummary, RunsPage, StartResponse};
pub use compare::{CompareRow, ComparedRun, Comparison};
pub use history::{Called, Cursor, HistoryOrder, RunsQuery};
pub use ids::{BacktestId, BatchId, IdError, ModelId, RunId, ScheduleId, Symbol};
pub use log::{LogEntry, LogEvent, RunLog};
pub use outcome::{HorizonOutcome, OUTCOME_HORIZONS, Outcome, RunOutcome};
pub use plan::{Direction, Levels, PlanChange, PlanWhy, Trade, TradePlan};
pub use progress::{
    Progress, ProgressTransport, RerunOf, RunState, Stall, StepProgress, TextDelta, Transcript, TranscriptEntry,
};
pub use rating::{Rating, Stance};
pub use request::{FieldError, RerunRequest, StartRequest, ValidStart};
pub use result::{
    AnalysisResult, AnalystReport, Budget, Figure, FinalAssessment, PricePoint, RULE_BASED_NOTE, TokenUsage, Usage,
};
pub use status::{JobStatus, StepStatus};
pub use team::{Action, Argument, DEEP_ROUNDS_DEFAULT, Depth, RunOptions, Team, TeamReport, TeamRole, Verdict};
