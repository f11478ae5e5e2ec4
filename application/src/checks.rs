//! Checks of a start request that need the market data and the model catalog, so that what can
//! be known up front is an error naming the field, not a failed run a minute later.

use std::sync::Arc;

use agents::market::{MarketData, MarketError};
use agents::model::{ModelError, Models};
use domain::{FieldError, ValidStart};

/// Checks a start request against the market data and the model catalog, so that what can be
/// known up front is a 400 naming the field, not a failed run a minute later.
pub struct Checks {
    pub market: Arc<dyn MarketData>,
    pub models: Arc<Models>,
}

impl Checks {
    /// The last day of `symbol`'s data, where the market data can tell (the bundled files can;
    /// online providers answer with whatever is latest when asked). A run without an as-of date
    /// is analysed as of this day, so its page and history can say which day it is from the
    /// start.
    pub fn data_end(&self, symbol: &str) -> Option<chrono::NaiveDate> {
        self.market.symbols()?.into_iter().find(|s| s.symbol.eq_ignore_ascii_case(symbol)).map(|s| s.last_date)
    }

    /// Every field the market data or the catalog refuses, or nothing.
    pub fn check(&self, start: &ValidStart) -> Result<(), Vec<FieldError>> {
        let mut errors = Vec::new();
        let models = std::iter::once(("modelId", &start.model_id))
            .chain(start.options.deep_model_id.as_ref().map(|m| ("deepModelId", m)));
        for (field, id) in models {
            if let Err(e) = self.models.get(id.as_str()) {
                let message = match e {
                    ModelError::Unknown(id) => {
                        let ids: Vec<&str> = self.models.catalog().entries().iter().map(|e| e.id.as_str()).collect();
                        format!("'{id}' is not a model here (choose from {})", ids.join(", "))
                    }
                    ModelError::Unavailable(id, reason) => format!("'{id}' is unavailable: {reason}"),
                    other => other.to_string(),
                };
                errors.push(FieldError::new(field, message));
            }
        }
        match self.market.check(start.symbol.as_str(), start.as_of) {
            Ok(()) => {}
            Err(MarketError::UnknownSymbol(s)) => {
                let known = self
                    .market
                    .symbols()
                    .map(|list| {
                        format!(
                            " (available: {})",
                            list.iter().map(|s| s.symbol.as_str()).collect::<Vec<_>>().join(", ")
                        )
                    })
                    .unwrap_or_default();
                errors.push(FieldError::new("symbol", format!("no market data for {s}{known}")));
            }
            Err(e @ (MarketError::OutOfRange { .. } | MarketError::NotEnoughHistory { .. })) => {
                errors.push(FieldError::new("asOf", e.to_string()));
            }
            Err(e) => errors.push(FieldError::new("symbol", e.to_string())),
        }
        if errors.is_empty() { Ok(()) } else { Err(errors) }
    }
}
