//! The scales a run is judged on: the five-point rating and an analyst's stance. Their own
//! module, below both the plan (whose direction follows the rating) and the result (which
//! carries both), so neither has to import the other.

use serde::{Deserialize, Serialize};

/// The five-point rating scale, strongest buy first, and `Review`: a model's final decision
/// that could not be read into the scale. A run rated `Review` keeps the model's own words
/// and takes no position; nothing guesses a rating for it. The rule-based offline model never
/// gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Rating {
    Buy,
    Overweight,
    Hold,
    Underweight,
    Sell,
    Review,
}

impl Rating {
    /// The five-point scale a decision is read into (not `Review`).
    pub const ALL: [Rating; 5] = [Self::Buy, Self::Overweight, Self::Hold, Self::Underweight, Self::Sell];
    /// Every rating a run can have: the scale, then `Review`.
    pub const ANY: [Rating; 6] = [Self::Buy, Self::Overweight, Self::Hold, Self::Underweight, Self::Sell, Self::Review];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Buy => "Buy",
            Self::Overweight => "Overweight",
            Self::Hold => "Hold",
            Self::Underweight => "Underweight",
            Self::Sell => "Sell",
            Self::Review => "Review",
        }
    }

    /// Whether this is a rating on the scale, not a decision left for review.
    pub fn is_on_scale(self) -> bool {
        self != Self::Review
    }

    /// From a score in [-1, 1] (negative bearish), with fixed band edges.
    pub fn from_score(score: f64) -> Self {
        if score >= 0.45 {
            Self::Buy
        } else if score >= 0.15 {
            Self::Overweight
        } else if score > -0.15 {
            Self::Hold
        } else if score > -0.45 {
            Self::Underweight
        } else {
            Self::Sell
        }
    }

    /// A rating on the five-point scale, by name (any case); never `Review`.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str().eq_ignore_ascii_case(s.trim()))
    }

    /// Any rating a run can have, `Review` included (a stored rating, a history filter).
    pub fn parse_any(s: &str) -> Option<Self> {
        Self::ANY.into_iter().find(|r| r.as_str().eq_ignore_ascii_case(s.trim()))
    }
}

/// One analyst's view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Stance {
    Bullish,
    Neutral,
    Bearish,
}

impl Stance {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Bullish => "bullish",
            Self::Neutral => "neutral",
            Self::Bearish => "bearish",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "bullish" => Some(Self::Bullish),
            "neutral" => Some(Self::Neutral),
            "bearish" => Some(Self::Bearish),
            _ => None,
        }
    }

    pub fn score(self) -> f64 {
        match self {
            Self::Bullish => 1.0,
            Self::Neutral => 0.0,
            Self::Bearish => -1.0,
        }
    }
}
