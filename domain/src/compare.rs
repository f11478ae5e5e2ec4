//! Runs side by side (`/compare?runs=…`, `GET /api/trading/compare?runs=…`): 2–4 runs as one
//! table of labelled rows — settings, rating, each analyst's stance, the research verdict,
//! the final plan, cost and duration — each row marked where the runs differ. The page, the
//! API and the CSV all show these rows, so they cannot disagree; the plan's numbers are
//! written by [`crate::plan`]'s formatters, as everywhere else.

use serde::{Deserialize, Serialize};

use crate::analyst::AnalystKind;
use crate::ids::RunId;
use crate::plan::{TradePlan, days, price, risk, size};
use crate::progress::Progress;
use crate::rating::Rating;
use crate::request::FieldError;
use crate::status::JobStatus;

/// The fewest runs a comparison holds.
pub const COMPARE_MIN: usize = 2;
/// The most runs a comparison holds.
pub const COMPARE_MAX: usize = 4;

/// One compared run: who it is, and the headline of its verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ComparedRun {
    pub run_id: RunId,
    pub symbol: String,
    pub status: JobStatus,
    pub rating: Option<Rating>,
    /// 0–1.
    pub confidence: Option<f64>,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// One line of the table: a label and each run's value as it is written on the page, in the
/// order of the runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct CompareRow {
    /// The part of the run it belongs to: `settings`, `verdict`, `analysts`, `team`, `plan`
    /// or `cost`.
    pub section: String,
    pub label: String,
    /// One per run; `—` where a run has none.
    pub values: Vec<String>,
    /// Whether the values are not all the same.
    pub differs: bool,
}

/// The body of `GET /api/trading/compare`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Comparison {
    pub runs: Vec<ComparedRun>,
    pub rows: Vec<CompareRow>,
}

/// The ids of a `runs` parameter: given once as a comma-separated list, or repeated (as a
/// form of ticked boxes sends it), or both. 2–4 distinct ids; a repeated id counts once.
pub fn parse_ids<'a>(values: impl IntoIterator<Item = &'a str>) -> Result<Vec<RunId>, FieldError> {
    let mut ids: Vec<RunId> = Vec::new();
    for part in values.into_iter().flat_map(|v| v.split(',')).map(str::trim).filter(|p| !p.is_empty()) {
        let id: RunId = part.parse().map_err(|_| {
            let shown: String = part.chars().take(40).collect();
            FieldError::new("runs", format!("'{shown}' is not a run id"))
        })?;
        if !ids.contains(&id) {
            ids.push(id);
        }
        if ids.len() > COMPARE_MAX {
            return Err(FieldError::new("runs", format!("at most {COMPARE_MAX} runs can be compared")));
        }
    }
    if ids.len() < COMPARE_MIN {
        return Err(FieldError::new("runs", format!("pick {COMPARE_MIN} to {COMPARE_MAX} runs to compare")));
    }
    Ok(ids)
}

const NONE: &str = "—";

fn pct(p: f64) -> String {
    format!("{:.0}%", p * 100.0)
}

fn level(p: &TradePlan, f: fn(&crate::plan::Levels) -> f64) -> String {
    p.levels.as_ref().map(|l| price(f(l))).unwrap_or_else(|| NONE.into())
}

impl Comparison {
    /// The table of `runs` (2–4, in the order asked for).
    pub fn of(runs: &[Progress]) -> Self {
        let mut rows = Vec::new();
        let mut row = |section: &str, label: &str, values: Vec<String>| {
            let differs = values.windows(2).any(|w| w[0] != w[1]);
            rows.push(CompareRow { section: section.into(), label: label.into(), values, differs });
        };
        let each = |f: &dyn Fn(&Progress) -> Option<String>| -> Vec<String> {
            runs.iter().map(|p| f(p).unwrap_or_else(|| NONE.into())).collect()
        };

        row("settings", "Symbol", each(&|p| Some(p.run.symbol.to_string())));
        row(
            "settings",
            "As of",
            each(&|p| p.result.as_ref().map(|r| r.as_of.to_string()).or(p.run.as_of.map(|d| d.to_string()))),
        );
        row("settings", "Model", each(&|p| Some(p.run.model_id.to_string())));
        row(
            "settings",
            "Deep model",
            each(&|p| p.result.as_ref().and_then(|r| r.team.as_ref()).and_then(|t| t.deep_model_id.clone())),
        );
        row("settings", "Depth", each(&|p| Some(p.run.depth.id().to_string())));
        row(
            "settings",
            "Analysts",
            each(&|p| Some(p.run.analysts.iter().map(|a| a.id()).collect::<Vec<_>>().join(", "))),
        );
        row("settings", "Status", each(&|p| Some(p.run.status.label().to_string())));

        row("verdict", "Rating", each(&|p| p.result.as_ref().map(|r| r.rating.as_str().to_string())));
        row("verdict", "Confidence", each(&|p| p.result.as_ref().map(|r| pct(r.confidence))));

        for kind in AnalystKind::ALL {
            if !runs.iter().any(|p| p.run.analysts.contains(&kind)) {
                continue;
            }
            let stance = each(&|p| {
                let r = p.result.as_ref()?.reports.iter().find(|r| r.analyst == kind)?;
                Some(format!("{} {}", r.stance.as_str(), pct(r.confidence)))
            });
            row("analysts", kind.step_name(), stance);
        }

        if runs.iter().any(|p| p.result.as_ref().is_some_and(|r| r.team.is_some())) {
            let verdict = each(&|p| {
                let v = &p.result.as_ref()?.team.as_ref()?.verdict;
                Some(format!("{} {}", v.action.as_str(), pct(v.confidence)))
            });
            row("team", "Research verdict", verdict);
        }

        type Show = fn(&TradePlan) -> String;
        let plan_rows: [(&str, Show); 7] = [
            ("Direction", |p| p.direction.label().into()),
            ("Entry", |p| level(p, |l| l.entry)),
            ("Stop", |p| level(p, |l| l.stop)),
            ("Target", |p| level(p, |l| l.target)),
            ("Horizon", |p| days(p.horizon_days)),
            ("Size", |p| size(p.size_pct)),
            ("Risk", |p| risk(p.risk_pct)),
        ];
        for (label, show) in plan_rows {
            row("plan", label, each(&|p| p.result.as_ref()?.trade.as_ref().map(|t| show(&t.plan))));
        }

        row(
            "cost",
            "Cost",
            each(&|p| {
                Some(if p.run.model_id.is_offline() { "free".into() } else { format!("${:.4}", p.run.cost_usd) })
            }),
        );
        row("cost", "Model calls", each(&|p| Some(p.run.llm_calls.to_string())));
        row("cost", "Duration", each(&|p| p.run.duration.map(crate::progress::duration_ms)));

        let runs = runs
            .iter()
            .map(|p| ComparedRun {
                run_id: p.run.run_id,
                symbol: p.run.symbol.to_string(),
                status: p.run.status,
                rating: p.result.as_ref().map(|r| r.rating),
                confidence: p.result.as_ref().map(|r| r.confidence),
                created_at: p.run.created_at,
            })
            .collect();
        Self { runs, rows }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_come_listed_or_repeated_two_to_four_once_each() {
        let id = |n: u128| RunId::from_uuid(uuid::Uuid::from_u128(n));
        let (a, b, c) = (id(1), id(2), id(3));
        let listed = format!("{a},{b}");
        assert_eq!(parse_ids([listed.as_str()]).unwrap(), [a, b]);
        let (a_s, b_s, c_s) = (a.to_string(), b.to_string(), c.to_string());
        assert_eq!(parse_ids([a_s.as_str(), b_s.as_str(), a_s.as_str(), c_s.as_str()]).unwrap(), [a, b, c]);
        assert!(parse_ids([a_s.as_str()]).unwrap_err().message.contains("pick 2 to 4"));
        assert!(parse_ids([a_s.as_str(), a_s.as_str()]).is_err(), "one run twice is one run");
        let five: Vec<String> = (10..15).map(|n| id(n).to_string()).collect();
        assert!(parse_ids(five.iter().map(String::as_str)).unwrap_err().message.contains("at most 4"));
        assert!(parse_ids(["nope", b_s.as_str()]).unwrap_err().message.contains("'nope' is not a run id"));
    }
}
