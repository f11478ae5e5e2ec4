//! What the team after the analysts did, on the result page of a `standard` or `deep` run:
//! the bull/bear debate round by round, the research manager's verdict, the trader's reasoning
//! (its plan's numbers are in the plan table, beside the final plan), the risk debate and the
//! portfolio manager's reasoning. Rendered on the server only.

use domain::plan::{self, price};
use domain::{Argument, TeamReport, TeamRole, TradePlan};
use leptos::prelude::*;

use crate::format::percent;
use crate::markdown::Markdown;

/// A debate as a transcript, one block per round.
#[component]
fn Transcript(arguments: Vec<Argument>, rounds: u32) -> impl IntoView {
    // A debate in which a side rested ends before its last round.
    let argued = arguments.iter().map(|a| a.round).max().unwrap_or(0);
    let ended = (argued < rounds).then(|| {
        view! {
            <p class="muted debate-ended">
                {format!("The debate ended after round {argued} of {rounds}: a side had no new evidence.")}
            </p>
        }
    });
    let turns = (1..=argued)
        .map(|round| {
            let turns: Vec<Argument> = arguments.iter().filter(|a| a.round == round).cloned().collect();
            view! {
                <div class="round" data-round=round>
                    <h4>{format!("Round {round} of {rounds}")}</h4>
                    {turns
                        .into_iter()
                        .map(|a| {
                            let side = match a.role {
                                TeamRole::BullResearcher => "bull",
                                TeamRole::BearResearcher => "bear",
                                TeamRole::AggressiveRisk => "aggressive",
                                TeamRole::ConservativeRisk => "conservative",
                                _ => "neutral",
                            };
                            let proposal = match (a.position_size, a.stop_loss) {
                                (Some(size), Some(stop)) => {
                                    Some(format!("Position {} · stop-loss {}", plan::size((size * 1000.0).round() / 10.0), price(stop)))
                                }
                                _ => None,
                            };
                            view! {
                                <article class=format!("turn turn-{side}") data-role=a.role.step_name()>
                                    <header><strong>{a.role.title()}</strong></header>
                                    {proposal.map(|p| view! { <p class="proposal">{p}</p> })}
                                    <Markdown source=a.text/>
                                </article>
                            }
                        })
                        .collect_view()}
                </div>
            }
        })
        .collect_view();
    view! { {turns} {ended} }
}

#[component]
pub fn TeamView(team: TeamReport, proposed: Option<TradePlan>) -> impl IntoView {
    let t = team;
    view! {
        <section class="team-report" data-testid="team" aria-labelledby="team-heading">
            <h3 id="team-heading">
                "The team · " {t.depth.id()} " · "
                {if t.rounds == 1 { "one round of debate".to_string() } else { format!("{} rounds of debate", t.rounds) }}
                {t.deep_model_id.clone().map(|m| view! { " · managers: " <code>{m}</code> })}
            </h3>
            <details class="debate" data-testid="debate" open>
                <summary>"Research debate: bull and bear"</summary>
                <Transcript arguments=t.debate.clone() rounds=t.rounds/>
            </details>
            <div class="verdict" data-testid="verdict">
                <h4>"Research manager's verdict: " <strong>{t.verdict.action.as_str()}</strong>
                    " · " {percent(t.verdict.confidence)}</h4>
                <Markdown source=t.verdict.reasoning.clone()/>
            </div>
            {proposed.map(|plan| view! {
                <div class="trade-plan" data-testid="trade-plan">
                    <h4>"Trader's proposal: " <strong>{plan.direction.label()}</strong></h4>
                    <Markdown source=plan.reasoning.clone()/>
                </div>
            })}
            <details class="debate" data-testid="risk-debate" open>
                <summary>"Risk debate: aggressive, conservative, neutral"</summary>
                <Transcript arguments=t.risk_debate.clone() rounds=t.rounds/>
            </details>
            <div class="decision" data-testid="decision">
                <h4>"Portfolio manager's decision"</h4>
                <Markdown source=t.decision.clone()/>
            </div>
        </section>
    }
}
