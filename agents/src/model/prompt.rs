//! Prompts for chat models, and the checks their answers must pass.
//!
//! Models are asked for one JSON object. An answer is accepted only if it parses and every
//! field is within bounds; otherwise the caller asks once more with the reason (a "repair"),
//! then gives up with a clear error. Code fences and prose around the object are tolerated.

use domain::{AnalystKind, AnalystReport, Rating, Stance};
use serde_json::{Value, json};

use crate::analysts::{focus, key_figures};
use crate::assessment::{AnalystView, Assessment};
use crate::snapshot::MarketSnapshot;

const REPORT_MAX_CHARS: usize = 12_000;

fn figures_json(data: &MarketSnapshot) -> Value {
    let mut figures = serde_json::to_value(data).expect("plain data");
    if let Some(obj) = figures.as_object_mut() {
        // The chart is for people; the model gets the figures.
        obj.remove("chart");
    }
    figures
}

pub fn analyst_messages(kind: AnalystKind, data: &MarketSnapshot) -> Vec<Value> {
    let system = format!(
        "You are the {} of an equity research desk. {} You are given figures computed from daily prices of {} \
         up to {}. Base every statement on these figures; do not invent data, news or fundamentals. \
         Answer with one JSON object and nothing else: \
         {{\"stance\": \"bullish\" | \"neutral\" | \"bearish\", \"confidence\": a number from 0 to 1, \
         \"report\": \"your analysis in Markdown, 120 to 250 words\"}}.",
        kind.step_name(),
        focus(kind),
        data.symbol,
        data.as_of
    );
    let key: Vec<Value> =
        key_figures(kind, data).into_iter().map(|f| json!({ "label": f.label, "value": f.display })).collect();
    let user = json!({ "keyFigures": key, "allFigures": figures_json(data) }).to_string();
    vec![json!({ "role": "system", "content": system }), json!({ "role": "user", "content": user })]
}

pub fn assessment_messages(data: &MarketSnapshot, reports: &[AnalystReport]) -> Vec<Value> {
    let system = format!(
        "You lead an equity research desk. Your analysts have reported on {} as of {}. Weigh their views \
         and decide. Answer with one JSON object and nothing else: {{\"rating\": \"Buy\" | \"Overweight\" | \
         \"Hold\" | \"Underweight\" | \"Sell\", \"confidence\": a number from 0 to 1, \"summary\": \"2 to 4 \
         sentences\", \"keyRisks\": [\"3 to 5 short risks\"]}}.",
        data.symbol, data.as_of
    );
    let analysts: Vec<Value> = reports
        .iter()
        .map(|r| json!({ "analyst": r.analyst.step_name(), "stance": r.stance, "confidence": r.confidence, "report": r.report }))
        .collect();
    let user =
        json!({ "analysts": analysts, "lastClose": data.last_close, "momentum12m": data.momentum_12m }).to_string();
    vec![json!({ "role": "system", "content": system }), json!({ "role": "user", "content": user })]
}

/// The message that asks for a corrected answer.
pub fn repair_message(reason: &str) -> Value {
    json!({
        "role": "user",
        "content": format!("That answer could not be used: {reason}. Reply again with only the JSON object, exactly as specified.")
    })
}

/// The JSON object in an answer: the whole text, or the part between the first `{` and the
/// last `}` (models like code fences and preambles).
pub(crate) fn object(text: &str) -> Result<serde_json::Map<String, Value>, String> {
    let t = text.trim();
    let candidate = match (t.find('{'), t.rfind('}')) {
        (Some(a), Some(b)) if a < b => &t[a..=b],
        _ => return Err("no JSON object found".into()),
    };
    match serde_json::from_str::<Value>(candidate) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err("the answer is not a JSON object".into()),
        Err(e) => Err(format!("invalid JSON ({e})")),
    }
}

pub(crate) fn confidence(map: &serde_json::Map<String, Value>) -> Result<f64, String> {
    let c = map.get("confidence").and_then(Value::as_f64).ok_or("\"confidence\" must be a number")?;
    // Some models answer in percent.
    let c = if (1.0..=100.0).contains(&c) && c.fract() == 0.0 && c > 1.0 { c / 100.0 } else { c };
    if !(0.0..=1.0).contains(&c) {
        return Err(format!("\"confidence\" must be between 0 and 1, not {c}"));
    }
    Ok(c)
}

pub(crate) fn text(map: &serde_json::Map<String, Value>, field: &str, max: usize) -> Result<String, String> {
    let s = map.get(field).and_then(Value::as_str).map(str::trim).unwrap_or_default();
    if s.is_empty() {
        return Err(format!("\"{field}\" must be a non-empty string"));
    }
    if s.chars().count() > max {
        return Err(format!("\"{field}\" is longer than {max} characters"));
    }
    Ok(s.to_string())
}

pub fn parse_analyst(answer: &str) -> Result<AnalystView, String> {
    let map = object(answer)?;
    let stance = map
        .get("stance")
        .and_then(Value::as_str)
        .and_then(Stance::parse)
        .ok_or("\"stance\" must be \"bullish\", \"neutral\" or \"bearish\"")?;
    Ok(AnalystView { stance, confidence: confidence(&map)?, report: text(&map, "report", REPORT_MAX_CHARS)? })
}

pub fn parse_assessment(answer: &str) -> Result<Assessment, String> {
    let map = object(answer)?;
    let rating = map
        .get("rating")
        .and_then(Value::as_str)
        .and_then(Rating::parse)
        .ok_or("\"rating\" must be one of Buy, Overweight, Hold, Underweight, Sell")?;
    let risks = map.get("keyRisks").and_then(Value::as_array).ok_or("\"keyRisks\" must be an array of strings")?;
    let key_risks: Vec<String> = risks
        .iter()
        .filter_map(Value::as_str)
        .map(|s| s.trim().chars().take(300).collect::<String>())
        .filter(|s| !s.is_empty())
        .take(8)
        .collect();
    if key_risks.is_empty() {
        return Err("\"keyRisks\" must list at least one risk".into());
    }
    Ok(Assessment { rating, confidence: confidence(&map)?, summary: text(&map, "summary", 2_000)?, key_risks })
}

/// The most of an unreadable final answer kept as the run's summary, in characters.
const WORDS_SUMMARY_MAX_CHARS: usize = 2_000;
/// The most of it kept as the reasoning, in characters.
const WORDS_REASONING_MAX_CHARS: usize = 8_000;

/// A final decision that could not be read into the scale even after a correction: rated
/// `Review` with no confidence, the model's own words as the summary (and, whole up to a
/// bound, as the reasoning), and the reason it could not be read as the first risk. Nothing
/// is guessed; the plan it settles on is flat.
pub fn left_for_review(model: &str, reason: &str, words: &str) -> (Assessment, String) {
    let words = words.trim();
    let clip = |max: usize| {
        let mut s: String = words.chars().take(max).collect();
        if words.chars().count() > max {
            s.push('…');
        }
        s
    };
    let summary =
        if words.is_empty() { "The model answered with nothing.".to_string() } else { clip(WORDS_SUMMARY_MAX_CHARS) };
    let risk = format!(
        "{model}'s final decision could not be read into the rating scale ({reason}), even after one correction: \
         no position is taken until a person has read its words"
    );
    let assessment = Assessment { rating: Rating::Review, confidence: 0.0, summary, key_risks: vec![risk] };
    (assessment, clip(WORDS_REASONING_MAX_CHARS))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreadable_decision_is_left_for_review_in_the_models_words() {
        let prose = "I would lean towards accumulating on weakness, but it depends.";
        let reason = parse_assessment(prose).unwrap_err();
        let (a, reasoning) = left_for_review("m", &reason, prose);
        assert_eq!((a.rating, a.confidence), (Rating::Review, 0.0));
        assert_eq!((a.summary.as_str(), reasoning.as_str()), (prose, prose));
        assert!(a.key_risks[0].starts_with("m's final decision could not be read"), "{:?}", a.key_risks);
        let long = "word ".repeat(1_000);
        let (a, _) = left_for_review("m", "x", &long);
        assert_eq!(a.summary.chars().count(), WORDS_SUMMARY_MAX_CHARS + 1, "clipped, with an ellipsis");
    }

    #[test]
    fn accepts_fenced_answers_and_percent_confidence() {
        let v = parse_analyst(
            "Sure!\n```json\n{\"stance\":\"Bullish\",\"confidence\":72,\"report\":\"Up **trend**.\"}\n```",
        )
        .unwrap();
        assert_eq!((v.stance, v.confidence, v.report.as_str()), (Stance::Bullish, 0.72, "Up **trend**."));
        let a = parse_assessment(
            r#"{"rating":"overweight","confidence":0.6,"summary":"Fine.","keyRisks":["Valuation",""]}"#,
        )
        .unwrap();
        assert_eq!((a.rating, a.key_risks.len()), (Rating::Overweight, 1));
    }

    #[test]
    fn says_what_is_wrong() {
        assert_eq!(parse_analyst("I think it's great").unwrap_err(), "no JSON object found");
        assert!(
            parse_analyst("{\"stance\":\"up\",\"confidence\":0.5,\"report\":\"x\"}").unwrap_err().contains("stance")
        );
        assert!(
            parse_analyst("{\"stance\":\"neutral\",\"confidence\":1.5,\"report\":\"x\"}")
                .unwrap_err()
                .contains("between 0 and 1")
        );
        assert!(
            parse_analyst("{\"stance\":\"neutral\",\"confidence\":0.5,\"report\":\"  \"}")
                .unwrap_err()
                .contains("report")
        );
        assert!(parse_analyst("{\"stance\":\"neutral\",\"confidence\":0.5,").unwrap_err().contains("no JSON object"));
        assert!(
            parse_assessment(r#"{"rating":"Strong Buy","confidence":0.5,"summary":"x","keyRisks":["a"]}"#)
                .unwrap_err()
                .contains("rating")
        );
        assert!(
            parse_assessment(r#"{"rating":"Buy","confidence":0.5,"summary":"x","keyRisks":[]}"#)
                .unwrap_err()
                .contains("keyRisks")
        );
    }
}
