//! Rerunning a run from one of its stages: a new run whose steps before that stage are taken
//! over from the source as they are — their checkpoints copied, so the pipeline reads them and
//! calls no model for them, their cost not counted again — and whose later steps run anew,
//! with another model, managers' model or depth if asked. It is a run like any other: limits,
//! budgets and the queue apply as to a start.

use std::collections::BTreeMap;

use domain::{FieldError, RerunOf, RerunRequest, RunId, StartRequest, StepStatus, Team};

use crate::error::{Error, Result};
use crate::run::{RunArgs, RunProgress};
use crate::runs::{RunService, Started};

/// The step a checkpoint key belongs to: a debate turn's key is its step's name, a middle dot
/// and the round.
fn step_of(key: &str) -> &str {
    key.split(" · ").next().unwrap_or(key)
}

impl RunService {
    /// Starts a run from `request.from` of `user_id`'s run `run_id`.
    pub async fn rerun(&self, user_id: &str, run_id: RunId, request: &RerunRequest) -> Result<Started> {
        let source = self.owned(user_id, run_id).await?;
        let from = request.stage();
        let o = &source.start.options;
        let wanted = StartRequest {
            symbol: Some(source.start.symbol.to_string()),
            model_id: request.model_id.clone().or_else(|| Some(source.start.model_id.to_string())),
            analysts: Some(source.start.analysts.iter().map(|a| a.id().to_string()).collect()),
            as_of: source.start.as_of.map(|d| d.to_string()),
            depth: request.depth.clone().or_else(|| Some(o.depth.id().to_string())),
            deep_model_id: request.deep_model_id.clone().or_else(|| o.deep_model_id.as_ref().map(|m| m.to_string())),
            max_cost_usd: o.max_cost_usd,
            max_tokens: o.max_tokens,
            // The webhook goes with the run (below), already checked.
            webhook: None,
            webhook_events: None,
        };
        let mut errors: Vec<FieldError> = from.clone().err().into_iter().collect();
        let start = wanted.validate(&self.config().default_model).map_err(|mut e| {
            e.append(&mut errors);
            Error::Invalid(e)
        });
        let (from, mut start) = match (from, start) {
            (Ok(from), Ok(start)) => (from, start),
            (_, Err(e)) => return Err(e),
            (Err(_), Ok(_)) => return Err(Error::Invalid(errors)),
        };
        self.checks.check(&start).map_err(Error::Invalid)?;
        self.settle_options(&mut start);

        let mut progress = RunProgress::new(&start);
        if !progress.steps.iter().any(|s| Team::of_step(&s.name) == from) {
            return Err(Error::Invalid(vec![FieldError::new(
                "from",
                format!("a {} run has no {} stage", start.options.depth.id(), from.id()),
            )]));
        }
        // Every step before `from` must have been finished by the source, to be taken over.
        let short = &run_id.to_string()[..8];
        let mut reused = Vec::new();
        for step in progress.steps.iter_mut().filter(|s| Team::of_step(&s.name) < from) {
            if !source.checkpoints.contains_key(&step.name) {
                return Err(Error::Invalid(vec![FieldError::new(
                    "from",
                    format!(
                        "run {short} has no finished {} to take over: rerun it from the {} stage or an earlier one",
                        step.name,
                        Team::of_step(&step.name).id()
                    ),
                )]));
            }
            step.status = StepStatus::Completed;
            step.progress = 100;
            step.reused = true;
            step.detail = Some(format!("Taken over from run {short}"));
            reused.push(step.name.clone());
        }
        let checkpoints: BTreeMap<String, serde_json::Value> = source
            .checkpoints
            .iter()
            .filter(|(key, _)| reused.iter().any(|s| s == step_of(key)))
            .filter_map(|(key, value)| agents::pipeline::taken_over(value).map(|v| (key.clone(), v)))
            .collect();
        let progress = RunProgress::of(crate::tracker::Tracker::new(progress.steps), domain::Usage::default());
        let args = RunArgs {
            start,
            retry_of: None,
            rerun_of: Some(RerunOf { run_id, from }),
            batch_id: None,
            webhook: source.webhook.clone(),
        };
        self.insert(user_id, args, Some((progress, checkpoints)), None, None).await
    }
}

#[cfg(test)]
mod tests {
    use super::step_of;

    #[test]
    fn a_turn_belongs_to_its_step() {
        assert_eq!(step_of("Bull Researcher · round 2"), "Bull Researcher");
        assert_eq!(step_of("Invest Analyst"), "Invest Analyst");
    }
}
