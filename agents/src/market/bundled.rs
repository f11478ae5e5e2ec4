//! The bundled market data: CSV files under `data/market/`, read once at start-up.
//!
//! Files are `<folder>/<TICKER>[_<anything>].csv`; files in `index/` name indexes, spelled with
//! a leading `^` (`index/GSPC.csv` is `^GSPC`). A ticker may have files from several eras
//! (AAPL 2000–2013 and 2013–2023). They are joined into one series: the newest file is kept as
//! it is, and the part of an older file before it is rescaled so that its close matches the
//! newer file's on the first day they share. Older files are split-adjusted to their own last
//! day only, so without this AAPL would drop 28-fold overnight in January 2013.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::NaiveDate;

use super::csv::parse_bars;
use super::{Bar, MarketData, MarketError, Series, SymbolInfo};

pub struct BundledData {
    series: BTreeMap<String, Arc<Series>>,
}

impl BundledData {
    /// Reads every CSV under `dir` (usually `data/market`).
    pub fn load(dir: &Path) -> Result<Self, MarketError> {
        let mut files: BTreeMap<String, Vec<Vec<Bar>>> = BTreeMap::new();
        let folders = std::fs::read_dir(dir).map_err(|e| MarketError::Io(format!("{}: {e}", dir.display())))?;
        for folder in folders.flatten() {
            let is_index = folder.file_name() == "index";
            let Ok(entries) = std::fs::read_dir(folder.path()) else { continue };
            for entry in entries.flatten() {
                let path = entry.path();
                if path.extension().and_then(|e| e.to_str()) != Some("csv") {
                    continue;
                }
                let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
                let ticker = stem.split('_').next().unwrap_or(stem).to_ascii_uppercase();
                let ticker = if is_index { format!("^{ticker}") } else { ticker };
                let text =
                    std::fs::read_to_string(&path).map_err(|e| MarketError::Io(format!("{}: {e}", path.display())))?;
                let bars = parse_bars(&text).map_err(|e| MarketError::Io(format!("{}: {e}", path.display())))?;
                if !bars.is_empty() {
                    files.entry(ticker).or_default().push(bars);
                }
            }
        }
        if files.is_empty() {
            return Err(MarketError::Io(format!("no price files under {}", dir.display())));
        }
        let series = files
            .into_iter()
            .map(|(symbol, eras)| {
                let bars = join_eras(eras);
                (symbol.clone(), Arc::new(Series { symbol, bars }))
            })
            .collect();
        Ok(Self { series })
    }

    pub fn series(&self, symbol: &str) -> Option<Arc<Series>> {
        self.series.get(symbol).cloned()
    }

    /// Every series, by symbol.
    pub fn all_series(&self) -> Vec<Arc<Series>> {
        self.series.values().cloned().collect()
    }

    /// Checks that an analysis of `symbol` as of `as_of` has data (used when a run is
    /// requested, so a bad date is a 400 instead of a failed run).
    pub fn check_range(&self, symbol: &str, as_of: Option<NaiveDate>) -> Result<(), MarketError> {
        let series = self.series(symbol).ok_or_else(|| MarketError::UnknownSymbol(symbol.to_string()))?;
        let (first, last) = (series.first_date().expect("non-empty"), series.last_date().expect("non-empty"));
        let as_of = as_of.unwrap_or(last);
        if as_of < first || as_of > last {
            return Err(MarketError::OutOfRange { symbol: symbol.to_string(), as_of, first, last });
        }
        let have = series.bars.partition_point(|b| b.date <= as_of);
        if have < super::MIN_HISTORY {
            return Err(MarketError::NotEnoughHistory {
                symbol: symbol.to_string(),
                as_of,
                have,
                need: super::MIN_HISTORY,
            });
        }
        Ok(())
    }
}

/// Joins the files of one ticker, newest first, each older one rescaled to the newer.
fn join_eras(mut eras: Vec<Vec<Bar>>) -> Vec<Bar> {
    eras.sort_by_key(|bars| std::cmp::Reverse(bars.last().map(|b| b.date)));
    let mut joined = eras.remove(0);
    for older in eras {
        let first = joined[0];
        let Some(anchor) = older.iter().find(|b| b.date == first.date) else {
            // No shared day to scale by: keep only the newer file rather than guess.
            continue;
        };
        let price = first.close / anchor.close;
        let adj = first.adj_close / anchor.adj_close;
        let mut head: Vec<Bar> = older
            .iter()
            .take_while(|b| b.date < first.date)
            .map(|b| Bar {
                date: b.date,
                open: b.open * price,
                high: b.high * price,
                low: b.low * price,
                close: b.close * price,
                adj_close: b.adj_close * adj,
                volume: b.volume / price,
            })
            .collect();
        head.extend(joined);
        joined = head;
    }
    joined
}

#[async_trait]
impl MarketData for BundledData {
    fn name(&self) -> &'static str {
        "bundled"
    }

    fn symbols(&self) -> Option<Vec<SymbolInfo>> {
        Some(
            self.series
                .values()
                .map(|s| SymbolInfo {
                    symbol: s.symbol.clone(),
                    first_date: s.first_date().expect("non-empty"),
                    last_date: s.last_date().expect("non-empty"),
                })
                .collect(),
        )
    }

    fn check(&self, symbol: &str, as_of: Option<NaiveDate>) -> Result<(), MarketError> {
        self.check_range(symbol, as_of)
    }

    async fn daily(&self, symbol: &str, as_of: Option<NaiveDate>, lookback: usize) -> Result<Series, MarketError> {
        self.check_range(symbol, as_of)?;
        let series = self.series(symbol).expect("checked");
        let as_of = as_of.or(series.last_date()).expect("non-empty");
        Ok(Series { symbol: symbol.to_string(), bars: series.window(as_of, lookback).to_vec() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data() -> BundledData {
        BundledData::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/market")).unwrap()
    }

    fn day(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn lists_the_bundled_tickers_and_indexes() {
        let symbols: Vec<String> = data().symbols().unwrap().into_iter().map(|s| s.symbol).collect();
        assert_eq!(
            symbols,
            vec!["AAPL", "AMZN", "FB", "GOOG", "IBM", "META", "MSFT", "NFLX", "NVDA", "^GSPC", "^IXIC"]
        );
    }

    #[test]
    fn eras_join_without_a_jump() {
        let d = data();
        let aapl = d.series("AAPL").unwrap();
        assert_eq!(aapl.first_date(), Some(day("2000-03-01")));
        assert_eq!(aapl.last_date(), Some(day("2023-09-21")));
        // 2012-12-31 comes from the older file, 2013-01-02 from the newer; the old file's close
        // that day was 532.17 against 549.03 → 19.60821 in the new one.
        let i = aapl.bars.iter().position(|b| b.date == day("2013-01-02")).unwrap();
        let (before, after) = (aapl.bars[i - 1], aapl.bars[i]);
        assert_eq!(before.date, day("2012-12-31"));
        assert_eq!(after.close, 19.60821);
        let jump = after.close / before.close - 1.0;
        assert!(jump.abs() < 0.05, "a day's move, not a split: {jump}");
        // Dates strictly increase.
        assert!(aapl.bars.windows(2).all(|w| w[0].date < w[1].date));
        // The S&P 500 files overlap too (1999–2018 and 2000–2020).
        let spx = d.series("^GSPC").unwrap();
        assert_eq!((spx.first_date(), spx.last_date()), (Some(day("1999-01-04")), Some(day("2020-04-17"))));
    }

    #[tokio::test]
    async fn windows_end_on_the_last_trading_day_and_ranges_are_checked() {
        let d = data();
        let w = d.daily("MSFT", None, 10).await.unwrap();
        assert_eq!(w.last_date(), Some(day("2013-03-01")), "the default is the symbol's own last day");
        // 2020-03-14 was a Saturday: the window ends on Friday the 13th.
        let w = d.daily("AAPL", Some(day("2020-03-14")), 10).await.unwrap();
        assert_eq!(w.bars.len(), 10);
        assert_eq!(w.last_date(), Some(day("2020-03-13")));
        assert!(matches!(d.daily("AAPL", Some(day("2024-01-02")), 10).await, Err(MarketError::OutOfRange { .. })));
        assert!(matches!(
            d.daily("AAPL", Some(day("2000-04-03")), 10).await,
            Err(MarketError::NotEnoughHistory { have: 24, .. })
        ));
        assert!(matches!(d.daily("TSLA", None, 10).await, Err(MarketError::UnknownSymbol(_))));
        assert_eq!(d.daily("FB", None, 600).await.unwrap().bars.len(), 196);
    }
}
