//! Searching the history: the filters of `GET /api/trading/runs` and the `/runs` page, read
//! from a query string in one place for both, the keyset cursor that pages through them, and
//! the labels a run's owner can tag it with.

use chrono::NaiveDate;

use crate::ids::{ModelId, Symbol};
use crate::rating::Rating;
use crate::request::FieldError;
use crate::status::JobStatus;
use crate::team::Depth;

/// Runs a page, unless asked for another number.
pub const PER_PAGE_DEFAULT: u32 = 20;
/// The most runs one page holds.
pub const PER_PAGE_MAX: u32 = 100;
/// The highest page number an offset page may ask for.
pub const PAGE_MAX: u32 = 1_000_000;
/// The longest search text `q`, in characters.
pub const QUERY_MAX_CHARS: usize = 200;
/// The most words `q` may have (each must occur).
pub const QUERY_MAX_WORDS: usize = 8;
/// The most tags one run carries.
pub const TAGS_MAX: usize = 10;
/// The longest tag, in characters.
pub const TAG_MAX_CHARS: usize = 32;

/// Where a page of newest-first runs ended: the last run's creation (epoch milliseconds) and
/// its row number. The next page holds the runs strictly older in that order, so runs created
/// after the first page was read never shift it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub created_ms: i64,
    pub id: i64,
}

impl Cursor {
    /// Its form in a query string: `<createdMs>-<id>`.
    pub fn encode(&self) -> String {
        format!("{}-{}", self.created_ms, self.id)
    }

    pub fn decode(s: &str) -> Option<Self> {
        let (created, id) = s.trim().split_once('-')?;
        let digits = |t: &str| !t.is_empty() && t.len() <= 19 && t.bytes().all(|b| b.is_ascii_digit());
        if !digits(created) || !digits(id) {
            return None;
        }
        Some(Self { created_ms: created.parse().ok()?, id: id.parse().ok()? })
    }
}

/// Whether a run's call came true: its rating's direction against the stock's move over the
/// longest horizon of [`crate::OUTCOME_HORIZONS`] (a Hold or a Review names no direction).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Called {
    Right,
    Wrong,
}

impl Called {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Right => "right",
            Self::Wrong => "wrong",
        }
    }
}

/// The order of the history: newest first (the default, paged by a keyset cursor), or by the
/// stock's return over the longest horizon (paged by page number; runs without one last).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum HistoryOrder {
    #[default]
    Newest,
    /// `sort=-return`: the highest return first.
    ReturnDesc,
    /// `sort=return`: the lowest return first.
    ReturnAsc,
}

impl HistoryOrder {
    /// Its form in a query string (JSON:API's: a leading `-` is descending).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Newest => "newest",
            Self::ReturnDesc => "-return",
            Self::ReturnAsc => "return",
        }
    }
}

/// What the history is asked for: every filter given must hold (they combine), newest first
/// unless another order is asked for.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunsQuery {
    pub symbol: Option<Symbol>,
    pub rating: Option<Rating>,
    pub status: Option<JobStatus>,
    pub model_id: Option<ModelId>,
    pub depth: Option<Depth>,
    /// Created on or after this day (UTC).
    pub from: Option<NaiveDate>,
    /// Created on or before this day (UTC).
    pub to: Option<NaiveDate>,
    /// Analysed as of this day or later.
    pub as_of_from: Option<NaiveDate>,
    /// Analysed as of this day or earlier.
    pub as_of_to: Option<NaiveDate>,
    pub tag: Option<String>,
    /// Words that must all occur in the summary or the reports (lower case).
    pub words: Vec<String>,
    /// Only runs whose call came true (or did not) over the longest horizon.
    pub outcome: Option<Called>,
    pub order: HistoryOrder,
    /// Continue after this run (keyset); takes precedence over `page`.
    pub cursor: Option<Cursor>,
    /// From 1 (pages by offset, for the page numbers of the `/runs` page).
    pub page: u32,
    pub per_page: u32,
}

impl RunsQuery {
    /// The newest runs, a page of `per_page`.
    pub fn newest(per_page: u32) -> Self {
        Self { page: 1, per_page, ..Self::default() }
    }

    /// Reads the parameters of a query string (names as the API spells them: `symbol`,
    /// `rating`, `status`, `modelId`, `depth`, `from`, `to`, `asOfFrom`, `asOfTo`, `tag`, `q`,
    /// `outcome`, `sort`, `cursor`, `page`, `perPage`). An empty value is no filter; a bad one is named in the
    /// errors. Unknown names are ignored.
    pub fn parse<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<Self, Vec<FieldError>> {
        let mut q = Self::newest(PER_PAGE_DEFAULT);
        let mut errors = Vec::new();
        let mut fail = |field: &str, message: String| errors.push(FieldError::new(field, message));
        let date = |v: &str| {
            NaiveDate::parse_from_str(v, "%Y-%m-%d").map_err(|_| format!("'{}' is not a date (YYYY-MM-DD)", clip(v)))
        };
        for (name, value) in pairs {
            let v = value.trim();
            if v.is_empty() {
                continue;
            }
            match name {
                "symbol" => match v.parse::<Symbol>() {
                    Ok(s) => q.symbol = Some(s),
                    Err(e) => fail(name, e.0),
                },
                "rating" => match Rating::parse_any(v) {
                    Some(r) => q.rating = Some(r),
                    None => fail(
                        name,
                        format!("'{}' is not a rating (Buy, Overweight, Hold, Underweight, Sell, Review)", clip(v)),
                    ),
                },
                "status" => match v.parse::<JobStatus>() {
                    Ok(s) => q.status = Some(s),
                    Err(e) => fail(name, e),
                },
                "modelId" => match v.parse::<ModelId>() {
                    Ok(m) => q.model_id = Some(m),
                    Err(e) => fail(name, e.0),
                },
                "depth" => match v.parse::<Depth>() {
                    Ok(d) => q.depth = Some(d),
                    Err(e) => fail(name, e.0),
                },
                "from" | "to" | "asOfFrom" | "asOfTo" => match date(v) {
                    Ok(d) => match name {
                        "from" => q.from = Some(d),
                        "to" => q.to = Some(d),
                        "asOfFrom" => q.as_of_from = Some(d),
                        _ => q.as_of_to = Some(d),
                    },
                    Err(e) => fail(name, e),
                },
                "tag" => match check_tag(v) {
                    Ok(t) => q.tag = Some(t),
                    Err(e) => fail(name, e),
                },
                "q" => match search_words(v) {
                    Ok(w) => q.words = w,
                    Err(e) => fail(name, e),
                },
                "outcome" => match v.to_ascii_lowercase().as_str() {
                    "right" => q.outcome = Some(Called::Right),
                    "wrong" => q.outcome = Some(Called::Wrong),
                    _ => fail(name, format!("'{}' is not an outcome (right, wrong)", clip(v))),
                },
                "sort" => match v {
                    "newest" => q.order = HistoryOrder::Newest,
                    "-return" => q.order = HistoryOrder::ReturnDesc,
                    "return" => q.order = HistoryOrder::ReturnAsc,
                    _ => fail(name, format!("'{}' is not an order (newest, -return, return)", clip(v))),
                },
                "cursor" => match Cursor::decode(v) {
                    Some(c) => q.cursor = Some(c),
                    None => fail(name, "not a cursor this server gave (use the `next` of a page)".into()),
                },
                "page" | "perPage" => {
                    let max = if name == "page" { PAGE_MAX } else { PER_PAGE_MAX };
                    match v.parse::<u32>().ok().filter(|n| (1..=max).contains(n)) {
                        Some(n) if name == "page" => q.page = n,
                        Some(n) => q.per_page = n,
                        None => fail(name, format!("must be a whole number from 1 to {max}")),
                    }
                }
                _ => {}
            }
        }
        if q.cursor.is_some() && q.order != HistoryOrder::Newest {
            fail("cursor", "a cursor pages the newest-first order; pages of another order are numbered (page)".into());
        }
        if let (Some(a), Some(b)) = (q.from, q.to)
            && a > b
        {
            fail("to", format!("{b} is before from ({a})"));
        }
        if let (Some(a), Some(b)) = (q.as_of_from, q.as_of_to)
            && a > b
        {
            fail("asOfTo", format!("{b} is before asOfFrom ({a})"));
        }
        if errors.is_empty() { Ok(q) } else { Err(errors) }
    }

    /// The filters as query-string pairs (no cursor, page or page size), for links that keep
    /// them.
    pub fn filter_pairs(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        let mut put = |name, v: Option<String>| {
            if let Some(v) = v {
                out.push((name, v));
            }
        };
        put("symbol", self.symbol.as_ref().map(|s| s.to_string()));
        put("rating", self.rating.map(|r| r.as_str().to_string()));
        put("status", self.status.map(|s| s.as_str().to_string()));
        put("modelId", self.model_id.as_ref().map(|m| m.to_string()));
        put("depth", self.depth.map(|d| d.id().to_string()));
        put("from", self.from.map(|d| d.to_string()));
        put("to", self.to.map(|d| d.to_string()));
        put("asOfFrom", self.as_of_from.map(|d| d.to_string()));
        put("asOfTo", self.as_of_to.map(|d| d.to_string()));
        put("tag", self.tag.clone());
        put("q", (!self.words.is_empty()).then(|| self.words.join(" ")));
        put("outcome", self.outcome.map(|o| o.as_str().to_string()));
        out
    }

    /// Whether any filter is set.
    pub fn is_filtered(&self) -> bool {
        !self.filter_pairs().is_empty()
    }
}

fn clip(s: &str) -> String {
    s.chars().take(40).collect()
}

/// The words of a search, lower-cased, each to occur.
fn search_words(v: &str) -> Result<Vec<String>, String> {
    if v.chars().count() > QUERY_MAX_CHARS {
        return Err(format!("at most {QUERY_MAX_CHARS} characters"));
    }
    let words: Vec<String> = v.split_whitespace().map(str::to_lowercase).collect();
    if words.len() > QUERY_MAX_WORDS {
        return Err(format!("at most {QUERY_MAX_WORDS} words"));
    }
    Ok(words)
}

/// A tag as stored: trimmed, lower case, 1–32 letters, digits, `-`, `_`, `.` or inner spaces.
pub fn check_tag(raw: &str) -> Result<String, String> {
    let t = raw.trim().to_lowercase();
    if t.is_empty() {
        return Err("a tag cannot be empty".into());
    }
    if t.chars().count() > TAG_MAX_CHARS {
        return Err(format!("'{}' is longer than {TAG_MAX_CHARS} characters", clip(&t)));
    }
    if let Some(c) = t.chars().find(|c| !(c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | ' '))) {
        return Err(format!("'{}' has '{c}': use letters, digits, spaces, '-', '_' or '.'", clip(&t)));
    }
    Ok(t.split_whitespace().collect::<Vec<_>>().join(" "))
}

/// A run's tags as stored: each checked, duplicates dropped, in the order given.
pub fn check_tags(raw: &[String]) -> Result<Vec<String>, Vec<FieldError>> {
    let mut tags: Vec<String> = Vec::new();
    let mut errors = Vec::new();
    for (i, t) in raw.iter().enumerate() {
        match check_tag(t) {
            Ok(t) if !tags.contains(&t) => tags.push(t),
            Ok(_) => {}
            Err(e) => errors.push(FieldError::new(format!("tags[{i}]"), e)),
        }
    }
    if tags.len() > TAGS_MAX {
        errors.push(FieldError::new("tags", format!("at most {TAGS_MAX} tags")));
    }
    if errors.is_empty() { Ok(tags) } else { Err(errors) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_combine_and_bad_values_are_named() {
        let q = RunsQuery::parse([
            ("symbol", "aapl"),
            ("rating", "buy"),
            ("depth", "deep"),
            ("from", "2026-01-01"),
            ("q", "  Strong   MOMENTUM "),
            ("tag", " Weekly "),
            ("status", ""),
        ])
        .unwrap();
        assert_eq!(q.symbol.unwrap().as_str(), "AAPL");
        assert_eq!(q.rating, Some(Rating::Buy));
        assert_eq!(q.depth, Some(Depth::Deep));
        assert_eq!(q.words, vec!["strong", "momentum"]);
        assert_eq!(q.tag.as_deref(), Some("weekly"));
        assert_eq!(q.status, None);
        let errors = RunsQuery::parse([("rating", "Great"), ("from", "2026-13-01"), ("cursor", "x"), ("perPage", "0")])
            .unwrap_err();
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, vec!["rating", "from", "cursor", "perPage"]);
        let reversed = RunsQuery::parse([("from", "2026-02-01"), ("to", "2026-01-01")]).unwrap_err();
        assert_eq!(reversed[0].field, "to");
    }

    #[test]
    fn cursors_round_trip_and_refuse_anything_else() {
        let c = Cursor { created_ms: 1_700_000_000_123, id: 42 };
        assert_eq!(Cursor::decode(&c.encode()), Some(c));
        for bad in ["", "1", "-1", "1-", "a-1", "1-2-3", "99999999999999999999-1"] {
            assert_eq!(Cursor::decode(bad), None, "{bad}");
        }
    }

    #[test]
    fn tags_are_short_plain_labels() {
        assert_eq!(check_tag("  Earnings   Week "), Ok("earnings week".into()));
        assert!(check_tag("").is_err());
        assert!(check_tag(&"x".repeat(33)).is_err());
        assert!(check_tag("a<b").is_err());
        let tags = check_tags(&["A".into(), "a".into(), "b".into()]).unwrap();
        assert_eq!(tags, vec!["a", "b"]);
        let many: Vec<String> = (0..11).map(|i| format!("t{i}")).collect();
        assert_eq!(check_tags(&many).unwrap_err()[0].field, "tags");
    }
}
