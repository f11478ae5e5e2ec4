//! Headline tone with the VADER lexicon (Hutto & Gilbert, 2014), bundled in
//! `data/sentiment/vader_lexicon.tsv`.
//!
//! A compact version of VADER's scoring: the valences of the words found in the lexicon are
//! summed, a word within three words after a negation ("not", "never", "n't"…) is flipped and
//! damped by VADER's factor 0.74, an exclamation mark adds emphasis, and the sum is normalised
//! to [-1, 1] with VADER's `x / sqrt(x² + 15)`. It omits VADER's boosters and capitalisation
//! rules, which matter little for headlines.

use std::collections::HashMap;
use std::path::Path;

const NEGATIONS: &[&str] = &[
    "not", "no", "never", "none", "nobody", "nothing", "neither", "nor", "without", "cannot", "isnt", "arent", "wasnt",
    "dont", "doesnt", "didnt", "wont", "cant", "shouldnt", "couldnt",
];
const NEGATION_SCALAR: f64 = -0.74;
const ALPHA: f64 = 15.0;

#[derive(Debug)]
pub struct Lexicon {
    valence: HashMap<String, f64>,
}

impl Lexicon {
    /// Reads a `token<TAB>valence` file with a header line.
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Self::parse(&text)
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        let mut valence = HashMap::new();
        for (i, line) in text.lines().enumerate().skip(1) {
            if line.trim().is_empty() {
                continue;
            }
            let (token, value) =
                line.split_once('\t').ok_or_else(|| format!("line {}: expected token<TAB>valence", i + 1))?;
            let v: f64 = value.trim().parse().map_err(|_| format!("line {}: bad valence '{}'", i + 1, value.trim()))?;
            valence.insert(token.to_lowercase(), v);
        }
        Ok(Self { valence })
    }

    pub fn len(&self) -> usize {
        self.valence.len()
    }

    pub fn is_empty(&self) -> bool {
        self.valence.is_empty()
    }

    /// The compound tone of a text, -1 (negative) to 1 (positive).
    pub fn compound(&self, text: &str) -> f64 {
        let words: Vec<String> = text
            .split_whitespace()
            .map(|w| w.trim_matches(|c: char| !c.is_alphanumeric() && c != '\'').to_lowercase())
            .filter(|w| !w.is_empty())
            .collect();
        let mut sum = 0.0;
        for (i, w) in words.iter().enumerate() {
            let Some(v) = self.valence.get(w.as_str()) else { continue };
            let negated = words[i.saturating_sub(3)..i].iter().any(|p| {
                let bare = p.replace('\'', "");
                NEGATIONS.contains(&bare.as_str()) || p.ends_with("n't")
            });
            sum += if negated { v * NEGATION_SCALAR } else { *v };
        }
        let bangs = text.matches('!').count().min(4) as f64 * 0.292;
        if sum > 0.0 {
            sum += bangs;
        } else if sum < 0.0 {
            sum -= bangs;
        }
        sum / (sum * sum + ALPHA).sqrt()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lexicon() -> Lexicon {
        Lexicon::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/sentiment/vader_lexicon.tsv")).unwrap()
    }

    #[test]
    fn scores_follow_vaders_formula() {
        let l = lexicon();
        assert!(l.len() > 7000);
        // "great" has valence 3.1 in the lexicon: 3.1 / sqrt(3.1² + 15).
        let expected = 3.1 / (3.1f64 * 3.1 + 15.0).sqrt();
        assert!((l.compound("Great quarter") - expected).abs() < 1e-12, "{}", l.compound("Great quarter"));
        assert!(l.compound("Regulators open fraud probe") < -0.5);
        assert!(l.compound("Not good") < 0.0, "negation flips");
        assert_eq!(l.compound("Apple reports results on Tuesday"), 0.0);
        assert!(l.compound("Great quarter!") > l.compound("Great quarter"));
    }

    #[test]
    fn malformed_lexicon_lines_are_reported() {
        assert!(Lexicon::parse("token\tvalence\ngood\t1.9\n").is_ok());
        assert_eq!(Lexicon::parse("token\tvalence\ngood 1.9\n").unwrap_err(), "line 2: expected token<TAB>valence");
    }
}
