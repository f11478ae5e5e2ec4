//! Prompts for the team after the analysts, and the checks their answers must pass.
//!
//! Every prompt carries what the role needs to read, as TradingAgents hands it on: the
//! analysts' reports, the debate so far (every earlier turn, in order), the research manager's
//! verdict and the trader's plan once they exist. Answers are one JSON object, checked like the
//! analysts' (see [`super::prompt`]), and then against the plan: a trader's plan must go the
//! research verdict's way, a risk analyst's stop must lie on the plan's losing side. A model
//! that contradicts the plan is asked again once; if it still does, its answer is kept with the
//! contradiction shown under it ([`contradiction_note`]).

use domain::plan::{Direction, Levels, PlanWhy};
use domain::{Action, Argument, TeamRole, TradePlan, Verdict};
use serde_json::{Map, Value, json};

use super::prompt::{confidence, object, text};
use crate::assessment::{Assessment, Brief};

const ARGUMENT_MAX_CHARS: usize = 8_000;

fn role_brief(role: TeamRole) -> &'static str {
    match role {
        TeamRole::BullResearcher => {
            "Argue for owning the stock: build the strongest case from the figures and the analysts' reports, \
             and answer the bear's latest points directly."
        }
        TeamRole::BearResearcher => {
            "Argue against owning the stock: build the strongest case from the weakest figures and the risks, \
             and answer the bull's latest points directly."
        }
        TeamRole::ResearchManager => {
            "Judge the bull/bear debate: decide Buy, Hold or Sell from the strongest arguments, not from \
             who spoke last, and say why."
        }
        TeamRole::Trader => {
            "Turn the research manager's verdict into a trade plan: action, entry price, a stop-loss from the \
             average true range (ATR) on the losing side of the entry (below it to buy, above it to sell short), a \
             target on the winning side, a horizon in trading days, and a position size (fraction of the \
             portfolio) from the volatility. A Hold takes no position."
        }
        TeamRole::AggressiveRisk => {
            "Argue for taking more risk with the trader's plan where the trend and the upside justify it: a \
             larger position, a wider stop."
        }
        TeamRole::ConservativeRisk => {
            "Argue for protecting the portfolio: a smaller position and a closer stop where drawdown and value \
             at risk call for it."
        }
        TeamRole::NeutralRisk => {
            "Weigh the aggressive and conservative views: a balanced position size and stop from drawdown, \
             value at risk and trend."
        }
        TeamRole::PortfolioManager => {
            "Make the final decision from the analysts, the research verdict, the trader's plan and the risk \
             debate, on the five-level scale."
        }
    }
}

fn answer_shape(role: TeamRole) -> &'static str {
    match role {
        TeamRole::BullResearcher | TeamRole::BearResearcher => {
            "{\"argument\": \"your argument in Markdown, 80 to 200 words\"}"
        }
        TeamRole::AggressiveRisk | TeamRole::ConservativeRisk | TeamRole::NeutralRisk => {
            "{\"argument\": \"your argument in Markdown, 80 to 200 words\", \"positionSize\": the fraction of the \
             portfolio from 0 to 1, \"stopLoss\": a price}"
        }
        TeamRole::ResearchManager => {
            "{\"action\": \"Buy\" | \"Hold\" | \"Sell\", \"confidence\": a number from 0 to 1, \"reasoning\": \"Markdown, \
             80 to 200 words\"}"
        }
        TeamRole::Trader => {
            "{\"action\": \"Buy\" | \"Hold\" | \"Sell\", \"entry\": a price, \"stopLoss\": a price, \"target\": a price, \
             \"horizonDays\": trading days, \"positionSize\": the fraction of the portfolio from 0 to 1, \"reasoning\": \
             \"Markdown, 80 to 200 words\"}"
        }
        TeamRole::PortfolioManager => {
            "{\"rating\": \"Buy\" | \"Overweight\" | \"Hold\" | \"Underweight\" | \"Sell\", \"confidence\": a number from \
             0 to 1, \"summary\": \"2 to 4 sentences\", \"keyRisks\": [\"3 to 5 short risks\"], \"reasoning\": \
             \"Markdown, 80 to 200 words\"}"
        }
    }
}

fn turns(arguments: &[Argument]) -> Vec<Value> {
    arguments
        .iter()
        .map(|a| {
            let mut v = json!({ "speaker": a.role.title(), "round": a.round, "argument": a.text });
            if let Some(s) = a.position_size {
                v["positionSize"] = json!(s);
            }
            if let Some(s) = a.stop_loss {
                v["stopLoss"] = json!(s);
            }
            v
        })
        .collect()
}

/// The messages for one role: its instructions, then everything it should read.
pub fn team_messages(role: TeamRole, brief: &Brief<'_>) -> Vec<Value> {
    let d = brief.data;
    let round = if matches!(role, TeamRole::ResearchManager | TeamRole::Trader | TeamRole::PortfolioManager) {
        String::new()
    } else {
        format!(" This is round {} of {}.", brief.round, brief.rounds)
    };
    let system = format!(
        "You are the {} of a trading firm's team, working on {} as of {}. {}{round} Base every statement on the \
         figures and reports you are given; do not invent data, news or fundamentals. Answer with one JSON object \
         and nothing else: {}.",
        role.title(),
        d.symbol,
        d.as_of,
        role_brief(role),
        answer_shape(role)
    );
    let analysts: Vec<Value> = brief
        .reports
        .iter()
        .map(|r| json!({ "analyst": r.analyst.step_name(), "stance": r.stance, "confidence": r.confidence, "report": r.report }))
        .collect();
    let mut user = Map::new();
    user.insert(
        "figures".into(),
        json!({
            "lastClose": d.last_close, "atr14": d.atr14, "volatility1y": d.volatility_1y,
            "maxDrawdown1y": d.max_drawdown_1y, "var95": d.var95, "sma200": d.sma200,
            "momentum12m": d.momentum_12m, "rsi14": d.rsi14, "beta": d.beta,
        }),
    );
    user.insert("analysts".into(), json!(analysts));
    if !brief.debate.is_empty() {
        user.insert("investmentDebate".into(), json!(turns(brief.debate)));
    }
    if let Some(v) = brief.verdict {
        user.insert(
            "researchVerdict".into(),
            json!({ "action": v.action, "confidence": v.confidence, "reasoning": v.reasoning }),
        );
    }
    if let Some(p) = brief.plan {
        user.insert(
            "traderPlan".into(),
            json!({
                "direction": p.direction, "entry": p.levels.map(|l| l.entry), "stopLoss": p.levels.map(|l| l.stop),
                "target": p.levels.map(|l| l.target), "horizonDays": p.horizon_days,
                "positionSize": p.size_pct / 100.0, "riskPercentOfPortfolio": p.risk_pct, "reasoning": p.reasoning,
            }),
        );
    }
    if !brief.risk_debate.is_empty() {
        user.insert("riskDebate".into(), json!(turns(brief.risk_debate)));
    }
    vec![
        json!({ "role": "system", "content": system }),
        json!({ "role": "user", "content": Value::Object(user).to_string() }),
    ]
}

fn number(map: &Map<String, Value>, field: &str) -> Result<f64, String> {
    map.get(field)
        .and_then(Value::as_f64)
        .filter(|v| v.is_finite() && *v >= 0.0)
        .ok_or_else(|| format!("\"{field}\" must be a non-negative number"))
}

fn fraction(map: &Map<String, Value>, field: &str) -> Result<f64, String> {
    let v = number(map, field)?;
    // Some models answer in percent.
    let v = if v > 1.0 && v <= 100.0 { v / 100.0 } else { v };
    if v > 1.0 {
        return Err(format!("\"{field}\" must be a fraction between 0 and 1"));
    }
    Ok(v)
}

fn action(map: &Map<String, Value>) -> Result<Action, String> {
    map.get("action")
        .and_then(Value::as_str)
        .and_then(Action::parse)
        .ok_or_else(|| "\"action\" must be \"Buy\", \"Hold\" or \"Sell\"".to_string())
}

/// A debate turn: a researcher's argument, or a risk analyst's with its size and stop.
pub fn parse_argument(role: TeamRole, round: u32, answer: &str) -> Result<Argument, String> {
    let map = object(answer)?;
    let text = text(&map, "argument", ARGUMENT_MAX_CHARS)?;
    let risk = TeamRole::RISK_DEBATERS.contains(&role);
    let (position_size, stop_loss) =
        if risk { (Some(fraction(&map, "positionSize")?), Some(number(&map, "stopLoss")?)) } else { (None, None) };
    Ok(Argument { role, round, text, position_size, stop_loss, rests: false })
}

pub fn parse_verdict(answer: &str) -> Result<Verdict, String> {
    let map = object(answer)?;
    Ok(Verdict {
        action: action(&map)?,
        confidence: confidence(&map)?,
        reasoning: text(&map, "reasoning", ARGUMENT_MAX_CHARS)?,
    })
}

pub fn parse_plan(answer: &str) -> Result<TradePlan, String> {
    let map = object(answer)?;
    let action = action(&map)?;
    let reasoning = text(&map, "reasoning", ARGUMENT_MAX_CHARS)?;
    let direction = Direction::of_action(action);
    let horizon = map.get("horizonDays").and_then(Value::as_u64).map(|d| d.clamp(1, 250) as u32);
    let why = |what: &str| format!("the trader's {what}");
    let plan_why = PlanWhy {
        direction: format!("the trader's {}", action.as_str()),
        entry: why("entry"),
        stop: why("stop"),
        target: why("target"),
        horizon: horizon.map_or_else(|| "the trader named none: a month of trading".into(), |_| why("horizon")),
        size: why("size"),
    };
    if direction == Direction::Flat {
        return Ok(TradePlan::flat(
            horizon.unwrap_or(20),
            PlanWhy { entry: String::new(), stop: String::new(), target: String::new(), ..plan_why },
            reasoning,
        ));
    }
    let entry = number(&map, "entry")?;
    let stop = number(&map, "stopLoss")?;
    // A plan without a target aims for twice the stop's distance.
    let target = match map.get("target") {
        Some(_) => number(&map, "target")?,
        None => entry + 2.0 * (entry - stop),
    };
    TradePlan::open(
        direction,
        Levels { entry, stop, target },
        horizon.unwrap_or(20),
        fraction(&map, "positionSize")?,
        plan_why,
        reasoning,
    )
    .map_err(|e| e.0)
}

/// Why a trader's plan contradicts the research verdict it turns into a trade: a Buy is a long,
/// a Sell a short, a Hold no position.
pub fn plan_contradiction(plan: &TradePlan, verdict: Option<&Verdict>) -> Option<String> {
    let v = verdict?;
    let want = Direction::of_action(v.action);
    (plan.direction != want).then(|| {
        format!(
            "the research verdict is {}, which makes the plan {want}, but this plan is {}",
            v.action.as_str(),
            plan.direction
        )
    })
}

/// Why a risk analyst's proposal contradicts the trader's plan: a stop-loss that is not on the
/// losing side of the entry (below it for a long, above it for a short).
pub fn risk_contradiction(argument: &Argument, plan: Option<&TradePlan>) -> Option<String> {
    let (plan, stop) = (plan?, argument.stop_loss?);
    let levels = plan.levels?;
    let (wrong, side) = match plan.direction {
        Direction::Long => (stop >= levels.entry, "below"),
        Direction::Short => (stop <= levels.entry, "above"),
        Direction::Flat => return None,
    };
    wrong.then(|| {
        format!(
            "the plan is a {} at {:.2}, so a stop-loss must be {side} the entry, but {stop:.2} is not",
            plan.direction, levels.entry
        )
    })
}

/// The message asking a model once more for an answer that follows the plan.
pub fn contradiction_message(reason: &str) -> Value {
    json!({
        "role": "user",
        "content": format!(
            "That answer contradicts the trade plan: {reason}. Reply again with only the JSON object, exactly as \
             specified, keeping to the plan's direction."
        )
    })
}

/// What is shown under an answer that still contradicts the plan after it was asked again.
pub fn contradiction_note(reason: &str) -> String {
    format!("\n\n**Contradicts the plan:** {reason}. The model was asked once to correct this and did not.")
}

/// The portfolio manager's assessment and reasoning; the trade is settled from its rating.
pub fn parse_decision(answer: &str) -> Result<(Assessment, String), String> {
    let assessment: Assessment = super::prompt::parse_assessment(answer)?;
    let map = object(answer)?;
    let reasoning = text(&map, "reasoning", ARGUMENT_MAX_CHARS)?;
    Ok((assessment, reasoning))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn risk_turns_need_a_size_and_a_stop_and_researchers_do_not() {
        let bull = parse_argument(TeamRole::BullResearcher, 2, r#"{"argument":"Up."}"#).unwrap();
        assert_eq!((bull.round, bull.position_size), (2, None));
        let e = parse_argument(TeamRole::NeutralRisk, 1, r#"{"argument":"Balance."}"#).unwrap_err();
        assert!(e.contains("positionSize"), "{e}");
        let r =
            parse_argument(TeamRole::NeutralRisk, 1, r#"{"argument":"x","positionSize":8,"stopLoss":101.5}"#).unwrap();
        assert_eq!((r.position_size, r.stop_loss), (Some(0.08), Some(101.5)));
        let p = parse_plan(r#"{"action":"buy","entry":100,"stopLoss":94,"positionSize":0.1,"reasoning":"x"}"#).unwrap();
        assert_eq!((p.direction, p.levels.unwrap().stop, p.levels.unwrap().target), (Direction::Long, 94.0, 112.0));
        assert_eq!(p.risk_pct, 0.6, "10 % × 6 / 100");
        let e = parse_plan(r#"{"action":"sell","entry":100,"stopLoss":94,"positionSize":0.1,"reasoning":"x"}"#)
            .unwrap_err();
        assert!(e.contains("must be above"), "a short's stop below its entry: {e}");
        let hold = parse_plan(r#"{"action":"Hold","entry":100,"stopLoss":94,"positionSize":0.1,"reasoning":"x"}"#);
        assert!(hold.unwrap().levels.is_none(), "a Hold has no entry");
        assert!(
            parse_verdict(r#"{"action":"Strong Buy","confidence":0.5,"reasoning":"x"}"#)
                .unwrap_err()
                .contains("action")
        );
    }
}
