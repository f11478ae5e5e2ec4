//! The online market data providers against a local server that answers in their formats —
//! Yahoo's chart JSON and Stooq's CSV, built from the bundled data — and with their failures:
//! an unknown symbol, rate limiting, a malformed body, a slow answer.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use agents::market::bundled::BundledData;
use agents::market::stooq::StooqData;
use agents::market::yahoo::YahooData;
use agents::market::{Bar, MarketData, MarketError};
use agents::retry::RetryPolicy;
use axum::Router;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::NaiveDate;
use serde_json::json;

struct Upstream {
    bars: Vec<Bar>,
    hits: AtomicUsize,
    /// Requests for the symbol that is rate limited twice before it answers.
    rate_hits: AtomicUsize,
}

fn bundled_aapl() -> Vec<Bar> {
    let data = BundledData::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/market")).unwrap();
    data.series("AAPL").unwrap().bars[..].to_vec()
}

/// What Yahoo's chart API answers, for the bars between two unix times.
fn chart_json(bars: &[Bar]) -> String {
    let ts: Vec<i64> =
        bars.iter().map(|b| b.date.and_hms_opt(14, 30, 0).unwrap().and_utc().timestamp() + 4 * 3600).collect();
    json!({"chart": {"result": [{
        "meta": {"symbol": "AAPL", "gmtoffset": -14400},
        "timestamp": ts,
        "indicators": {
            "quote": [{
                "open": bars.iter().map(|b| b.open).collect::<Vec<_>>(),
                "high": bars.iter().map(|b| b.high).collect::<Vec<_>>(),
                "low": bars.iter().map(|b| b.low).collect::<Vec<_>>(),
                "close": bars.iter().map(|b| b.close).collect::<Vec<_>>(),
                "volume": bars.iter().map(|b| b.volume).collect::<Vec<_>>()
            }],
            "adjclose": [{"adjclose": bars.iter().map(|b| b.adj_close).collect::<Vec<_>>()}]
        }
    }], "error": null}})
    .to_string()
}

async fn yahoo(
    State(up): State<Arc<Upstream>>,
    UrlPath(symbol): UrlPath<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    up.hits.fetch_add(1, Ordering::SeqCst);
    let (mut from, mut to): (i64, i64) = (q["period1"].parse().unwrap(), q["period2"].parse().unwrap());
    // The recorded data ends 2023-09-21: a request for later dates is answered as if that day
    // were today.
    let last = up.bars.last().unwrap().date.and_hms_opt(0, 0, 0).unwrap().and_utc().timestamp() + 86_400;
    if to > last {
        from -= to - last;
        to = last;
    }
    match symbol.as_str() {
        "AAPL" | "^GSPC" => {
            let bars: Vec<Bar> = up
                .bars
                .iter()
                .filter(|b| {
                    let t = b.date.and_hms_opt(0, 0, 0).unwrap().and_utc().timestamp();
                    t >= from && t < to
                })
                .copied()
                .collect();
            ([(header::CONTENT_TYPE, "application/json")], chart_json(&bars)).into_response()
        }
        "RATE" if up.rate_hits.fetch_add(1, Ordering::SeqCst) < 2 => (StatusCode::TOO_MANY_REQUESTS, [(header::RETRY_AFTER, "0")], "Too Many Requests").into_response(),
        "RATE" => ([(header::CONTENT_TYPE, "application/json")], chart_json(&up.bars[..100])).into_response(),
        "ALWAYS429" => (StatusCode::TOO_MANY_REQUESTS, "Too Many Requests").into_response(),
        "BAD" => ([(header::CONTENT_TYPE, "text/html")], "<html>Oops</html>").into_response(),
        "SLOW" => {
            tokio::time::sleep(Duration::from_secs(5)).await;
            "late".into_response()
        }
        _ => (
            StatusCode::NOT_FOUND,
            json!({"chart": {"result": null, "error": {"code": "Not Found", "description": "No data found, symbol may be delisted"}}}).to_string(),
        )
            .into_response(),
    }
}

async fn stooq(State(up): State<Arc<Upstream>>, Query(q): Query<HashMap<String, String>>) -> Response {
    up.hits.fetch_add(1, Ordering::SeqCst);
    let to = NaiveDate::parse_from_str(&q["d2"], "%Y%m%d").unwrap();
    match q["s"].as_str() {
        "aapl.us" | "^spx" => {
            let mut csv = String::from("Date,Open,High,Low,Close,Volume\n");
            for b in up.bars.iter().filter(|b| b.date <= to) {
                csv.push_str(&format!("{},{},{},{},{},{}\n", b.date, b.open, b.high, b.low, b.close, b.volume));
            }
            csv.into_response()
        }
        "bad.us" => "Date;Open\n2020-01-01;1".into_response(),
        _ => "No data".into_response(),
    }
}

/// Three headlines whose words the VADER lexicon scores: "great" 3.1, "fraud" -2.8, "good" 1.9.
async fn rss() -> Response {
    let items = ["Analysts call the quarter great", "Regulators open fraud probe", "Supply outlook looks good"]
        .map(|t| format!("<item><title>{t}</title><link>https://example.test/{}</link></item>", t.len()))
        .join("");
    (
        [(header::CONTENT_TYPE, "application/rss+xml")],
        format!("<rss version=\"2.0\"><channel><title>News</title>{items}</channel></rss>"),
    )
        .into_response()
}

async fn upstream() -> (String, Arc<Upstream>) {
    let up = Arc::new(Upstream { bars: bundled_aapl(), hits: AtomicUsize::new(0), rate_hits: AtomicUsize::new(0) });
    let app = Router::new()
        .route("/v8/finance/chart/{symbol}", get(yahoo))
        .route("/q/d/l/", get(stooq))
        .route("/rss", get(rss))
        .with_state(up.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), up)
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_millis(800)).build().unwrap()
}

fn retry() -> RetryPolicy {
    RetryPolicy { max_retries: 2, base_delay: Duration::from_millis(10), max_delay: Duration::from_millis(50) }
}

fn day(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

#[tokio::test]
async fn yahoo_series_match_the_source_and_end_on_the_as_of_date() {
    let (base, _) = upstream().await;
    let yahoo = YahooData::new(client(), &base, retry());
    let s = yahoo.daily("AAPL", Some(day("2020-03-14")), 300).await.unwrap();
    assert_eq!(s.bars.len(), 300);
    assert_eq!(s.last_date(), Some(day("2020-03-13")), "the last trading day on or before the as-of date");
    let source: Vec<Bar> = bundled_aapl().into_iter().filter(|b| b.date <= day("2020-03-13")).collect();
    assert_eq!(s.bars, source[source.len() - 300..], "dates and every price survive the round trip");
    let index = yahoo.daily("^GSPC", Some(day("2020-03-13")), 50).await.unwrap();
    assert_eq!(index.bars.len(), 50, "index symbols are URL-encoded");
}

#[tokio::test]
async fn yahoo_failures_are_told_apart() {
    let (base, up) = upstream().await;
    let yahoo = YahooData::new(client(), &base, retry());
    assert_eq!(yahoo.daily("ZZZZ", None, 100).await.unwrap_err(), MarketError::UnknownSymbol("ZZZZ".into()));
    let before = up.hits.load(Ordering::SeqCst);
    assert_eq!(yahoo.daily("RATE", Some(day("2000-12-31")), 50).await.unwrap().bars.len(), 50, "two 429s, then data");
    assert_eq!(up.hits.load(Ordering::SeqCst) - before, 3);
    assert_eq!(yahoo.daily("ALWAYS429", None, 100).await.unwrap_err(), MarketError::RateLimited);
    assert!(matches!(yahoo.daily("BAD", None, 100).await.unwrap_err(), MarketError::Malformed(_)));
    assert_eq!(yahoo.daily("SLOW", None, 100).await.unwrap_err(), MarketError::Timeout);
}

#[tokio::test]
async fn stooq_reads_csv_and_says_when_there_is_no_data() {
    let (base, _) = upstream().await;
    let stooq = StooqData::new(client(), &base, retry());
    let s = stooq.daily("AAPL", Some(day("2023-09-21")), 120).await.unwrap();
    assert_eq!(s.bars.len(), 120);
    assert_eq!(s.last_date(), Some(day("2023-09-21")));
    assert_eq!(s.bars.last().unwrap().close, 173.93);
    assert_eq!(s.bars.last().unwrap().adj_close, 173.93, "no adjusted close in Stooq's CSV: the close stands in");
    assert!(stooq.daily("^GSPC", Some(day("2023-09-21")), 10).await.is_ok(), "the benchmark is ^spx");
    assert_eq!(stooq.daily("ZZZZ", None, 10).await.unwrap_err(), MarketError::UnknownSymbol("ZZZZ".into()));
    assert!(matches!(stooq.daily("BAD", None, 10).await.unwrap_err(), MarketError::Malformed(_)));
}

/// A whole analysis on online data: prices from the Yahoo-format server, headlines from RSS
/// scored with VADER, a priced chat model. The S&P 500 series here is AAPL's own, so beta must
/// be exactly 1.
#[tokio::test]
async fn an_analysis_on_online_prices_headlines_and_a_chat_model() {
    use agents::Pipeline;
    use agents::model::{Catalog, Models, ModelsConfig};
    use agents::news::RssNews;
    use agents::testing::FakeLlm;
    use agents::vader::Lexicon;
    use domain::AnalystKind;
    use domain::ValidStart;

    let (base, _) = upstream().await;
    let fake = FakeLlm::start().await;
    let catalog = format!(
        "[[model]]\nid = \"priced\"\nlabel = \"Priced\"\nprovider = \"openai-compatible\"\nbase_url = \"{}\"\nmodel = \"m\"\n\
         input_price_per_mtok = 2.0\noutput_price_per_mtok = 10.0\n",
        fake.base_url("ok")
    );
    let models =
        Models::new(Catalog::from_toml(&catalog).unwrap(), &|_| None, reqwest::Client::new(), ModelsConfig::default());
    let lexicon =
        Lexicon::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/sentiment/vader_lexicon.tsv")).unwrap();
    let news = RssNews::new(client(), &format!("{base}/rss?s={{symbol}}"), retry()).unwrap();
    let pipeline = Pipeline::new(Arc::new(YahooData::new(client(), &base, retry())), Arc::new(models))
        .with_news(Arc::new(news), Arc::new(lexicon));
    let spec = ValidStart {
        symbol: "AAPL".parse().unwrap(),
        model_id: "priced".parse().unwrap(),
        analysts: vec![AnalystKind::Risk, AnalystKind::Sentiment],
        as_of: None,
        options: Default::default(),
    };
    let reporter = Collect::default();
    let result = pipeline.run(&spec, &reporter).await.unwrap();

    assert_eq!(result.as_of, day("2023-09-21"));
    assert!(!result.rule_based);
    let data = reporter.0.lock().unwrap()["Data Collection"]["output"].clone();
    assert_eq!(data["source"], "yahoo");
    assert_eq!(data["beta"], 1.0, "AAPL against itself");
    let scores: Vec<f64> = data["headlines"].as_array().unwrap().iter().map(|h| h["score"].as_f64().unwrap()).collect();
    let vader = |v: f64| v / (v * v + 15.0f64).sqrt();
    assert_eq!(scores.len(), 3);
    for (got, want) in scores.iter().zip([vader(3.1), vader(-2.8), vader(1.9)]) {
        assert!((got - want).abs() < 1e-12, "{scores:?}");
    }
    let sentiment_prompt = fake.calls().into_iter().find(|c| c.step == "Sentiment Analyst").unwrap().prompt;
    assert!(sentiment_prompt.contains("Regulators open fraud probe"), "the model sees the headlines");
    assert_eq!(result.llm_calls, 3);
    assert_eq!(result.tokens.prompt, 1200, "the fake reports 400 prompt tokens a call");
    let cost = (result.tokens.prompt as f64 * 2.0 + result.tokens.completion as f64 * 10.0) / 1e6;
    assert_eq!(result.cost_usd, Some(cost));
}

/// Keeps each completed step's output.
#[derive(Default)]
struct Collect(std::sync::Mutex<HashMap<String, serde_json::Value>>);

#[async_trait::async_trait]
impl agents::Reporter for Collect {
    type Error = ();
    fn checkpoint(&self, _: &str) -> Option<serde_json::Value> {
        None
    }
    async fn start_step(&self, _: &str, _: Option<&str>) -> Result<(), ()> {
        Ok(())
    }
    async fn step_progress(&self, _: &str, _: u8, _: Option<&str>) -> Result<(), ()> {
        Ok(())
    }
    async fn complete_step(
        &self,
        step: &str,
        output: serde_json::Value,
        _: agents::model::Usage,
        _: &str,
    ) -> Result<(), ()> {
        self.0.lock().unwrap().insert(step.to_string(), output);
        Ok(())
    }
    async fn save_turn(
        &self,
        _: &str,
        key: &str,
        _: u8,
        output: serde_json::Value,
        _: agents::model::Usage,
        _: &str,
    ) -> Result<(), ()> {
        self.0.lock().unwrap().insert(key.to_string(), output);
        Ok(())
    }
}
