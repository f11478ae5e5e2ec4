//! The grid of a backtest: every symbol at every as-of date, the dates being every `every_days`
//! trading days from the first trading day at or after `from` up to `to`.
//!
//! A grid is checked against the data before anything is queued, so that every cell can run
//! (enough history before it) and be scored (enough days after it for the longest horizon).
//! Every problem is reported at once, each naming the request's field.

use std::collections::BTreeSet;

use chrono::NaiveDate;
use domain::{FieldError, Rating};

use crate::market::MIN_HISTORY;
use crate::market::bundled::BundledData;

/// The longest horizon accepted: about a year of trading days.
pub const MAX_HORIZON: u32 = 252;

#[derive(Debug, Clone, PartialEq)]
pub struct GridRequest {
    pub symbols: Vec<String>,
    pub from: NaiveDate,
    pub to: NaiveDate,
    /// Trading days between two as-of dates.
    pub every_days: u32,
    /// Trading days after the as-of date at which the forward return is read.
    pub horizons: Vec<u32>,
}

/// The cells of a valid grid.
#[derive(Debug, Clone, PartialEq)]
pub struct Grid {
    /// The as-of dates, oldest first.
    pub dates: Vec<NaiveDate>,
    /// `(symbol, as_of)`, symbol by symbol in the request's order, dates oldest first.
    pub cells: Vec<(String, NaiveDate)>,
}

/// One cell as the scorecard and the strategy read it: its symbol, date and, once its run
/// completed, rating.
#[derive(Debug, Clone, PartialEq)]
pub struct CellInput {
    pub symbol: String,
    pub as_of: NaiveDate,
    pub rating: Option<Rating>,
}

/// Lays out the grid of `request` over `data`, or says what is wrong with it. At most
/// `max_cells` cells.
pub fn plan(data: &BundledData, request: &GridRequest, max_cells: usize) -> Result<Grid, Vec<FieldError>> {
    let mut errors = Vec::new();
    if request.symbols.is_empty() {
        errors.push(FieldError::new("symbols", "name at least one symbol"));
    }
    let mut seen = BTreeSet::new();
    let mut known = Vec::new();
    for symbol in &request.symbols {
        if !seen.insert(symbol.as_str()) {
            errors.push(FieldError::new("symbols", format!("{symbol} is listed twice")));
            continue;
        }
        match data.series(symbol) {
            Some(series) => known.push(series),
            None => errors.push(FieldError::new("symbols", format!("no market data for {symbol}"))),
        }
    }
    if request.from > request.to {
        errors.push(FieldError::new("to", format!("{} is before from ({})", request.to, request.from)));
    }
    if request.every_days == 0 {
        errors.push(FieldError::new("everyDays", "must be at least 1 trading day"));
    }
    if request.horizons.is_empty() {
        errors.push(FieldError::new("horizons", "name at least one horizon"));
    }
    if let Some(h) = request.horizons.iter().find(|h| **h == 0 || **h > MAX_HORIZON) {
        errors.push(FieldError::new("horizons", format!("{h} is not between 1 and {MAX_HORIZON} trading days")));
    }
    // An unknown symbol does not keep the others from being checked against the data.
    if known.is_empty() || errors.iter().any(|e| e.field != "symbols") {
        return Err(errors);
    }

    // The as-of dates are the symbols' trading days between from and to (they share the
    // exchange's calendar; the union covers a symbol missing a day).
    let days: BTreeSet<NaiveDate> = known
        .iter()
        .flat_map(|s| s.bars.iter().map(|b| b.date))
        .filter(|d| (request.from..=request.to).contains(d))
        .collect();
    let dates: Vec<NaiveDate> = days.into_iter().step_by(request.every_days as usize).collect();
    let (Some(&first), Some(&last)) = (dates.first(), dates.last()) else {
        errors.push(FieldError::new(
            "from",
            format!("no trading day of {} between {} and {}", request.symbols.join(", "), request.from, request.to),
        ));
        return Err(errors);
    };

    let longest = request.horizons.iter().copied().max().unwrap_or(0) as usize;
    for series in &known {
        let (start, end) = (series.first_date().expect("non-empty"), series.last_date().expect("non-empty"));
        let before = series.bars.partition_point(|b| b.date <= first);
        if request.from < start {
            errors.push(FieldError::new(
                "from",
                format!("{} has data from {start}; {} is before it", series.symbol, request.from),
            ));
        } else if before < MIN_HISTORY {
            errors.push(FieldError::new(
                "from",
                format!(
                    "{} has data from {start}; an analysis as of {first} needs {MIN_HISTORY} trading days before it",
                    series.symbol
                ),
            ));
        }
        if request.to > end {
            errors.push(FieldError::new(
                "to",
                format!("{} has data up to {end}; {} is after it", series.symbol, request.to),
            ));
            continue;
        }
        let after = series.bars.len() - series.bars.partition_point(|b| b.date <= last);
        if after < longest {
            errors.push(FieldError::new(
                "horizons",
                format!(
                    "{} has {after} trading days after {last}, the last as-of date; the {longest}-day horizon needs {longest}",
                    series.symbol
                ),
            ));
        }
    }
    let count = known.len() * dates.len();
    if count > max_cells {
        errors.push(FieldError::new(
            "everyDays",
            format!(
                "{count} cells ({} symbols × {} dates) is more than {max_cells}: take a longer step, fewer dates or fewer symbols",
                known.len(),
                dates.len()
            ),
        ));
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let cells = known.iter().map(|s| &s.symbol).flat_map(|s| dates.iter().map(move |d| (s.clone(), *d))).collect();
    Ok(Grid { dates, cells })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn data() -> BundledData {
        BundledData::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/market")).unwrap()
    }

    fn day(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn request(symbols: &[&str], from: &str, to: &str, every: u32, horizons: &[u32]) -> GridRequest {
        GridRequest {
            symbols: symbols.iter().map(|s| s.to_string()).collect(),
            from: day(from),
            to: day(to),
            every_days: every,
            horizons: horizons.to_vec(),
        }
    }

    /// The dates are every Nth trading day, starting at the first trading day on or after
    /// `from` (2019-01-01 was a holiday), and each symbol gets every date.
    #[test]
    fn dates_step_over_trading_days() {
        let grid = plan(&data(), &request(&["AAPL", "NVDA"], "2019-01-01", "2019-03-01", 20, &[5, 20]), 100).unwrap();
        // Trading days of 2019: Jan 2 is the first; 20 trading days later is Jan 31 (MLK day
        // off), then Mar 1 (Presidents' Day off).
        assert_eq!(grid.dates, vec![day("2019-01-02"), day("2019-01-31"), day("2019-03-01")]);
        assert_eq!(grid.cells.len(), 6);
        assert_eq!(grid.cells[3], ("NVDA".to_string(), day("2019-01-02")));
    }

    /// Every problem of a bad grid is named by its field, all at once.
    #[test]
    fn bad_grids_name_each_field() {
        let d = data();
        let fields = |r: GridRequest, max: usize| -> Vec<String> {
            plan(&d, &r, max).unwrap_err().into_iter().map(|e| e.field).collect()
        };
        assert_eq!(fields(request(&["TSLA"], "2019-01-01", "2019-03-01", 20, &[5]), 100), vec!["symbols"]);
        // The known symbols are still checked beside an unknown one.
        assert_eq!(
            fields(request(&["TSLA", "NVDA"], "2023-09-01", "2023-09-21", 5, &[20]), 100),
            vec!["symbols", "horizons"]
        );
        assert_eq!(
            fields(request(&["AAPL"], "2019-03-01", "2019-01-01", 0, &[]), 100),
            vec!["to", "everyDays", "horizons"]
        );
        // Before AAPL's data, and past its end.
        assert_eq!(fields(request(&["AAPL"], "1999-01-01", "2024-01-01", 20, &[5]), 10_000), vec!["from", "to"]);
        // The data ends 2023-09-21: no 20 days after September's as-of dates.
        let e = plan(&d, &request(&["NVDA"], "2023-09-01", "2023-09-21", 5, &[5, 20]), 100).unwrap_err();
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].field, "horizons");
        assert!(e[0].message.contains("20-day horizon"), "{}", e[0].message);
        // Two symbols × 3 dates is 6 cells.
        assert_eq!(fields(request(&["AAPL", "NVDA"], "2019-01-01", "2019-03-01", 20, &[5]), 5), vec!["everyDays"]);
    }
}
