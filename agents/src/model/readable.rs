//! A model's answer made readable as it streams. Models are asked for one JSON object
//! ([`super::prompt`]), so what a hosted model streams is JSON: quotes, keys, and prose with its
//! new lines escaped. What a step shows while it runs (and keeps as its transcript) is that
//! object as read so far: a short field as `Label: value` on its own line, a prose field
//! (`report`, `argument`, `reasoning`, `summary`) as the prose it holds, a list as its items.
//!
//! The incomplete object is read by `jiter`, whose partial mode keeps an unfinished last
//! string. What is written here is only the layout of what was read, and the one rule that
//! makes it safe to send in pieces: a layout only ever grows. A number, or anything but text,
//! is laid out once something follows it (until then it may still be growing); a text is laid
//! out as far as it has come. An answer that is not JSON passes through unchanged.

use std::borrow::Cow;

use jiter::{JsonValue, PartialMode};

/// Fields whose value is prose: laid out without a label, as a paragraph of its own.
const PROSE: [&str; 4] = ["report", "argument", "reasoning", "summary"];

/// One answer's text, read as it comes.
#[derive(Debug, Default)]
pub struct Readable {
    raw: String,
    shown: String,
    mode: Mode,
}

#[derive(Debug, Default, PartialEq)]
enum Mode {
    /// Nothing but white space yet.
    #[default]
    Undecided,
    /// A JSON object (perhaps in a Markdown code fence).
    Json,
    /// Not JSON: passed on as it comes.
    Plain,
    /// A layout that did not extend the one shown (never expected): nothing more is shown.
    Stopped,
}

impl Readable {
    /// Takes the next piece of the answer; gives what to show after what was shown before
    /// (often nothing, while a key or a number is still arriving).
    pub fn push(&mut self, delta: &str) -> String {
        self.raw.push_str(delta);
        if self.mode == Mode::Undecided {
            self.mode = match decide(&self.raw) {
                Some(mode) => mode,
                None => return String::new(),
            };
            if self.mode == Mode::Plain {
                return self.raw.clone();
            }
        }
        match self.mode {
            Mode::Plain => delta.to_string(),
            Mode::Json => {
                let Some(layout) = layout_of(&self.raw) else { return String::new() };
                match layout.strip_prefix(self.shown.as_str()) {
                    Some(more) => {
                        let more = more.to_string();
                        self.shown = layout;
                        more
                    }
                    None => {
                        self.mode = Mode::Stopped;
                        String::new()
                    }
                }
            }
            Mode::Undecided | Mode::Stopped => String::new(),
        }
    }

    /// A whole answer, read at once.
    pub fn whole(text: &str) -> String {
        Readable::default().push(text)
    }
}

/// Whether an answer that begins with `raw` is JSON (perhaps fenced as Markdown code) or not;
/// none while that cannot be told yet.
fn decide(raw: &str) -> Option<Mode> {
    let start = raw.trim_start();
    if start.is_empty() || "```".starts_with(start) {
        return None;
    }
    if start.starts_with('{') {
        return Some(Mode::Json);
    }
    let Some(fenced) = start.strip_prefix("```") else { return Some(Mode::Plain) };
    let after = fenced.split_once('\n')?.1.trim_start();
    match after.chars().next() {
        None => None,
        Some('{') => Some(Mode::Json),
        Some(_) => Some(Mode::Plain),
    }
}

/// The layout of the object read from `raw` so far; none while nothing can be read yet.
fn layout_of(raw: &str) -> Option<String> {
    let body = &raw[raw.find('{')?..];
    // A whole object, perhaps followed by the end of a code fence.
    let whole = body.rfind('}').map(|end| &body[..=end]);
    if let Some(Ok(JsonValue::Object(fields))) =
        whole.map(|w| JsonValue::parse_with_config(w.as_bytes(), false, PartialMode::Off))
    {
        return Some(layout(&fields, true));
    }
    match JsonValue::parse_with_config(body.as_bytes(), false, PartialMode::TrailingStrings) {
        Ok(JsonValue::Object(fields)) => Some(layout(&fields, false)),
        _ => None,
    }
}

/// `fields` laid out; when the object is not `complete`, its last field only if it is text
/// (or a list of texts), which can only grow.
fn layout(fields: &[(Cow<'_, str>, JsonValue<'_>)], complete: bool) -> String {
    let mut out = String::new();
    let mut after_prose = false;
    for (i, (key, value)) in fields.iter().enumerate() {
        let last_open = !complete && i + 1 == fields.len();
        let prose = PROSE.contains(&key.as_ref());
        let text = match value {
            JsonValue::Str(s) if prose => s.to_string(),
            JsonValue::Str(s) => format!("{}: {s}", label(key)),
            JsonValue::Array(items) if items.iter().all(|v| matches!(v, JsonValue::Str(_))) => {
                let lines: String = items
                    .iter()
                    .filter_map(|v| match v {
                        JsonValue::Str(s) => Some(format!("\n- {s}")),
                        _ => None,
                    })
                    .collect();
                format!("{}:{lines}", label(key))
            }
            _ if last_open => break,
            JsonValue::Null => continue,
            other => format!("{}: {}", label(key), scalar(other)),
        };
        if !out.is_empty() {
            out.push_str(if prose || after_prose { "\n\n" } else { "\n" });
        }
        out.push_str(&text);
        after_prose = prose;
    }
    out
}

/// A value that is not text, as a reader would write it.
fn scalar(value: &JsonValue<'_>) -> String {
    match value {
        JsonValue::Bool(b) => if *b { "yes" } else { "no" }.to_string(),
        JsonValue::Int(i) => i.to_string(),
        JsonValue::Float(f) => f.to_string(),
        JsonValue::Str(s) => s.to_string(),
        JsonValue::Null => String::new(),
        JsonValue::Array(items) => items.iter().map(scalar).collect::<Vec<_>>().join(", "),
        JsonValue::Object(fields) => fields
            .iter()
            .map(|(k, v)| format!("{} {}", label(k).to_lowercase(), scalar(v)))
            .collect::<Vec<_>>()
            .join(", "),
    }
}

/// `stopLoss` → `Stop loss`.
fn label(key: &str) -> String {
    let mut out = String::new();
    for (i, c) in key.chars().enumerate() {
        if i == 0 {
            out.extend(c.to_uppercase());
        } else if c.is_uppercase() {
            out.push(' ');
            out.extend(c.to_lowercase());
        } else if c == '_' {
            out.push(' ');
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The answer sent in pieces of `size` bytes (on character boundaries): what was shown after
    /// each, checking that each showing extends the last.
    fn streamed(answer: &str, size: usize) -> String {
        let mut readable = Readable::default();
        let mut shown = String::new();
        let mut rest = answer;
        while !rest.is_empty() {
            let mut cut = size.min(rest.len());
            while !rest.is_char_boundary(cut) {
                cut += 1;
            }
            shown.push_str(&readable.push(&rest[..cut]));
            rest = &rest[cut..];
        }
        shown
    }

    const ANALYST: &str = r###"{"stance": "bullish", "confidence": 0.72, "report": "## Momentum\nUp 12% in a year; the \"trend\" holds.\n\n- Café sales \u00e9t\u00e9"}"###;
    const READ: &str =
        "Stance: bullish\nConfidence: 0.72\n\n## Momentum\nUp 12% in a year; the \"trend\" holds.\n\n- Café sales été";

    #[test]
    fn an_answer_reads_the_same_in_any_pieces() {
        for size in [1, 2, 3, 5, 7, 16, 1000] {
            assert_eq!(streamed(ANALYST, size), READ, "in pieces of {size}");
        }
        assert_eq!(Readable::whole(ANALYST), READ);
    }

    #[test]
    fn a_number_is_shown_once_it_is_whole() {
        let mut r = Readable::default();
        assert_eq!(r.push(r#"{"stance": "bull"#), "Stance: bull");
        assert_eq!(r.push(r#"ish", "confidence": 0.7"#), "ish");
        assert_eq!(r.push("2"), "", "0.72 may still grow");
        assert_eq!(r.push(r#", "rep"#), "", "nor while the next key is unfinished");
        assert_eq!(r.push(r#"ort": "U"#), "\nConfidence: 0.72\n\nU");
        assert_eq!(r.push(r#"p."}"#), "p.");
    }

    #[test]
    fn lists_fences_and_labels() {
        let fenced = "```json\n{\"rating\": \"Overweight\", \"summary\": \"Trend intact.\", \"keyRisks\": [\"A reversal\", \"Volatility\"], \"stopLoss\": 180.5, \"hedged\": false, \"note\": null}\n```";
        let read = "Rating: Overweight\n\nTrend intact.\n\nKey risks:\n- A reversal\n- Volatility\nStop loss: 180.5\nHedged: no";
        assert_eq!(streamed(fenced, 4), read);
    }

    #[test]
    fn text_that_is_not_json_passes_through() {
        let prose = "The figures point up.\n\n- Momentum {strong}";
        assert_eq!(streamed(prose, 3), prose);
        assert_eq!(streamed("  \n  plain", 1), "  \n  plain");
        assert_eq!(streamed("`x` is {1}", 1), "`x` is {1}");
        assert_eq!(streamed("```\nfn main() {}\n```", 2), "```\nfn main() {}\n```");
    }
}
