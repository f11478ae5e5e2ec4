//! A finished analysis as one Markdown document (`/runs/<id>/report.md`), in the order of its
//! page: the verdict, the settings and the plan first, then the summary, risks, figures,
//! reports and the team, and last the log of model calls with what each cost. The plan's
//! numbers are written by [`crate::plan`]'s formatters, as everywhere else.

use crate::log::{LogEntry, LogEvent};
use crate::plan::{TradePlan, days, price, risk, size};
use crate::progress::RunState;
use crate::result::{AnalysisResult, RULE_BASED_NOTE};

/// Markdown table cells hold no pipes or line breaks.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace(['\n', '\r'], " ")
}

fn settings(out: &mut String, r: &AnalysisResult, run: &RunState) {
    let analysts: Vec<&str> = r.reports.iter().map(|a| a.analyst.step_name()).collect();
    let mut rows = vec![
        ("Run", format!("`{}`", run.run_id)),
        ("Symbol", r.symbol.clone()),
        ("As of", r.as_of.to_string()),
        ("Model", format!("`{}`", r.model_id)),
    ];
    if let Some(deep) = r.team.as_ref().and_then(|t| t.deep_model_id.as_ref()) {
        rows.push(("Deep model", format!("`{deep}`")));
    }
    rows.push(("Depth", run.depth.id().to_string()));
    rows.push(("Analysts", analysts.join(", ")));
    rows.push(("Created", run.created_at.format("%Y-%m-%d %H:%M:%S UTC").to_string()));
    if let Some(ms) = run.duration {
        rows.push(("Duration", format!("{:.1} s", ms as f64 / 1000.0)));
    }
    if let Some(of) = &run.rerun_of {
        rows.push(("Rerun of", format!("`{}`, from {}", of.run_id, of.from.id())));
    }
    out.push_str("## Settings\n\n| | |\n|---|---|\n");
    for (name, value) in rows {
        out.push_str(&format!("| {name} | {} |\n", cell(&value)));
    }
    out.push('\n');
}

/// The model calls of the log, one row each with its tokens, time and cost, then the total;
/// the retries under it.
fn model_calls(out: &mut String, log: &[LogEntry]) {
    let mut calls = String::new();
    let (mut n, mut tokens_in, mut tokens_out, mut cost) = (0u32, 0u64, 0u64, 0.0f64);
    let mut retries = Vec::new();
    for e in log {
        let step = e.step.as_deref().unwrap_or("");
        match &e.event {
            LogEvent::Call { model, tokens_in: i, tokens_out: o, cost_usd, latency_ms, .. } => {
                n += 1;
                (tokens_in, tokens_out, cost) = (tokens_in + i, tokens_out + o, cost + cost_usd);
                calls.push_str(&format!(
                    "| {} | {} | `{}` | {i} | {o} | {:.1} s | ${cost_usd:.4} |\n",
                    e.at.format("%H:%M:%S"),
                    cell(step),
                    cell(model),
                    *latency_ms as f64 / 1000.0
                ));
            }
            LogEvent::Retry { .. } => {
                retries.push(format!("- {} {}: {}", e.at.format("%H:%M:%S"), step, e.event.describe()))
            }
            _ => {}
        }
    }
    out.push_str("## Model calls\n\n");
    if n == 0 {
        out.push_str("No model call is on record for this run.\n\n");
        return;
    }
    out.push_str(
        "| Time (UTC) | Step | Model | Tokens in | Tokens out | Took | Cost |\n|---|---|---|---:|---:|---:|---:|\n",
    );
    out.push_str(&calls);
    out.push_str(&format!("| | **{n} calls** | | {tokens_in} | {tokens_out} | | **${cost:.4}** |\n\n"));
    if !retries.is_empty() {
        out.push_str("Retries:\n\n");
        out.push_str(&retries.join("\n"));
        out.push_str("\n\n");
    }
}

fn level(p: &TradePlan, f: fn(&crate::plan::Levels) -> f64) -> String {
    p.levels.as_ref().map(|l| price(f(l))).unwrap_or_else(|| "none".into())
}

fn plan_rows(out: &mut String, plan: &TradePlan, proposed: Option<&TradePlan>) {
    type Show = fn(&TradePlan) -> String;
    let rows: [(&str, Show, &str); 7] = [
        ("Direction", |p| p.direction.label().into(), &plan.why.direction),
        ("Entry", |p| level(p, |l| l.entry), &plan.why.entry),
        ("Stop", |p| level(p, |l| l.stop), &plan.why.stop),
        ("Target", |p| level(p, |l| l.target), &plan.why.target),
        ("Horizon", |p| days(p.horizon_days), &plan.why.horizon),
        ("Size", |p| size(p.size_pct), &plan.why.size),
        ("Risk", |p| risk(p.risk_pct), "size × distance to the stop ÷ entry"),
    ];
    match proposed {
        Some(_) => out.push_str("| | Final | Trader proposed | Why |\n|---|---|---|---|\n"),
        None => out.push_str("| | Final | Why |\n|---|---|---|\n"),
    }
    for (name, show, why) in rows {
        if plan.is_flat() && proposed.is_none_or(TradePlan::is_flat) && matches!(name, "Entry" | "Stop" | "Target") {
            continue;
        }
        let why = why.replace('|', "\\|");
        match proposed {
            Some(p) => out.push_str(&format!("| {name} | {} | {} | {why} |\n", show(plan), show(p))),
            None => out.push_str(&format!("| {name} | {} | {why} |\n", show(plan))),
        }
    }
}

/// The result of `run` as Markdown, with the model calls of its `log`. Model-written parts
/// (reports, debate turns) are included as they were written: the document is text for a
/// person or a notebook, never rendered as HTML here.
pub fn markdown(r: &AnalysisResult, run: &RunState, log: &[LogEntry]) -> String {
    let mut out = format!(
        "# {} as of {}: {}\n\nConfidence {:.0}%.\n\n",
        r.symbol,
        r.as_of,
        r.rating.as_str(),
        r.confidence * 100.0
    );
    settings(&mut out, r, run);
    if let Some(t) = &r.trade {
        let line = t.plan.line();
        out.push_str(&format!("## Plan\n\n**{}{}**.\n\n", line[..1].to_uppercase(), &line[1..]));
        let proposed = t.proposed.as_ref().filter(|_| !t.changes.is_empty());
        plan_rows(&mut out, &t.plan, proposed);
        if proposed.is_some() {
            out.push_str("\nChanged from the trader's proposal:\n\n");
            for c in &t.changes {
                let or_none = |s: &str| if s.is_empty() { "none".to_string() } else { s.to_string() };
                out.push_str(&format!("- {} {} → {}: {}.\n", c.what, or_none(&c.from), or_none(&c.to), c.why));
            }
        }
        out.push('\n');
    }
    out.push_str(&format!("## Summary\n\n{}\n\n## Key risks\n\n", r.summary));
    for k in &r.key_risks {
        out.push_str(&format!("- {k}\n"));
    }
    out.push_str("\n## Figures\n\n| | |\n|---|---|\n");
    for f in &r.figures {
        out.push_str(&format!("| {} | {} |\n", f.label, f.display));
    }
    out.push_str("\n## Analysts\n\n");
    for a in &r.reports {
        out.push_str(&format!(
            "### {}: {} ({:.0}%)\n\n{}\n\n",
            a.analyst.step_name(),
            a.stance.as_str(),
            a.confidence * 100.0,
            a.report.trim()
        ));
    }
    if let Some(team) = &r.team {
        out.push_str("## The team\n\n");
        for a in &team.debate {
            out.push_str(&format!("### {}, round {}\n\n{}\n\n", a.role.title(), a.round, a.text.trim()));
        }
        out.push_str(&format!(
            "### Research manager: {}\n\n{}\n\n",
            team.verdict.action.as_str(),
            team.verdict.reasoning.trim()
        ));
        if let Some(p) = r.trade.as_ref().and_then(|t| t.proposed.as_ref()) {
            out.push_str(&format!("### Trader\n\n{}\n\n", p.reasoning.trim()));
        }
        for a in &team.risk_debate {
            out.push_str(&format!("### {}, round {}\n\n{}\n\n", a.role.title(), a.round, a.text.trim()));
        }
        out.push_str(&format!("### Portfolio manager\n\n{}\n\n", team.decision.trim()));
    }
    model_calls(&mut out, log);
    out.push_str(&format!("---\n\nModel `{}`, {} model calls.", r.model_id, r.llm_calls));
    if r.rule_based {
        out.push_str(&format!(" {RULE_BASED_NOTE}"));
    }
    out.push('\n');
    out
}
