//! The model catalog: which models exist, where they are served and what they cost.

use std::collections::HashSet;

use domain::{ModelId, ModelInfo};
use serde::Deserialize;

/// The catalog compiled into the binary (`agents/models.toml`).
pub const BUILTIN: &str = include_str!("../../models.toml");

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Provider {
    Offline,
    OpenaiCompatible,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogEntry {
    pub id: String,
    pub label: String,
    pub provider: Provider,
    pub base_url: Option<String>,
    pub model: Option<String>,
    pub api_key_env: Option<String>,
    #[serde(default)]
    pub input_price_per_mtok: f64,
    #[serde(default)]
    pub output_price_per_mtok: f64,
    #[serde(default = "yes")]
    pub stream: bool,
    #[serde(default = "yes")]
    pub json_mode: bool,
    pub max_tokens: Option<u32>,
    pub timeout_secs: Option<u64>,
    /// How long one call usually takes, for the time a run is expected to take before there is
    /// history of it (see [`super::Models::expected_call`]).
    pub expected_call_secs: Option<f64>,
    #[serde(default)]
    pub default: bool,
}

impl CatalogEntry {
    pub fn provider_name(&self) -> String {
        match self.provider {
            Provider::Offline => "built-in".into(),
            Provider::OpenaiCompatible => self
                .base_url
                .as_deref()
                .and_then(|u| u.split("://").nth(1))
                .and_then(|rest| rest.split('/').next())
                .unwrap_or("openai-compatible")
                .to_string(),
        }
    }

    /// Why the model cannot be used with this environment, if it cannot.
    pub fn unavailable_reason(&self, env: &dyn Fn(&str) -> Option<String>) -> Option<String> {
        match &self.api_key_env {
            Some(var) if env(var).is_none_or(|v| v.trim().is_empty()) => Some(format!("{var} is not set")),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
struct CatalogFile {
    model: Vec<CatalogEntry>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Catalog {
    entries: Vec<CatalogEntry>,
}

impl Catalog {
    pub fn builtin() -> Self {
        Self::from_toml(BUILTIN).expect("the built-in catalog is valid")
    }

    /// Parses and checks a catalog: ids well-formed and unique, endpoints present, one default
    /// at most (the first entry is the default when none is marked).
    pub fn from_toml(text: &str) -> Result<Self, String> {
        let file: CatalogFile = toml::from_str(text).map_err(|e| e.to_string())?;
        let mut seen = HashSet::new();
        for e in &file.model {
            e.id.parse::<ModelId>().map_err(|err| format!("model id: {err}"))?;
            if !seen.insert(e.id.clone()) {
                return Err(format!("model '{}' is listed twice", e.id));
            }
            if e.provider == Provider::OpenaiCompatible && (e.base_url.is_none() || e.model.is_none()) {
                return Err(format!("model '{}' needs base_url and model", e.id));
            }
        }
        if file.model.is_empty() {
            return Err("the catalog lists no models".into());
        }
        if file.model.iter().filter(|e| e.default).count() > 1 {
            return Err("more than one model is marked default".into());
        }
        Ok(Self { entries: file.model })
    }

    pub fn entries(&self) -> &[CatalogEntry] {
        &self.entries
    }

    pub fn get(&self, id: &str) -> Option<&CatalogEntry> {
        self.entries.iter().find(|e| e.id == id)
    }

    pub fn default_id(&self) -> &str {
        self.entries.iter().find(|e| e.default).unwrap_or(&self.entries[0]).id.as_str()
    }

    pub fn infos(&self, env: &dyn Fn(&str) -> Option<String>) -> Vec<ModelInfo> {
        let default = self.default_id();
        self.entries
            .iter()
            .map(|e| {
                let reason = e.unavailable_reason(env);
                ModelInfo {
                    id: e.id.clone(),
                    label: e.label.clone(),
                    provider: e.provider_name(),
                    available: reason.is_none(),
                    reason,
                    default: e.id == default,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtin_catalog_lists_offline_first_and_reports_missing_keys() {
        let c = Catalog::builtin();
        assert_eq!(c.default_id(), "offline");
        let infos = c.infos(&|var| (var == "XAI_API_KEY").then(|| "secret".to_string()));
        let grok = infos.iter().find(|m| m.id == "grok-4-fast").unwrap();
        assert!(grok.available);
        assert_eq!(grok.provider, "api.x.ai");
        let openai = infos.iter().find(|m| m.id == "gpt-4o-mini").unwrap();
        assert_eq!((openai.available, openai.reason.as_deref()), (false, Some("OPENAI_API_KEY is not set")));
        assert!(infos.iter().find(|m| m.id == "ollama/llama3.1").unwrap().available, "keyless local model");
    }

    #[test]
    fn bad_catalogs_are_refused_with_a_reason() {
        let dup =
            "[[model]]\nid='a'\nlabel='A'\nprovider='offline'\n[[model]]\nid='a'\nlabel='B'\nprovider='offline'\n";
        assert_eq!(Catalog::from_toml(dup).unwrap_err(), "model 'a' is listed twice");
        let no_url = "[[model]]\nid='x'\nlabel='X'\nprovider='openai-compatible'\n";
        assert!(Catalog::from_toml(no_url).unwrap_err().contains("needs base_url"));
        let bad_id = "[[model]]\nid='Has Space'\nlabel='X'\nprovider='offline'\n";
        assert!(Catalog::from_toml(bad_id).unwrap_err().starts_with("model id:"));
        assert!(Catalog::from_toml("[[model]]\nid='a'\nlabel='A'\nprovider='offline'\ntypo=1\n").is_err());
    }
}
