//! The body of `POST /api/trading/run` and its validation.
//!
//! The wire type keeps raw strings so that every problem can be reported against the field it
//! came from, all at once, instead of failing on the first serde error.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::analyst::AnalystKind;
use crate::ids::{ModelId, Symbol};
use crate::team::{Depth, RunOptions};

/// `{symbol, modelId, analysts, asOf?}` as sent by a client.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct StartRequest {
    /// Required: its absence is a `400` naming it (read as optional so that every field's
    /// error is named at once).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(required = true, value_type = String))]
    pub symbol: Option<String>,
    /// Absent means the server's default model.
    #[serde(default)]
    pub model_id: Option<String>,
    /// Absent means every analyst; present but empty is an error.
    #[serde(default)]
    pub analysts: Option<Vec<String>>,
    /// `YYYY-MM-DD`; absent means the last date in the data.
    #[serde(default)]
    pub as_of: Option<String>,
    /// `quick` (the default), `standard` or `deep`.
    #[serde(default)]
    pub depth: Option<String>,
    /// A stronger model for the research and portfolio managers of `standard`/`deep` runs.
    #[serde(default)]
    pub deep_model_id: Option<String>,
    /// Budget in US dollars; absent means the server's default (if any).
    #[serde(default)]
    pub max_cost_usd: Option<f64>,
    /// Budget in tokens; absent means the server's default (if any).
    #[serde(default)]
    pub max_tokens: Option<u64>,
    /// An https URL told of the run's events, signed (Standard Webhooks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<String>,
    /// Which events: any of `start`, `step`, `completed` (the default: `completed`, sent for
    /// every way a run ends).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_events: Option<Vec<String>>,
}

/// `POST /api/trading/runs/{runId}/rerun`: a new run from one of a run's stages, the stages
/// before it taken over from the run as they are, the rest run anew — with another model or
/// depth if given.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct RerunRequest {
    /// The first stage to run anew: `analysts`, `research`, `trading`, `risk` or `portfolio`.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(required = true, value_type = crate::team::Team))]
    pub from: Option<String>,
    /// Absent: the run's model.
    #[serde(default)]
    pub model_id: Option<String>,
    /// Absent: the run's (none: the model above).
    #[serde(default)]
    pub deep_model_id: Option<String>,
    /// Absent: the run's depth.
    #[serde(default)]
    pub depth: Option<String>,
}

impl RerunRequest {
    /// The stage named by `from`, or the error naming it.
    pub fn stage(&self) -> Result<crate::team::Team, FieldError> {
        let ids = crate::team::Team::ALL.map(|t| t.id()).join(", ");
        match self.from.as_deref() {
            None | Some("") => Err(FieldError::new("from", format!("the stage to run anew is required: one of {ids}"))),
            Some(s) => crate::team::Team::parse(s.trim())
                .ok_or_else(|| FieldError::new("from", format!("'{s}' is not a stage: one of {ids}"))),
        }
    }
}

/// One problem with one field of a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FieldError {
    /// The field's name as the client spelled it (camelCase).
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { field: field.into(), message: message.into() }
    }
}

/// A start request whose fields are well-formed. Whether the symbol has data and the model
/// exists is checked by the server against its providers and catalog.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ValidStart {
    pub symbol: Symbol,
    pub model_id: ModelId,
    /// Sorted, without duplicates, never empty.
    pub analysts: Vec<AnalystKind>,
    pub as_of: Option<NaiveDate>,
    /// Depth, second model and budget; left out of the serialised form when all defaults, so
    /// a request that names none of them reads (and hashes) as before they existed.
    #[serde(default, skip_serializing_if = "RunOptions::is_default")]
    pub options: RunOptions,
}

impl StartRequest {
    /// Checks every field and reports every problem found.
    pub fn validate(&self, default_model: &ModelId) -> Result<ValidStart, Vec<FieldError>> {
        let mut errors = Vec::new();

        let symbol = match self.symbol.as_deref() {
            None => {
                errors.push(FieldError::new("symbol", "a symbol is required, e.g. AAPL"));
                None
            }
            Some(s) => s.parse::<Symbol>().map_err(|e| errors.push(FieldError::new("symbol", e.0))).ok(),
        };

        let model_id = match self.model_id.as_deref() {
            None => Some(default_model.clone()),
            Some(m) => m.parse::<ModelId>().map_err(|e| errors.push(FieldError::new("modelId", e.0))).ok(),
        };

        let analysts = match &self.analysts {
            None => Some(AnalystKind::ALL.to_vec()),
            Some(list) if list.is_empty() => {
                errors.push(FieldError::new("analysts", "choose at least one analyst"));
                None
            }
            Some(list) if list.len() > 16 => {
                errors.push(FieldError::new("analysts", "too many entries"));
                None
            }
            Some(list) => {
                let mut kinds = Vec::new();
                let mut ok = true;
                for a in list {
                    match a.parse::<AnalystKind>() {
                        Ok(k) => kinds.push(k),
                        Err(e) => {
                            ok = false;
                            errors.push(FieldError::new("analysts", e.0));
                        }
                    }
                }
                kinds.sort();
                kinds.dedup();
                ok.then_some(kinds)
            }
        };

        let as_of = match self.as_of.as_deref().map(str::trim) {
            None | Some("") => Some(None),
            Some(d) => match NaiveDate::parse_from_str(d, "%Y-%m-%d") {
                Ok(date) => Some(Some(date)),
                Err(_) => {
                    errors.push(FieldError::new(
                        "asOf",
                        format!("'{}' is not a date (use YYYY-MM-DD)", crate::ids::truncate(d)),
                    ));
                    None
                }
            },
        };

        let depth = match self.depth.as_deref().map(str::trim) {
            None | Some("") => Depth::Quick,
            Some(d) => d.parse::<Depth>().unwrap_or_else(|e| {
                errors.push(FieldError::new("depth", e.0));
                Depth::Quick
            }),
        };
        let deep_model_id = match self.deep_model_id.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(m) => m.parse::<ModelId>().map_err(|e| errors.push(FieldError::new("deepModelId", e.0))).ok(),
        };
        if let Some(c) = self.max_cost_usd
            && !(c.is_finite() && c > 0.0)
        {
            errors.push(FieldError::new("maxCostUsd", "must be a positive number of US dollars"));
        }
        if self.max_tokens == Some(0) {
            errors.push(FieldError::new("maxTokens", "must be a positive number of tokens"));
        }
        let options = RunOptions {
            depth,
            rounds: None,
            deep_model_id,
            max_cost_usd: self.max_cost_usd,
            max_tokens: self.max_tokens,
        };

        match (symbol, model_id, analysts, as_of) {
            (Some(symbol), Some(model_id), Some(analysts), Some(as_of)) if errors.is_empty() => {
                Ok(ValidStart { symbol, model_id, analysts, as_of, options })
            }
            _ => Err(errors),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(json: &str) -> StartRequest {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn a_good_request_is_normalised() {
        let v = req(r#"{"symbol":"aapl","modelId":"offline","analysts":["risk","invest","risk"],"asOf":"2020-01-31"}"#)
            .validate(&ModelId::offline())
            .unwrap();
        assert_eq!(v.symbol.as_str(), "AAPL");
        assert_eq!(v.analysts, vec![AnalystKind::Invest, AnalystKind::Risk]);
        assert_eq!(v.as_of, NaiveDate::from_ymd_opt(2020, 1, 31));
    }

    #[test]
    fn absent_fields_take_defaults_but_empty_analysts_do_not() {
        let v = req(r#"{"symbol":"MSFT"}"#).validate(&ModelId::offline()).unwrap();
        assert_eq!(v.analysts.len(), 4);
        assert!(v.model_id.is_offline());
        let e = req(r#"{"symbol":"MSFT","analysts":[]}"#).validate(&ModelId::offline()).unwrap_err();
        assert_eq!(e, vec![FieldError::new("analysts", "choose at least one analyst")]);
        // Up to 16 entries are read (repeats collapse); more are refused before reading them.
        let many = |n: usize| format!(r#"{{"symbol":"MSFT","analysts":{}}}"#, serde_json::json!(vec!["risk"; n]));
        let v = req(&many(16)).validate(&ModelId::offline()).unwrap();
        assert_eq!(v.analysts, vec![AnalystKind::Risk]);
        let e = req(&many(17)).validate(&ModelId::offline()).unwrap_err();
        assert_eq!(e, vec![FieldError::new("analysts", "too many entries")]);
        let e = req(r#"{"symbol":"MSFT","maxCostUsd":0}"#).validate(&ModelId::offline()).unwrap_err();
        assert_eq!(e, vec![FieldError::new("maxCostUsd", "must be a positive number of US dollars")]);
        assert!(req(r#"{"symbol":"MSFT","maxCostUsd":0.01}"#).validate(&ModelId::offline()).is_ok());
    }

    #[test]
    fn every_bad_field_is_reported() {
        let e = req(r#"{"symbol":"A B","modelId":"Bad Model","analysts":["invest","astrology"],"asOf":"31/01/2020"}"#)
            .validate(&ModelId::offline())
            .unwrap_err();
        let fields: Vec<_> = e.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(fields, vec!["symbol", "modelId", "analysts", "asOf"]);
        assert!(e[2].message.contains("astrology"));
        let e = req(r#"{"symbol":"AAPL","depth":"thorough","deepModelId":"Bad Model","maxCostUsd":-1,"maxTokens":0}"#)
            .validate(&ModelId::offline())
            .unwrap_err();
        let fields: Vec<_> = e.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(fields, vec!["depth", "deepModelId", "maxCostUsd", "maxTokens"]);
    }

    #[test]
    fn depth_model_and_budget_are_carried() {
        let v = req(r#"{"symbol":"AAPL","depth":"Standard","deepModelId":"grok-4","maxCostUsd":0.5,"maxTokens":9000}"#)
            .validate(&ModelId::offline())
            .unwrap();
        assert_eq!(v.options.depth, Depth::Standard);
        assert_eq!(v.options.deep_model_id.as_ref().map(|m| m.as_str()), Some("grok-4"));
        assert_eq!((v.options.max_cost_usd, v.options.max_tokens), (Some(0.5), Some(9000)));
        let quick = req(r#"{"symbol":"AAPL"}"#).validate(&ModelId::offline()).unwrap();
        assert!(quick.options.is_default());
        assert!(!serde_json::to_string(&quick).unwrap().contains("options"));
    }
}
