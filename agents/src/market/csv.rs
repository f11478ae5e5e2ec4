//! Reading daily OHLCV CSV: the bundled files (`Date,Open,High,Low,Close,Volume,Adj Close`) and
//! Stooq's download format (`Date,Open,High,Low,Close,Volume`, no adjusted close).

use chrono::NaiveDate;

use super::Bar;

/// Parses CSV text with a header naming at least Date, Open, High, Low, Close; Volume and
/// Adj Close are optional (missing volume reads as 0, missing Adj Close as Close). Rows with a
/// missing or non-positive price (holidays in some feeds write "null") are skipped; anything
/// else malformed is an error naming the line. The result is sorted by date without duplicates.
pub fn parse_bars(text: &str) -> Result<Vec<Bar>, String> {
    let mut lines = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty());
    let (_, header) = lines.next().ok_or("empty file")?;
    let cols: Vec<String> =
        header.split(',').map(|c| c.trim().trim_start_matches('\u{feff}').to_ascii_lowercase()).collect();
    let find = |name: &str| cols.iter().position(|c| c == name);
    let (Some(date), Some(open), Some(high), Some(low), Some(close)) =
        (find("date"), find("open"), find("high"), find("low"), find("close"))
    else {
        return Err(format!("unexpected header: {}", header.chars().take(80).collect::<String>()));
    };
    let volume = find("volume");
    let adj = find("adj close").or_else(|| find("adj_close"));

    let mut bars = Vec::new();
    for (i, line) in lines {
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        let get = |idx: usize| fields.get(idx).copied().unwrap_or("");
        let d = NaiveDate::parse_from_str(get(date), "%Y-%m-%d")
            .map_err(|_| format!("line {}: bad date '{}'", i + 1, get(date)))?;
        let num = |idx: usize| -> Result<Option<f64>, String> {
            let s = get(idx);
            if s.is_empty() || s.eq_ignore_ascii_case("null") || s == "-" {
                return Ok(None);
            }
            s.parse::<f64>()
                .map(|v| v.is_finite().then_some(v))
                .map_err(|_| format!("line {}: bad number '{}'", i + 1, s))
        };
        let (Some(o), Some(h), Some(l), Some(c)) = (num(open)?, num(high)?, num(low)?, num(close)?) else {
            continue;
        };
        if o <= 0.0 || h <= 0.0 || l <= 0.0 || c <= 0.0 {
            continue;
        }
        let v = match volume {
            Some(idx) => num(idx)?.unwrap_or(0.0).max(0.0),
            None => 0.0,
        };
        let a = match adj {
            Some(idx) => num(idx)?.filter(|a| *a > 0.0).unwrap_or(c),
            None => c,
        };
        bars.push(Bar { date: d, open: o, high: h, low: l, close: c, adj_close: a, volume: v });
    }
    bars.sort_by_key(|b| b.date);
    bars.dedup_by_key(|b| b.date);
    Ok(bars)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_both_layouts_and_skips_empty_rows() {
        let bundled = "Date,Open,High,Low,Close,Volume,Adj Close\n\
                       2013-01-03,2,3,1,2.5,100,2.4\n\
                       2013-01-02,1,2,0.5,1.5,50,1.4\n\
                       2013-01-04,null,null,null,null,null,null\n";
        let bars = parse_bars(bundled).unwrap();
        assert_eq!(bars.len(), 2);
        assert_eq!(bars[0].date, NaiveDate::from_ymd_opt(2013, 1, 2).unwrap());
        assert_eq!((bars[1].close, bars[1].adj_close, bars[1].volume), (2.5, 2.4, 100.0));

        let stooq = "Date,Open,High,Low,Close,Volume\r\n2020-05-01,10,11,9,10.5,1234\r\n";
        let bars = parse_bars(stooq).unwrap();
        assert_eq!((bars[0].adj_close, bars[0].volume), (10.5, 1234.0));
    }

    #[test]
    fn malformed_input_names_the_line() {
        assert!(parse_bars("").is_err());
        assert!(parse_bars("No data").unwrap_err().contains("unexpected header"));
        let e = parse_bars("Date,Open,High,Low,Close\n2020-01-01,1,2,x,1\n").unwrap_err();
        assert_eq!(e, "line 2: bad number 'x'");
        let e = parse_bars("Date,Open,High,Low,Close\n01/02/2020,1,2,1,1\n").unwrap_err();
        assert!(e.starts_with("line 2: bad date"), "{e}");
    }
}
