//! Headlines from an RSS feed, for the sentiment analyst (optional: `NEWS_RSS_URL`, a URL with
//! `{symbol}` in it, e.g. Yahoo Finance's `https://feeds.finance.yahoo.com/rss/2.0/headline?s={symbol}`).
//!
//! Feeds carry today's news, so headlines are used only when a run analyses the latest data
//! (no as-of date); a historical analysis with today's headlines would mix up times.

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

/// The `<title>` of each `<item>`, unescaped, at most [`MAX_HEADLINES`].
pub fn titles(xml: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(start) = rest.find("<item") {
        rest = &rest[start..];
        let end = rest.find("</item>").unwrap_or(rest.len());
        let item = &rest[..end];
        if let (Some(a), Some(b)) = (item.find("<title>"), item.find("</title>"))
            && a + 7 <= b
        {
            let raw = item[a + 7..b].trim();
            let raw = raw.strip_prefix("<![CDATA[").and_then(|r| r.strip_suffix("]]>")).unwrap_or(raw);
            let title = unescape(raw.trim());
            if !title.is_empty() {
                out.push(title);
            }
        }
        rest = &rest[end.min(rest.len())..];
        if rest.len() <= 7 || out.len() >= MAX_HEADLINES {
            break;
        }
        rest = &rest[7..];
    }
    out
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_item_titles_only() {
        let xml = r#"<rss><channel><title>Feed title</title>
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
}
