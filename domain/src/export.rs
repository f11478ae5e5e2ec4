//! A finished analysis as one Markdown document (`/runs/<id>/report.md`), in the order of its
//! page: the verdict and the plan first, then the summary, risks, figures, reports and the
//! team. The plan's numbers are written by [`crate::plan`]'s formatters, as everywhere else.

use crate::plan::{TradePlan, days, price, risk, size};
use crate::result::{AnalysisResult, RULE_BASED_NOTE};

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

/// The result as Markdown. Model-written parts (reports, debate turns) are included as they
/// were written: the document is text for a person or a notebook, never rendered as HTML here.
pub fn markdown(r: &AnalysisResult) -> String {
    let mut out = format!(
        "# {} as of {}: {}\n\nConfidence {:.0}%.\n\n",
        r.symbol,
        r.as_of,
        r.rating.as_str(),
        r.confidence * 100.0
    );
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
    out.push_str(&format!("---\n\nModel `{}`, {} model calls.", r.model_id, r.llm_calls));
    if r.rule_based {
        out.push_str(&format!(" {RULE_BASED_NOTE}"));
    }
    out.push('\n');
    out
}
