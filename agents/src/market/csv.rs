//! Reading daily OHLCV CSV: the bundled files (`Date,Open,High,Low,Close,Volume,Adj Close`) and
//! Stooq's download format (`Date,Open,High,Low,Close,Volume`, no adjusted close).

use chrono::NaiveDate;
use csv::{ReaderBuilder, StringRecord, Trim};

use super::Bar;

/// Parses CSV text with a header naming at least Date, Open, High, Low, Close (in any case);
/// Volume and Adj Close are optional (missing volume reads as 0, missing Adj Close as Close).
/// Fields may be quoted, and a UTF-8 byte order mark before the header is ignored. Rows with a
/// missing or non-positive price (holidays in some feeds write "null", others "-") are skipped;
/// anything else malformed is an error naming the line. The result is sorted by date without
/// duplicates.
pub fn parse_bars(text: &str) -> Result<Vec<Bar>, String> {
    // Flexible: a row shorter than the header reads its missing fields as empty. The reader
    // drops the byte order mark and empty lines; lines of spaces come back as one empty field.
    let mut reader =
        ReaderBuilder::new().has_headers(false).flexible(true).trim(Trim::All).from_reader(text.as_bytes());
    let mut records = reader.records().filter(|r| !r.as_ref().is_ok_and(|r| r.len() == 1 && r[0].is_empty()));
    let header = records.next().ok_or("empty file")?.map_err(|e| e.to_string())?;
    let cols: Vec<String> = header.iter().map(str::to_ascii_lowercase).collect();
    let find = |name: &str| cols.iter().position(|c| c == name);
    let (Some(date), Some(open), Some(high), Some(low), Some(close)) =
        (find("date"), find("open"), find("high"), find("low"), find("close"))
    else {
        let header = header.iter().collect::<Vec<_>>().join(",");
        return Err(format!("unexpected header: {}", header.chars().take(80).collect::<String>()));
    };
    let volume = find("volume");
    let adj = find("adj close").or_else(|| find("adj_close"));

    let mut bars = Vec::new();
    for record in records {
        let record = record.map_err(|e| e.to_string())?;
        let get = |idx: usize| record.get(idx).unwrap_or("");
        let bad = |what: &str, s: &str| format!("line {}: bad {what} '{s}'", line_of(text, &record));
        let d = NaiveDate::parse_from_str(get(date), "%Y-%m-%d").map_err(|_| bad("date", get(date)))?;
        let num = |idx: usize| -> Result<Option<f64>, String> {
            let s = get(idx);
            if s.is_empty() || s.eq_ignore_ascii_case("null") || s == "-" {
                return Ok(None);
            }
            s.parse::<f64>().map(|v| v.is_finite().then_some(v)).map_err(|_| bad("number", s))
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

/// The line (from 1) on which `record` starts. The reader gives a record the position where
/// the one before it ended, ahead of the line break and empty lines it then skips (with CRLF
/// line ends, that is still the line before), so they are stepped over here.
fn line_of(text: &str, record: &StringRecord) -> usize {
    let bytes = text.as_bytes();
    let ended = record.position().map_or(0, |p| p.byte() as usize);
    let start = ended + bytes[ended..].iter().take_while(|b| matches!(b, b'\r' | b'\n')).count();
    bytes[..start].iter().filter(|b| **b == b'\n').count() + 1
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

    /// The line an error names is the line of the file, counting the empty lines and lines of
    /// spaces skipped before it, with CRLF line ends as with LF.
    #[test]
    fn errors_count_skipped_lines_and_crlf_line_ends() {
        let e = parse_bars("\r\nDate,Open,High,Low,Close\r\n2020-01-01,1,2,1,1\r\n\r\n  \r\n2020-01-03,1,2,x,1\r\n")
            .unwrap_err();
        assert_eq!(e, "line 6: bad number 'x'");
        let e = parse_bars("Date,Open,High,Low,Close\n\n2020-01-02,1,2,1,1\n2020-01-03,1,-,1,1\n2020-01-04,?,2,1,1")
            .unwrap_err();
        assert_eq!(e, "line 5: bad number '?'");
    }

    /// Header names are read in any case, after a byte order mark; a row shorter than the
    /// header has its missing fields empty, and "-" is no price, as "null" is.
    #[test]
    fn header_in_any_case_after_a_bom_and_short_or_dashed_rows() {
        let text = "\u{feff}date,OPEN,High,low,CLOSE,adj_close,Volume\n\
                    2020-01-03,2,3,1,2.5\n\
                    2020-01-02,-,2,1,1.5,1.4,10\n\
                    2020-01-06,2,3,1,2.5,2.4,-7\n\
                    2020-01-03,9,9,9,9,9,9\n";
        let bars = parse_bars(text).unwrap();
        assert_eq!(bars.len(), 2, "{bars:?}");
        assert_eq!((bars[0].date, bars[0].adj_close, bars[0].volume), (day(2020, 1, 3), 2.5, 0.0));
        assert_eq!((bars[1].date, bars[1].adj_close, bars[1].volume), (day(2020, 1, 6), 2.4, 0.0));
    }

    /// Quoted fields are read as their content: a quoted date or price, and a comma inside
    /// quotes that does not shift the columns after it.
    #[test]
    fn quoted_fields_are_read_as_their_content() {
        let text = "\"Date\",\"Name\",\"Open\",\"High\",\"Low\",\"Close\",\"Volume\"\n\
                    \"2020-05-01\",\"Apple, Inc.\",\"10\",11,9,\"10.5\",\"1234\"\n";
        let bars = parse_bars(text).unwrap();
        assert_eq!(bars.len(), 1);
        assert_eq!(bars[0].date, day(2020, 5, 1));
        assert_eq!((bars[0].open, bars[0].high, bars[0].close, bars[0].volume), (10.0, 11.0, 10.5, 1234.0));
    }

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }
}
