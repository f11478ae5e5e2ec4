//! Runs side by side: each asked-for run read as its owner reads it (a run of someone else is
//! not found, as everywhere), then one table ([`domain::Comparison`]).

use domain::{Comparison, RunId};

use crate::error::Result;
use crate::runs::RunService;

impl RunService {
    /// `user_id`'s runs `ids` (2–4, checked by [`domain::compare::parse_ids`]) side by side.
    pub async fn compare(&self, user_id: &str, ids: &[RunId]) -> Result<Comparison> {
        let mut runs = Vec::with_capacity(ids.len());
        for id in ids {
            runs.push(self.progress(user_id, *id).await?.0);
        }
        Ok(Comparison::of(&runs))
    }
}
