//! What a run leaves behind besides its result: the text its models wrote, step by step,
//! stored in coalesced pieces by the run's worker ([`crate::analysis`]) and read back whole
//! ([`RunService::transcript`]) or piece by piece after a point ([`RunService::text_after`]) for
//! the event stream; and its log ([`RunService::log`]).

use std::collections::HashMap;

use domain::{AnalystKind, DATA_COLLECTION, FINAL_ASSESSMENT, RunId, RunLog, TeamRole, Transcript, TranscriptEntry};

use crate::error::Result;
use crate::run::Run;
use crate::runs::RunService;
use crate::store::TextPiece;

/// The most pieces one read of [`RunService::text_after`] returns.
pub const TEXT_READ_MAX: u32 = 500;
/// The most entries of a run's log that are read (a run writes a few dozen; retries of a
/// failing provider a few more).
pub const LOG_READ_MAX: u32 = 2_000;

impl RunService {
    /// The whole text of `user_id`'s run, one entry per model step.
    pub async fn transcript(&self, user_id: &str, run_id: RunId) -> Result<Transcript> {
        let run = self.owned(user_id, run_id).await?;
        let mut texts: HashMap<String, String> = HashMap::new();
        let mut after = None;
        loop {
            let pieces = self.store().text_after(run_id, after, TEXT_READ_MAX).await?;
            let Some(last) = pieces.last() else { break };
            after = Some(last.id);
            let more = pieces.len() as u32 == TEXT_READ_MAX;
            for piece in pieces {
                texts.entry(piece.step).or_default().push_str(&piece.delta);
            }
            if !more {
                break;
            }
        }
        Ok(transcript(&run, texts))
    }

    /// The log of `user_id`'s run, in the order it was written.
    pub async fn log(&self, user_id: &str, run_id: RunId) -> Result<RunLog> {
        self.owned(user_id, run_id).await?;
        let entries = self.store().log_of(run_id, LOG_READ_MAX).await?;
        Ok(RunLog { run_id, entries })
    }

    /// The pieces of a run's text stored after the piece `after` (all of them for `None`), in
    /// the order they were written: at most [`TEXT_READ_MAX`]. The caller has checked that the
    /// run may be read.
    pub async fn text_after(&self, run_id: RunId, after: Option<i64>) -> Result<Vec<TextPiece>> {
        self.store().text_after(run_id, after, TEXT_READ_MAX).await
    }
}

fn transcript(run: &Run, mut texts: HashMap<String, String>) -> Transcript {
    let team = !run.start.options.depth.is_quick();
    let model = run.start.model_id.as_str();
    let manager = run.start.options.deep_model_id.as_ref().map(|m| m.as_str()).unwrap_or(model);
    let steps = run
        .progress
        .steps
        .iter()
        .filter(|s| s.name != DATA_COLLECTION)
        .map(|s| {
            let (agent, model) = if s.name == FINAL_ASSESSMENT && team {
                (TeamRole::PortfolioManager.title().to_string(), manager)
            } else if s.name == TeamRole::ResearchManager.step_name() {
                (s.name.clone(), manager)
            } else if let Some(kind) = AnalystKind::from_step_name(&s.name) {
                (kind.step_name().to_string(), model)
            } else {
                (s.name.clone(), model)
            };
            TranscriptEntry {
                step: s.name.clone(),
                agent,
                model: model.to_string(),
                text: texts.remove(&s.name).unwrap_or_default(),
                started_at: s.started_at,
                completed_at: s.completed_at,
            }
        })
        .collect();
    Transcript { run_id: run.run_id, steps }
}
