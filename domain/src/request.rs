//! The body of `POST /api/trading/run` and its validation.
//!
//! The wire type keeps raw strings so that every problem can be reported against the field it
//! came from, all at once, instead of failing on the first serde error.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::analyst::AnalystKind;
use crate::ids::{ModelId, Symbol};

/// `{symbol, modelId, analysts, asOf?}` as sent by a client.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StartRequest {
    #[serde(default)]
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
}

/// One problem with one field of a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ValidStart {
    pub symbol: Symbol,
    pub model_id: ModelId,
    /// Sorted, without duplicates, never empty.
    pub analysts: Vec<AnalystKind>,
    pub as_of: Option<NaiveDate>,
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

        match (symbol, model_id, analysts, as_of) {
            (Some(symbol), Some(model_id), Some(analysts), Some(as_of)) if errors.is_empty() => {
                Ok(ValidStart { symbol, model_id, analysts, as_of })
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
    }

    #[test]
    fn every_bad_field_is_reported() {
        let e = req(r#"{"symbol":"A B","modelId":"Bad Model","analysts":["invest","astrology"],"asOf":"31/01/2020"}"#)
            .validate(&ModelId::offline())
            .unwrap_err();
        let fields: Vec<_> = e.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(fields, vec!["symbol", "modelId", "analysts", "asOf"]);
        assert!(e[2].message.contains("astrology"));
    }
}
