//! What a webhook may be and how it is signed and sent: the operator's settings, the
//! signature, which addresses a delivery may reach (`std`'s `IpAddr::is_global` is unstable,
//! and the crates that classify addresses do not say "may a server call this"; the ranges are
//! written out here from the IANA special-purpose registries), and the retry schedule.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use domain::FieldError;
use domain::webhook::{Webhook, parse_events};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// How long a delivery may take (`WEBHOOK_TIMEOUT_SECS`).
pub const TIMEOUT_DEFAULT: Duration = Duration::from_secs(10);
/// The first retry's wait (`WEBHOOK_FIRST_RETRY_MS`); later ones are multiples of it.
pub const FIRST_RETRY_DEFAULT: Duration = Duration::from_secs(5);
/// The waits before each retry, as multiples of the first: 5 s, 30 s, 5 min, 30 min, 2 h, 5 h
/// and 10 h three times — 37.6 hours in all, more than a day.
const RETRY_STEPS: [u32; 9] = [1, 6, 60, 360, 1440, 3600, 7200, 7200, 7200];

/// What an operator sets for webhooks.
#[derive(Clone, Default)]
pub struct WebhookConfig {
    /// The signing key, decoded from `WEBHOOK_SECRET` (`whsec_` + base64); webhooks are refused
    /// without one.
    pub secret: Option<Vec<u8>>,
    /// Lets webhooks reach loopback and private addresses, and plain http (`WEBHOOK_ALLOW_PRIVATE`).
    pub allow_private: bool,
    pub timeout: Duration,
    pub first_retry: Duration,
}

impl std::fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("secret", &self.secret.as_ref().map(|_| "…"))
            .field("allow_private", &self.allow_private)
            .field("timeout", &self.timeout)
            .field("first_retry", &self.first_retry)
            .finish()
    }
}

impl WebhookConfig {
    /// Reads `WEBHOOK_SECRET`: `whsec_` and the key in base64.
    pub fn secret_from(raw: &str) -> std::result::Result<Vec<u8>, String> {
        let key = raw.trim().strip_prefix("whsec_").ok_or("WEBHOOK_SECRET must start with whsec_")?;
        let key = base64::engine::general_purpose::STANDARD
            .decode(key)
            .map_err(|e| format!("WEBHOOK_SECRET is not whsec_ and base64: {e}"))?;
        if key.len() < 24 {
            return Err("WEBHOOK_SECRET's key must be at least 24 bytes".into());
        }
        Ok(key)
    }
}

/// The signature header's value for one delivery.
pub fn sign(key: &[u8], id: &str, timestamp: i64, body: &str) -> String {
    let mut mac = <Hmac<Sha256>>::new_from_slice(key).expect("HMAC takes any key");
    mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
    format!("v1,{}", base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes()))
}

/// Whether a server may call `ip`: not loopback, private, link-local, shared, reserved,
/// documentation, benchmarking, multicast or unspecified.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_public_v4(v4),
            None => is_public_v6(v6),
        },
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_documentation()
        || ip.is_multicast()
        || a == 0
        || (a == 100 && (64..128).contains(&b))
        || (a == 192 && b == 0 && c == 0)
        || (a == 198 && (18..20).contains(&b))
        || a >= 240)
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || (first & 0xfe00) == 0xfc00
        || (first & 0xffc0) == 0xfe80
        || (first == 0x2001 && ip.segments()[1] == 0x0db8)
        || (first == 0x0064 && ip.segments()[1] == 0xff9b))
}

/// Resolves names for the delivery client, keeping only the addresses a webhook may reach.
struct PublicOnly;

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        Box::pin(async move {
            let found: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), 0)).await?.collect();
            let public: Vec<SocketAddr> = found.into_iter().filter(|a| is_public(a.ip())).collect();
            if public.is_empty() {
                return Err(format!("{} resolves to no public address", name.as_str()).into());
            }
            Ok(Box::new(public.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// Checks webhooks when they are given, and sends them.
pub struct WebhookPolicy {
    pub(super) config: WebhookConfig,
    pub(super) client: reqwest::Client,
}

impl WebhookPolicy {
    pub fn new(config: WebhookConfig) -> std::result::Result<Self, String> {
        let mut client = reqwest::Client::builder()
            .user_agent(concat!("trading-agents-webhooks/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .timeout(config.timeout)
            .connect_timeout(config.timeout);
        if !config.allow_private {
            client = client.dns_resolver(Arc::new(PublicOnly));
        }
        Ok(Self { client: client.build().map_err(|e| e.to_string())?, config })
    }

    pub fn config(&self) -> &WebhookConfig {
        &self.config
    }

    /// The webhook a request names, checked: an https URL whose host resolves to public
    /// addresses only, and known events. `None` when it names none.
    pub async fn check(
        &self,
        url: Option<&str>,
        events: Option<&[String]>,
    ) -> std::result::Result<Option<Webhook>, Vec<FieldError>> {
        let url = match url.map(str::trim) {
            None | Some("") => {
                return match events {
                    Some(_) => Err(vec![FieldError::new("webhookEvents", "name a webhook for these events")]),
                    None => Ok(None),
                };
            }
            Some(url) => url,
        };
        let mut errors = Vec::new();
        let events = parse_events(events).map_err(|e| errors.push(e)).ok();
        if self.config.secret.is_none() {
            errors.push(FieldError::new(
                "webhook",
                "webhooks are off on this server: it has no WEBHOOK_SECRET to sign them",
            ));
        } else if let Err(why) = self.reachable(url).await {
            errors.push(FieldError::new("webhook", why));
        }
        match events {
            Some(events) if errors.is_empty() => Ok(Some(Webhook { url: url.to_string(), events })),
            _ => Err(errors),
        }
    }

    /// Why a delivery to `url` would be refused, if it would.
    async fn reachable(&self, raw: &str) -> std::result::Result<(), String> {
        let url = url::Url::parse(raw).map_err(|e| format!("'{raw}' is not a URL: {e}"))?;
        let plain_allowed = self.config.allow_private && url.scheme() == "http";
        if url.scheme() != "https" && !plain_allowed {
            return Err(format!("'{raw}' is not an https URL"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("a webhook URL carries no credentials: sign deliveries instead (they are)".into());
        }
        let host = url.host_str().ok_or_else(|| format!("'{raw}' names no host"))?;
        if self.config.allow_private {
            return Ok(());
        }
        let port = url.port_or_known_default().unwrap_or(443);
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let addrs: Vec<SocketAddr> = match host.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, port)],
            Err(_) => tokio::time::timeout(Duration::from_secs(5), tokio::net::lookup_host((host, port)))
                .await
                .map_err(|_| format!("{host} could not be resolved in time"))?
                .map_err(|e| format!("{host} could not be resolved: {e}"))?
                .collect(),
        };
        match addrs.iter().find(|a| !is_public(a.ip())) {
            Some(a) => {
                Err(format!("{host} is {}: a webhook may not reach a private, loopback or link-local address", a.ip()))
            }
            None if addrs.is_empty() => Err(format!("{host} has no address")),
            None => Ok(()),
        }
    }

    /// The wait before retry `attempt` (1-based), or none once the retries are spent.
    pub(super) fn backoff(&self, attempt: u32) -> Option<Duration> {
        RETRY_STEPS.get(attempt.checked_sub(1)? as usize).map(|m| self.config.first_retry * *m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Standard Webhooks specification's own example.
    #[test]
    fn signatures_match_the_standard_webhooks_example() {
        let key = WebhookConfig::secret_from("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = r#"{"test": 2432232314}"#;
        assert_eq!(
            sign(&key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
        assert!(WebhookConfig::secret_from("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_err());
    }

    #[test]
    fn only_public_addresses_are_reachable() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "224.0.0.1",
        ] {
            assert!(!is_public(private.parse().unwrap()), "{private}");
        }
        for public in ["93.184.216.34", "8.8.8.8", "2606:4700::1111"] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
    }

    #[test]
    fn retries_last_more_than_a_day() {
        let policy = WebhookPolicy::new(WebhookConfig {
            first_retry: FIRST_RETRY_DEFAULT,
            timeout: TIMEOUT_DEFAULT,
            ..Default::default()
        })
        .unwrap();
        let total: Duration = (1..=20).map_while(|a| policy.backoff(a)).sum();
        assert!(total > Duration::from_secs(24 * 3600), "{total:?}");
        assert_eq!(policy.backoff(1), Some(Duration::from_secs(5)));
        assert_eq!(policy.backoff(10), None);
    }
}
