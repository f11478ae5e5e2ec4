//! Batches: one request, one run per symbol. The runs are ordinary runs (each its own page,
//! progress and place in the history); the batch is what they were started together as, and
//! its view is a table of them with totals.

use serde::{Deserialize, Serialize};

use crate::ids::{BatchId, RunId};
use crate::rating::Rating;
use crate::request::{FieldError, StartRequest};
use crate::status::JobStatus;

/// Symbols one batch may name.
pub const MAX_SYMBOLS: usize = 50;

/// `POST /api/trading/batches`: the symbols, and the settings every run of them shares (as a
/// single run's request names them).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct BatchRequest {
    /// 1–50 ticker symbols, each run once; a symbol named twice is run once.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub symbols: Vec<String>,
    /// Absent means the server's default model.
    #[serde(default)]
    pub model_id: Option<String>,
    /// Absent means every analyst; present but empty is an error.
    #[serde(default)]
    pub analysts: Option<Vec<String>>,
    /// `YYYY-MM-DD`; absent means each symbol's last date in the data.
    #[serde(default)]
    pub as_of: Option<String>,
    /// `quick` (the default), `standard` or `deep`.
    #[serde(default)]
    pub depth: Option<String>,
    /// A stronger model for the research and portfolio managers of `standard`/`deep` runs.
    #[serde(default)]
    pub deep_model_id: Option<String>,
    /// Budget of each run in US dollars; absent means the server's default (if any).
    #[serde(default)]
    pub max_cost_usd: Option<f64>,
    /// Budget of each run in tokens; absent means the server's default (if any).
    #[serde(default)]
    pub max_tokens: Option<u64>,
    /// An https URL told of the batch's events, signed (Standard Webhooks): `start` when it is
    /// stored, `step` when one of its runs ends, `completed` when the last has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<String>,
    /// Any of `start`, `step`, `completed` (the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_events: Option<Vec<String>>,
}

impl BatchRequest {
    /// The symbols as given, trimmed and upper-cased, each once in the order first named; a
    /// `400` naming `symbols` when there are none or too many.
    pub fn symbols(&self) -> Result<Vec<String>, FieldError> {
        let mut out: Vec<String> = Vec::new();
        for s in &self.symbols {
            let s = s.trim().to_ascii_uppercase();
            if !s.is_empty() && !out.contains(&s) {
                out.push(s);
            }
        }
        match out.len() {
            0 => Err(FieldError::new("symbols", "name at least one symbol, e.g. AAPL, MSFT")),
            n if n > MAX_SYMBOLS => {
                Err(FieldError::new("symbols", format!("{n} symbols: a batch runs at most {MAX_SYMBOLS}")))
            }
            _ => Ok(out),
        }
    }

    /// The request of one of its runs.
    pub fn run_of(&self, symbol: &str) -> StartRequest {
        StartRequest {
            symbol: Some(symbol.to_string()),
            model_id: self.model_id.clone(),
            analysts: self.analysts.clone(),
            as_of: self.as_of.clone(),
            depth: self.depth.clone(),
            deep_model_id: self.deep_model_id.clone(),
            max_cost_usd: self.max_cost_usd,
            max_tokens: self.max_tokens,
            // The batch is told of its runs' ends.
            webhook: None,
            webhook_events: None,
        }
    }

    /// A batch of the settings of `run` over `symbols` (the new-analysis form with a list).
    pub fn from_run(run: &StartRequest, symbols: Vec<String>) -> Self {
        Self {
            symbols,
            model_id: run.model_id.clone(),
            analysts: run.analysts.clone(),
            as_of: run.as_of.clone(),
            depth: run.depth.clone(),
            deep_model_id: run.deep_model_id.clone(),
            max_cost_usd: run.max_cost_usd,
            max_tokens: run.max_tokens,
            webhook: run.webhook.clone(),
            webhook_events: run.webhook_events.clone(),
        }
    }
}

/// Splits a list of symbols as people type it: by commas, semicolons or new lines. A space is
/// not a separator: "AA PL" is one (malformed) symbol, not two.
pub fn split_symbols(list: &str) -> Vec<String> {
    list.split([',', ';', '\n']).map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect()
}

/// The answer to a batch's start: `202` with its id and its runs, in the order of the symbols.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct BatchStarted {
    pub batch_id: BatchId,
    pub runs: Vec<RunId>,
}

/// `running` while any of its runs is pending or running; then `completed`, or `cancelled` if
/// it was cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum BatchStatus {
    Running,
    Completed,
    Cancelled,
}

/// One run of a batch, as its table shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct BatchRun {
    pub run_id: RunId,
    pub symbol: String,
    pub status: JobStatus,
    pub percent: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_step: Option<String>,
    /// Once completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rating: Option<Rating>,
    /// Once completed, 0–1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f64>,
    /// What its model calls cost so far.
    pub cost_usd: f64,
}

/// A batch's runs counted by status, and what they cost together.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct BatchTotals {
    pub runs: u32,
    pub pending: u32,
    pub running: u32,
    pub completed: u32,
    /// Failed or timed out.
    pub failed: u32,
    pub cancelled: u32,
    pub cost_usd: f64,
}

impl BatchTotals {
    pub fn of(runs: &[BatchRun]) -> Self {
        let mut t = Self { runs: runs.len() as u32, ..Self::default() };
        for r in runs {
            match r.status {
                JobStatus::Pending => t.pending += 1,
                JobStatus::Running => t.running += 1,
                JobStatus::Completed => t.completed += 1,
                JobStatus::Failed | JobStatus::Timeout => t.failed += 1,
                JobStatus::Cancelled => t.cancelled += 1,
            }
            t.cost_usd += r.cost_usd;
        }
        t
    }

    /// Ended runs out of all, in percent.
    pub fn percent(&self) -> u8 {
        match self.runs {
            0 => 100,
            n => ((self.completed + self.failed + self.cancelled) * 100 / n) as u8,
        }
    }
}

/// The body of `GET /api/trading/batches/{batchId}`: its runs in the order of its symbols.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct BatchView {
    pub batch_id: BatchId,
    pub status: BatchStatus,
    /// The settings its runs share (`symbols` as given, each once).
    pub request: BatchRequest,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub runs: Vec<BatchRun>,
    pub totals: BatchTotals,
}

/// One batch in `GET /api/trading/batches`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct BatchSummary {
    pub batch_id: BatchId,
    pub symbols: Vec<String>,
    pub cancelled: bool,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// The orders a batch's table can be read in: as its symbols were given, or by rating or
/// confidence (`-` first: descending). Runs without a rating yet come last either way.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum BatchOrder {
    #[default]
    Given,
    Rating,
    RatingDesc,
    Confidence,
    ConfidenceDesc,
}

impl BatchOrder {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s.trim() {
            "" | "given" => Self::Given,
            "rating" => Self::Rating,
            "-rating" => Self::RatingDesc,
            "confidence" => Self::Confidence,
            "-confidence" => Self::ConfidenceDesc,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Given => "given",
            Self::Rating => "rating",
            Self::RatingDesc => "-rating",
            Self::Confidence => "confidence",
            Self::ConfidenceDesc => "-confidence",
        }
    }

    /// Sorts `runs` in this order; runs equal in it keep the order they were given in.
    /// Ratings go from the most bullish (`Buy`) to the most bearish (`Sell`) ascending, `Review`
    /// after them.
    pub fn sort(self, runs: &mut [BatchRun]) {
        let rank = |r: &BatchRun| r.rating.map(|r| Rating::ANY.iter().position(|x| *x == r).unwrap_or(usize::MAX));
        let conf = |r: &BatchRun| r.confidence.filter(|c| c.is_finite());
        match self {
            Self::Given => {}
            Self::Rating => runs.sort_by_key(|r| (rank(r).is_none(), rank(r))),
            Self::RatingDesc => {
                runs.sort_by_key(|r| (rank(r).is_none(), std::cmp::Reverse(rank(r))));
            }
            Self::Confidence | Self::ConfidenceDesc => runs.sort_by(|a, b| match (conf(a), conf(b)) {
                (Some(x), Some(y)) if self == Self::Confidence => x.total_cmp(&y),
                (Some(x), Some(y)) => y.total_cmp(&x),
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (None, None) => std::cmp::Ordering::Equal,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(symbol: &str, rating: Option<Rating>, confidence: Option<f64>) -> BatchRun {
        BatchRun {
            run_id: RunId::from_uuid(uuid::Uuid::new_v4()),
            symbol: symbol.into(),
            status: if rating.is_some() { JobStatus::Completed } else { JobStatus::Running },
            percent: 0,
            current_step: None,
            rating,
            confidence,
            cost_usd: 0.25,
        }
    }

    #[test]
    fn symbols_are_read_once_each_and_bounded() {
        let r = BatchRequest {
            symbols: vec![" aapl".into(), "MSFT".into(), "AAPL".into(), "".into()],
            ..Default::default()
        };
        assert_eq!(r.symbols().unwrap(), vec!["AAPL", "MSFT"]);
        assert_eq!(BatchRequest::default().symbols().unwrap_err().field, "symbols");
        let many = BatchRequest { symbols: (0..51).map(|i| format!("S{i}")).collect(), ..Default::default() };
        assert!(many.symbols().unwrap_err().message.starts_with("51 symbols"));
        assert_eq!(split_symbols("aapl, msft;nvda\r\n ko,"), vec!["aapl", "msft", "nvda", "ko"]);
        assert_eq!(split_symbols("AA PL"), vec!["AA PL"]);
    }

    #[test]
    fn the_table_sorts_by_rating_and_confidence_with_the_unrated_last() {
        let mut runs = vec![
            run("A", Some(Rating::Hold), Some(0.5)),
            run("B", None, None),
            run("C", Some(Rating::Buy), Some(0.4)),
            run("D", Some(Rating::Sell), Some(0.9)),
        ];
        let order = |runs: &[BatchRun]| runs.iter().map(|r| r.symbol.clone()).collect::<Vec<_>>().join("");
        BatchOrder::Rating.sort(&mut runs);
        assert_eq!(order(&runs), "CADB");
        BatchOrder::RatingDesc.sort(&mut runs);
        assert_eq!(order(&runs), "DACB");
        BatchOrder::ConfidenceDesc.sort(&mut runs);
        assert_eq!(order(&runs), "DACB");
        BatchOrder::Confidence.sort(&mut runs);
        assert_eq!(order(&runs), "CADB");
        let totals = BatchTotals::of(&runs);
        assert_eq!((totals.runs, totals.completed, totals.running, totals.percent()), (4, 3, 1, 75));
        assert!((totals.cost_usd - 1.0).abs() < 1e-12);
    }
}
