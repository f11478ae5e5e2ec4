//! Headlines from an RSS feed, for the sentiment analyst (optional: `NEWS_RSS_URL`, a URL with
//! `{symbol}` in it, e.g. Yahoo Finance's `https://feeds.finance.yahoo.com/rss/2.0/headline?s={symbol}`).
//!
//! Feeds carry today's news, so headlines are used only when a run analyses the latest data
//! (no as-of date); a historical analysis with today's headlines would mix up times. Atom feeds
//! work too.

use crate::market::MarketError;
use crate::market::fetch::{fetch_text, status_error};
use crate::retry::RetryPolicy;

pub const MAX_HEADLINES: usize = 20;

pub struct RssNews {
    client: reqwest::Client,
    url_template: String,
    retry: RetryPolicy,
}

impl RssNews {
    pub fn new(client: reqwest::Client, url_template: &str, retry: RetryPolicy) -> Result<Self, String> {
        if !url_template.contains("{symbol}") {
            return Err("NEWS_RSS_URL must contain {symbol}".into());
        }
        Ok(Self { client, url_template: url_template.to_string(), retry })
    }

    pub async fn headlines(&self, symbol: &str) -> Result<Vec<String>, MarketError> {
        let url = self.url_template.replace("{symbol}", &symbol.replace('^', "%5E"));
        let (status, body) = fetch_text(&self.client, &url, &self.retry).await?;
        if !status.is_success() {
            return Err(status_error(status, &body));
        }
        Ok(titles(&body))
    }
}

/// The title of each item (RSS) or entry (Atom), in feed order, at most [`MAX_HEADLINES`];
/// nothing when the body is not a feed (RSS needs its `version`, as RSS 0.91–2.0 and RDF feeds
/// carry it). Parsed by feed-rs, which handles entities, CDATA and both formats.
pub fn titles(xml: &str) -> Vec<String> {
    let Ok(feed) = feed_rs::parser::parse(xml.as_bytes()) else {
        return Vec::new();
    };
    feed.entries
        .into_iter()
        .filter_map(|e| e.title)
        .map(|t| t.content.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|t| !t.is_empty())
        .take(MAX_HEADLINES)
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_item_titles_only() {
        let xml = r#"<rss version="2.0"><channel><title>Feed title</title>
            <item><title>Apple beats estimates &amp; raises outlook</title></item>
            <item><title><![CDATA[Shares slip as "iPhone" demand cools]]></title></item>
            <item><description>no title</description></item>
            </channel></rss>"#;
        assert_eq!(
            super::titles(xml),
            vec!["Apple beats estimates & raises outlook", "Shares slip as \"iPhone\" demand cools"]
        );
        assert!(super::titles("not xml").is_empty());
    }

    #[test]
    fn reads_atom_entries_and_numeric_entities() {
        let xml = r#"<?xml version="1.0" encoding="utf-8"?>
            <feed xmlns="http://www.w3.org/2005/Atom"><title>Feed</title><id>urn:f</id><updated>2023-09-21T00:00:00Z</updated>
            <entry><title>Nvidia&#8217;s rally &#x2014; again</title><id>urn:1</id><updated>2023-09-21T00:00:00Z</updated></entry>
            </feed>"#;
        assert_eq!(super::titles(xml), vec!["Nvidia\u{2019}s rally \u{2014} again"]);
    }
}
