//! VADER (Valence Aware Dictionary and sEntiment Reasoner; Hutto & Gilbert, 2014): the tone of
//! a short text, such as a headline, from the lexicon bundled in
//! `data/sentiment/vader_lexicon.tsv`.
//!
//! Written here because no maintained Rust crate implements it (the one on crates.io has not
//! been released since 2020 and embeds its own copy of the lexicon). This follows the reference
//! implementation (vaderSentiment 3.3.2) rule for rule: tokens keep their punctuation when
//! stripping it would leave two characters or fewer (emoticons); booster and dampener words
//! ("very", "slightly", "kind of") scaled by distance; words in capitals among words that are
//! not; negation within three words ("not", "isn't", "never so", "without doubt"), "no" before a
//! sentiment word, "least"; idioms ("kiss of death"); "but" (the clause before counts half, the
//! clause after one and a half times); emphasis by "!" and "??"; then `x / sqrt(x² + 15)`.
//! Two differences: emoji are not translated to words (that needs a second lexicon), and
//! "but" weights each word by its position, where the reference weights the first word with an
//! equal score (a bug that only shows when two words score exactly alike).

use std::collections::HashMap;
use std::path::Path;

const B_INCR: f64 = 0.293;
const B_DECR: f64 = -0.293;
const C_INCR: f64 = 0.733;
const N_SCALAR: f64 = -0.74;
const ALPHA: f64 = 15.0;

const NEGATE: &[&str] = &[
    "aint",
    "arent",
    "cannot",
    "cant",
    "couldnt",
    "darent",
    "didnt",
    "doesnt",
    "ain't",
    "aren't",
    "can't",
    "couldn't",
    "daren't",
    "didn't",
    "doesn't",
    "dont",
    "hadnt",
    "hasnt",
    "havent",
    "isnt",
    "mightnt",
    "mustnt",
    "neither",
    "don't",
    "hadn't",
    "hasn't",
    "haven't",
    "isn't",
    "mightn't",
    "mustn't",
    "neednt",
    "needn't",
    "never",
    "none",
    "nope",
    "nor",
    "not",
    "nothing",
    "nowhere",
    "oughtnt",
    "shant",
    "shouldnt",
    "uhuh",
    "wasnt",
    "werent",
    "oughtn't",
    "shan't",
    "shouldn't",
    "uh-uh",
    "wasn't",
    "weren't",
    "without",
    "wont",
    "wouldnt",
    "won't",
    "wouldn't",
    "rarely",
    "seldom",
    "despite",
];

const INCREMENTS: &[&str] = &[
    "absolutely",
    "amazingly",
    "awfully",
    "completely",
    "considerable",
    "considerably",
    "decidedly",
    "deeply",
    "effing",
    "enormous",
    "enormously",
    "entirely",
    "especially",
    "exceptional",
    "exceptionally",
    "extreme",
    "extremely",
    "fabulously",
    "flipping",
    "flippin",
    "frackin",
    "fracking",
    "fricking",
    "frickin",
    "frigging",
    "friggin",
    "fully",
    "fuckin",
    "fucking",
    "fuggin",
    "fugging",
    "greatly",
    "hella",
    "highly",
    "hugely",
    "incredible",
    "incredibly",
    "intensely",
    "major",
    "majorly",
    "more",
    "most",
    "particularly",
    "purely",
    "quite",
    "really",
    "remarkably",
    "so",
    "substantially",
    "thoroughly",
    "total",
    "totally",
    "tremendous",
    "tremendously",
    "uber",
    "unbelievably",
    "unusually",
    "utter",
    "utterly",
    "very",
];

const DECREMENTS: &[&str] = &[
    "almost",
    "barely",
    "hardly",
    "just enough",
    "kind of",
    "kinda",
    "kindof",
    "kind-of",
    "less",
    "little",
    "marginal",
    "marginally",
    "occasional",
    "occasionally",
    "partly",
    "scarce",
    "scarcely",
    "slight",
    "slightly",
    "somewhat",
    "sort of",
    "sorta",
    "sortof",
    "sort-of",
];

const SPECIAL_CASES: &[(&str, f64)] = &[
    ("the shit", 3.0),
    ("the bomb", 3.0),
    ("bad ass", 1.5),
    ("badass", 1.5),
    ("bus stop", 0.0),
    ("yeah right", -2.0),
    ("kiss of death", -1.5),
    ("to die for", 3.0),
    ("beating heart", 3.1),
    ("broken heart", -2.9),
];

/// Python's `string.punctuation`.
fn is_punctuation(c: char) -> bool {
    c.is_ascii_punctuation()
}

fn booster(word: &str) -> Option<f64> {
    if INCREMENTS.contains(&word) {
        Some(B_INCR)
    } else if DECREMENTS.contains(&word) {
        Some(B_DECR)
    } else {
        None
    }
}

fn special_case(seq: &str) -> Option<f64> {
    SPECIAL_CASES.iter().find(|(s, _)| *s == seq).map(|(_, v)| *v)
}

fn is_negation(word: &str) -> bool {
    NEGATE.contains(&word) || word.contains("n't")
}

/// Python's `str.isupper`: at least one cased character, and no lowercase one.
fn is_upper(word: &str) -> bool {
    word.chars().any(char::is_uppercase) && !word.chars().any(char::is_lowercase)
}

/// The sentiment lexicon: token → mean valence (-4 to 4). Tokens keep their case, as in the
/// reference, and are looked up in lower case.
#[derive(Debug)]
pub struct Lexicon {
    valence: HashMap<String, f64>,
}

/// A text's scores: `compound` in [-1, 1]; `positive`, `negative` and `neutral` are the shares
/// of the text's tone and add up to 1 (all 0 for a text with no words).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scores {
    pub compound: f64,
    pub positive: f64,
    pub negative: f64,
    pub neutral: f64,
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
            valence.insert(token.to_string(), v);
        }
        Ok(Self { valence })
    }

    pub fn len(&self) -> usize {
        self.valence.len()
    }

    pub fn is_empty(&self) -> bool {
        self.valence.is_empty()
    }

    fn get(&self, lower: &str) -> Option<f64> {
        self.valence.get(lower).copied()
    }

    /// The compound tone of a text, -1 (negative) to 1 (positive).
    pub fn compound(&self, text: &str) -> f64 {
        self.scores(text).compound
    }

    /// All of VADER's scores for a text.
    pub fn scores(&self, text: &str) -> Scores {
        let words: Vec<&str> = text
            .split_whitespace()
            .map(|token| {
                let stripped = token.trim_matches(is_punctuation);
                if stripped.chars().count() <= 2 { token } else { stripped }
            })
            .collect();
        let lower: Vec<String> = words.iter().map(|w| w.to_lowercase()).collect();
        let uppercase = words.iter().filter(|w| is_upper(w)).count();
        let text_ = Text { words: &words, lower: &lower, cap_differs: uppercase > 0 && uppercase < words.len() };

        let mut sentiments = Vec::with_capacity(words.len());
        for i in 0..words.len() {
            let modifier = booster(&lower[i]).is_some()
                || (lower[i] == "kind" && lower.get(i + 1).is_some_and(|next| next == "of"));
            sentiments.push(if modifier { 0.0 } else { self.valence_at(&text_, i) });
        }
        if let Some(b) = lower.iter().position(|w| w == "but") {
            for (i, s) in sentiments.iter_mut().enumerate() {
                if i < b {
                    *s *= 0.5;
                } else if i > b {
                    *s *= 1.5;
                }
            }
        }
        score(&sentiments, text)
    }

    fn valence_at(&self, t: &Text, i: usize) -> f64 {
        let lower = t.lower;
        let Some(base) = self.get(&lower[i]) else { return 0.0 };
        let mut valence = base;
        // "no" before another sentiment word negates it instead of counting itself.
        if lower[i] == "no" && lower.get(i + 1).is_some_and(|next| self.get(next).is_some()) {
            valence = 0.0;
        }
        if (i > 0 && lower[i - 1] == "no")
            || (i > 1 && lower[i - 2] == "no")
            || (i > 2 && lower[i - 3] == "no" && (lower[i - 1] == "or" || lower[i - 1] == "nor"))
        {
            valence = base * N_SCALAR;
        }
        if is_upper(t.words[i]) && t.cap_differs {
            valence += if valence > 0.0 { C_INCR } else { -C_INCR };
        }
        for start in 0..3 {
            if i > start && self.get(&lower[i - (start + 1)]).is_none() {
                let mut s = t.scalar(i - (start + 1), valence);
                if start == 1 {
                    s *= 0.95;
                } else if start == 2 {
                    s *= 0.9;
                }
                valence += s;
                valence = t.negation(valence, start, i);
                if start == 2 {
                    valence = t.idioms(valence, i);
                }
            }
        }
        self.least(t, valence, i)
    }

    /// "least" before a word negates it, unless it is "at least" or "very least".
    fn least(&self, t: &Text, valence: f64, i: usize) -> f64 {
        let lower = t.lower;
        if i > 1 && self.get(&lower[i - 1]).is_none() && lower[i - 1] == "least" {
            if lower[i - 2] != "at" && lower[i - 2] != "very" {
                return valence * N_SCALAR;
            }
        } else if i > 0 && self.get(&lower[i - 1]).is_none() && lower[i - 1] == "least" {
            return valence * N_SCALAR;
        }
        valence
    }
}

struct Text<'a> {
    words: &'a [&'a str],
    lower: &'a [String],
    /// Some words, not all, are in capitals: those stand out.
    cap_differs: bool,
}

impl Text<'_> {
    /// How much the booster or dampener at `j` moves a word of `valence`.
    fn scalar(&self, j: usize, valence: f64) -> f64 {
        let Some(mut s) = booster(&self.lower[j]) else { return 0.0 };
        if valence < 0.0 {
            s = -s;
        }
        if is_upper(self.words[j]) && self.cap_differs {
            s += if valence > 0.0 { C_INCR } else { -C_INCR };
        }
        s
    }

    fn negation(&self, valence: f64, start: usize, i: usize) -> f64 {
        let l = self.lower;
        let before = &l[i - (start + 1)];
        match start {
            0 if is_negation(before) => valence * N_SCALAR,
            1 if l[i - 2] == "never" && (l[i - 1] == "so" || l[i - 1] == "this") => valence * 1.25,
            1 if l[i - 2] == "without" && l[i - 1] == "doubt" => valence,
            1 if is_negation(before) => valence * N_SCALAR,
            2 if (l[i - 3] == "never" && (l[i - 2] == "so" || l[i - 2] == "this"))
                || (l[i - 1] == "so" || l[i - 1] == "this") =>
            {
                valence * 1.25
            }
            2 if l[i - 3] == "without" && (l[i - 2] == "doubt" || l[i - 1] == "doubt") => valence,
            2 if is_negation(before) => valence * N_SCALAR,
            _ => valence,
        }
    }

    /// Idioms around the word replace its valence; "kind of" and "sort of" before it damp it.
    fn idioms(&self, mut valence: f64, i: usize) -> f64 {
        let l = self.lower;
        let one_zero = format!("{} {}", l[i - 1], l[i]);
        let two_one_zero = format!("{} {} {}", l[i - 2], l[i - 1], l[i]);
        let two_one = format!("{} {}", l[i - 2], l[i - 1]);
        let three_two_one = format!("{} {} {}", l[i - 3], l[i - 2], l[i - 1]);
        let three_two = format!("{} {}", l[i - 3], l[i - 2]);
        if let Some(v) = [&one_zero, &two_one_zero, &two_one, &three_two_one, &three_two]
            .into_iter()
            .find_map(|seq| special_case(seq))
        {
            valence = v;
        }
        if l.len() - 1 > i
            && let Some(v) = special_case(&format!("{} {}", l[i], l[i + 1]))
        {
            valence = v;
        }
        if l.len() - 1 > i + 1
            && let Some(v) = special_case(&format!("{} {} {}", l[i], l[i + 1], l[i + 2]))
        {
            valence = v;
        }
        for n_gram in [&three_two_one, &three_two, &two_one] {
            if let Some(b) = booster(n_gram) {
                valence += b;
            }
        }
        valence
    }
}

fn score(sentiments: &[f64], text: &str) -> Scores {
    if sentiments.is_empty() {
        return Scores { compound: 0.0, positive: 0.0, negative: 0.0, neutral: 0.0 };
    }
    let bangs = text.matches('!').count().min(4) as f64 * 0.292;
    let questions = match text.matches('?').count() {
        0 | 1 => 0.0,
        n @ 2..=3 => n as f64 * 0.18,
        _ => 0.96,
    };
    let emphasis = bangs + questions;
    let mut sum: f64 = sentiments.iter().sum();
    if sum > 0.0 {
        sum += emphasis;
    } else if sum < 0.0 {
        sum -= emphasis;
    }
    let compound = (sum / (sum * sum + ALPHA).sqrt()).clamp(-1.0, 1.0);

    let (mut pos, mut neg, mut neu) = (0.0, 0.0, 0.0);
    for &s in sentiments {
        if s > 0.0 {
            pos += s + 1.0;
        } else if s < 0.0 {
            neg += s - 1.0;
        } else {
            neu += 1.0;
        }
    }
    if pos > neg.abs() {
        pos += emphasis;
    } else if pos < neg.abs() {
        neg -= emphasis;
    }
    let total = pos + neg.abs() + neu;
    Scores { compound, positive: (pos / total).abs(), negative: (neg / total).abs(), neutral: (neu / total).abs() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lexicon() -> Lexicon {
        Lexicon::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/sentiment/vader_lexicon.tsv")).unwrap()
    }

    fn round(x: f64) -> f64 {
        (x * 10_000.0).round() / 10_000.0
    }

    /// The compound scores the reference implementation's documentation prints for its own
    /// examples, each exercising one rule.
    #[test]
    fn matches_the_reference_examples() {
        let l = lexicon();
        assert!(l.len() > 7000);
        let examples = [
            ("VADER is smart, handsome, and funny.", 0.8316),
            ("VADER is smart, handsome, and funny!", 0.8439),
            ("VADER is very smart, handsome, and funny.", 0.8545),
            ("VADER is VERY SMART, handsome, and FUNNY.", 0.9227),
            ("VADER is VERY SMART, handsome, and FUNNY!!!", 0.9342),
            ("VADER is VERY SMART, uber handsome, and FRIGGIN FUNNY!!!", 0.9469),
            ("VADER is not smart, handsome, nor funny.", -0.7424),
            ("The book was good.", 0.4404),
            ("At least it isn't a horrible book.", 0.431),
            ("The book was only kind of good.", 0.3832),
            ("The plot was good, but the characters are uncompelling and the dialog is not great.", -0.7042),
            ("Today SUX!", -0.5461),
            ("Today only kinda sux! But I'll get by, lol", 0.5249),
            ("Not bad at all", 0.431),
        ];
        let wrong: Vec<String> = examples
            .iter()
            .filter(|(text, want)| round(l.compound(text)) != *want)
            .map(|(text, want)| format!("{text:?}: {} (reference {want})", round(l.compound(text))))
            .collect();
        assert!(wrong.is_empty(), "{wrong:#?}");
    }

    #[test]
    fn shares_add_up_and_an_empty_text_is_neutral() {
        let l = lexicon();
        let s = l.scores("VADER is smart, handsome, and funny.");
        // The reference prints the shares to three places.
        let three = |x: f64| (x * 1000.0).round() / 1000.0;
        assert_eq!((three(s.negative), three(s.neutral), three(s.positive)), (0.0, 0.254, 0.746));
        assert!((s.positive + s.negative + s.neutral - 1.0).abs() < 1e-9);
        assert_eq!(l.scores("   ").compound, 0.0);
        assert_eq!(l.compound("Apple reports results on Tuesday"), 0.0);
    }

    #[test]
    fn headline_rules() {
        let l = lexicon();
        assert!(l.compound("Regulators open fraud probe") < -0.5);
        assert!(l.compound("Shares are not good") < 0.0, "negation flips");
        assert!(l.compound("Great quarter!") > l.compound("Great quarter"), "exclamation adds emphasis");
        assert!(l.compound("Profit is extremely good") > l.compound("Profit is good"), "boosters");
        assert!(l.compound("Profit is slightly good") < l.compound("Profit is good"), "dampeners");
        assert!(
            l.compound("Sales were weak but the outlook is great")
                > l.compound("Sales were weak and the outlook is great")
        );
    }

    #[test]
    fn malformed_lexicon_lines_are_reported() {
        assert!(Lexicon::parse("token\tvalence\ngood\t1.9\n").is_ok());
        assert_eq!(Lexicon::parse("token\tvalence\ngood 1.9\n").unwrap_err(), "line 2: expected token<TAB>valence");
    }
}
