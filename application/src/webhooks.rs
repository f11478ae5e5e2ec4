//! Signed webhooks: a run or a batch may name an https URL to be told of its events, sent as
//! Standard Webhooks deliveries (`webhook-id`, `webhook-timestamp`, `webhook-signature: v1,`
//! base64 HMAC-SHA256 of `{id}.{timestamp}.{body}` under `WEBHOOK_SECRET`).
//!
//! The outbox: an event is a change of a job's row — a run claimed (start), a step finished
//! (step), an end (completed) — committed by the queue like any other. The [`Dispatcher`]
//! reads the rows of runs and batches with a webhook that changed lately and records each
//! event they show in `trading_agent_webhook_deliveries`, once (`(subject, event)` is unique),
//! with its `webhook-id` and body fixed; so an event is never lost (its row is durable before
//! anything is sent) nor recorded twice (however many processes read it). Deliveries are
//! claimed with a lease, sent with a 10 s timeout and no redirects, and retried on any answer
//! but a 2xx for more than a day (5 s, 30 s, 5 min, 30 min, 2 h, 5 h, then every 10 h), always
//! with the same id and body: a receiver that keeps the ids it has seen sees each event once.
//!
//! Where a URL may lead: never to a loopback, private, link-local or otherwise non-public
//! address (unless `WEBHOOK_ALLOW_PRIVATE`), checked when the webhook is given and again at
//! every delivery by the resolver the client connects through, so a name that resolves
//! elsewhere later (DNS rebinding) is refused too. `std`'s `IpAddr::is_global` is unstable,
//! and the crates that classify addresses do not say "may a server call this"; the ranges are
//! written out here from the IANA special-purpose registries.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use chrono::{DateTime, Utc};
use domain::webhook::{Delivery, Webhook, WebhookEvent, parse_events};
use domain::{BatchId, FieldError, RunId};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio_util::sync::CancellationToken;

use crate::batches::Batches;
use crate::error::{Error, Result};
use crate::run::Run;
use crate::runs::RunService;
use crate::store::{DeliveryRow, Store};

/// How long a delivery may take (`WEBHOOK_TIMEOUT_SECS`).
pub const TIMEOUT_DEFAULT: Duration = Duration::from_secs(10);
/// The first retry's wait (`WEBHOOK_FIRST_RETRY_MS`); later ones are multiples of it.
pub const FIRST_RETRY_DEFAULT: Duration = Duration::from_secs(5);
/// The waits before each retry, as multiples of the first: 5 s, 30 s, 5 min, 30 min, 2 h, 5 h
/// and 10 h three times — 37.6 hours in all, more than a day.
const RETRY_STEPS: [u32; 9] = [1, 6, 60, 360, 1440, 3600, 7200, 7200, 7200];
/// How often the dispatcher looks for events and deliveries due.
pub const PASS_EVERY: Duration = Duration::from_millis(250);
/// Deliveries sent at once by one process.
const CLAIM_AT_ONCE: u32 = 64;

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
    config: WebhookConfig,
    client: reqwest::Client,
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
    fn backoff(&self, attempt: u32) -> Option<Duration> {
        RETRY_STEPS.get(attempt.checked_sub(1)? as usize).map(|m| self.config.first_retry * *m)
    }
}

/// Records events into the outbox and sends what is due.
pub struct Dispatcher {
    store: Store,
    runs: Arc<RunService>,
    batches: Arc<Batches>,
    clock: Arc<dyn jobs::Clock>,
    /// Rows changed since this are read again (a margin before the last pass).
    since: std::sync::Mutex<DateTime<Utc>>,
}

/// Rows changed this long before the last pass are read again: the writers' clocks may differ.
const SCAN_MARGIN: chrono::TimeDelta = chrono::TimeDelta::seconds(5);

impl Dispatcher {
    pub fn new(runs: Arc<RunService>, batches: Arc<Batches>, clock: Arc<dyn jobs::Clock>) -> Self {
        // Once started, a process looks a day back: retries last that long.
        let since = clock.now() - chrono::TimeDelta::days(1);
        Self { store: runs.store().clone(), runs, batches, clock, since: std::sync::Mutex::new(since) }
    }

    fn policy(&self) -> &WebhookPolicy {
        self.runs.webhooks()
    }

    /// Records the events of runs and batches that changed lately; how many were new. A row is
    /// read again for a few seconds after it changed, so what it shows is checked against what
    /// is recorded first, and only an event not yet recorded costs its body.
    pub async fn record(&self) -> Result<u32> {
        let now = self.clock.now();
        let since = *self.since.lock().expect("not poisoned");
        let runs = self.store.runs_with_webhooks_since(since).await?;
        let subjects: Vec<String> = runs.iter().map(|(id, _)| id.to_string()).collect();
        let recorded_before = self.store.recorded_events(&subjects).await?;
        let mut recorded = 0;
        for (run_id, owner) in runs {
            recorded += self.record_run(run_id, &owner, &recorded_before, now).await?;
        }
        for (batch_id, owner) in self.store.batches_with_webhooks_since(since).await? {
            recorded += self.record_batch(batch_id, &owner, now).await?;
        }
        *self.since.lock().expect("not poisoned") = now - SCAN_MARGIN;
        Ok(recorded)
    }

    async fn record_run(
        &self,
        run_id: RunId,
        owner: &str,
        recorded_before: &std::collections::HashSet<(String, String)>,
        now: DateTime<Utc>,
    ) -> Result<u32> {
        let run = match self.runs.owned(owner, run_id).await {
            Ok(run) => run,
            Err(Error::NotFound) => return Ok(0),
            Err(e) => return Err(e),
        };
        let Some(webhook) = run.webhook.clone() else { return Ok(0) };
        let subject = run_id.to_string();
        let key = |event: WebhookEvent, step: &Option<String>| match step {
            Some(step) => format!("step:{step}"),
            None => event.as_str().to_string(),
        };
        let due: Vec<(WebhookEvent, Option<String>)> = run_events(&run, &webhook.events)
            .into_iter()
            .filter(|(event, step)| !recorded_before.contains(&(subject.clone(), key(*event, step))))
            .collect();
        if due.is_empty() {
            return Ok(0);
        }
        let progress =
            serde_json::to_value(self.runs.to_progress(run).await).map_err(|e| Error::Internal(e.to_string()))?;
        let mut recorded = 0;
        for (event, step) in due {
            let mut body = serde_json::json!({
                "type": format!("run.{}", event.as_str()),
                "timestamp": now,
                "data": progress,
            });
            if let Some(step) = &step {
                body["step"] = step.clone().into();
            }
            let row = new_delivery(&subject, owner, &key(event, &step), &webhook.url, &body, None, now);
            recorded += u32::from(self.store.record_delivery(&row).await?);
        }
        Ok(recorded)
    }

    async fn record_batch(&self, batch_id: BatchId, owner: &str, now: DateTime<Utc>) -> Result<u32> {
        let (view, webhook, schedule) = match self.batches.with_webhook(owner, batch_id).await {
            Ok(found) => found,
            Err(Error::NotFound) => return Ok(0),
            Err(e) => return Err(e),
        };
        let Some(webhook) = webhook else { return Ok(0) };
        let wants = |e: WebhookEvent| webhook.events.contains(&e);
        let mut due: Vec<(String, String, Option<RunId>)> = Vec::new();
        if wants(WebhookEvent::Start) {
            due.push(("start".into(), "batch.start".into(), None));
        }
        if wants(WebhookEvent::Step) {
            for r in view.runs.iter().filter(|r| r.status.is_terminal()) {
                due.push((format!("step:{}", r.run_id), "batch.step".into(), Some(r.run_id)));
            }
        }
        if wants(WebhookEvent::Completed) && view.status != domain::batch::BatchStatus::Running {
            due.push(("completed".into(), "batch.completed".into(), None));
        }
        let data = serde_json::to_value(&view).map_err(|e| Error::Internal(e.to_string()))?;
        let mut recorded = 0;
        for (key, kind, run) in due {
            let mut body = serde_json::json!({ "type": kind, "timestamp": now, "data": data });
            if let Some(run) = run {
                body["runId"] = run.to_string().into();
            }
            let row = new_delivery(&batch_id.to_string(), owner, &key, &webhook.url, &body, schedule.as_deref(), now);
            recorded += u32::from(self.store.record_delivery(&row).await?);
        }
        Ok(recorded)
    }

    /// Sends the deliveries due, [`CLAIM_AT_ONCE`] at a time until fewer are due; how many
    /// arrived.
    pub async fn deliver(&self) -> Result<u32> {
        let mut delivered = 0;
        loop {
            let (claimed, arrived) = self.deliver_some().await?;
            delivered += arrived;
            if claimed < CLAIM_AT_ONCE as usize {
                return Ok(delivered);
            }
        }
    }

    /// Claims and sends one round of deliveries: how many were claimed, and how many arrived.
    async fn deliver_some(&self) -> Result<(usize, u32)> {
        let policy = self.policy();
        let Some(key) = policy.config.secret.clone() else { return Ok((0, 0)) };
        let now = self.clock.now();
        // A delivery in flight is not claimed again before its timeout has surely passed.
        let lease = chrono::TimeDelta::from_std(policy.config.timeout * 3).unwrap_or(chrono::TimeDelta::seconds(30));
        let claimed = self.store.claim_deliveries(now, now + lease, CLAIM_AT_ONCE).await?;
        let count = claimed.len();
        let sends = claimed.into_iter().map(|d| {
            let key = key.clone();
            async move {
                let outcome = self.send(&key, &d).await;
                (d, outcome)
            }
        });
        let mut delivered = 0;
        for (d, outcome) in futures::future::join_all(sends).await {
            let now = self.clock.now();
            match outcome {
                Ok(status) => {
                    delivered += 1;
                    self.store.delivery_done(&d.webhook_id, status, now).await?;
                }
                Err((status, why)) => match policy.backoff(d.attempts) {
                    Some(wait) => {
                        let next = now + chrono::TimeDelta::from_std(wait).unwrap_or(chrono::TimeDelta::hours(10));
                        self.store.delivery_failed(&d.webhook_id, status, &why, Some(next), now).await?;
                    }
                    None => {
                        tracing::warn!(webhookId = %d.webhook_id, url = %d.url, error = %why, "webhook given up after its retries");
                        self.store.delivery_failed(&d.webhook_id, status, &why, None, now).await?;
                        if let Some(schedule) = &d.schedule_id {
                            self.store.disable_schedule_webhook(schedule, now).await?;
                        }
                    }
                },
            }
        }
        Ok((count, delivered))
    }

    /// One attempt: the receiver's status if it was a 2xx, else its status (if it answered)
    /// and why it failed.
    async fn send(&self, key: &[u8], d: &DeliveryRow) -> std::result::Result<u16, (Option<u16>, String)> {
        let policy = self.policy();
        if !policy.config.allow_private {
            // An address in the URL itself is not resolved, so it is checked here.
            if let Some(host) = url::Url::parse(&d.url).ok().and_then(|u| u.host_str().map(String::from))
                && let Ok(ip) = host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>()
                && !is_public(ip)
            {
                return Err((None, format!("{ip} is not a public address")));
            }
        }
        let timestamp = self.clock.now().timestamp();
        let resp = policy
            .client
            .post(&d.url)
            .header("content-type", "application/json")
            .header("webhook-id", &d.webhook_id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", sign(key, &d.webhook_id, timestamp, &d.body))
            .body(d.body.clone())
            .send()
            .await
            .map_err(|e| (None, error_chain(&e)))?;
        let status = resp.status();
        if status.is_success() {
            Ok(status.as_u16())
        } else {
            Err((Some(status.as_u16()), format!("the receiver answered {status}")))
        }
    }

    /// A run's deliveries, if it is `owner`'s.
    pub async fn deliveries(&self, owner: &str, run_id: RunId) -> Result<Vec<Delivery>> {
        self.runs.owned(owner, run_id).await?;
        self.store.deliveries_of(owner, &run_id.to_string()).await
    }

    /// Records and sends until `shutdown`.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        loop {
            if let Err(e) = self.record().await {
                tracing::warn!(error = %e, "recording webhook events failed; trying again");
            }
            if let Err(e) = self.deliver().await {
                tracing::warn!(error = %e, "sending webhooks failed; trying again");
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(PASS_EVERY) => {}
            }
        }
    }
}

/// An error and its causes in one line (reqwest's own says little: "error sending request").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// The events a run's row shows, of those wanted: `(event, step)`.
fn run_events(run: &Run, wanted: &[WebhookEvent]) -> Vec<(WebhookEvent, Option<String>)> {
    let mut due = Vec::new();
    if wanted.contains(&WebhookEvent::Start) && run.started_at.is_some() {
        due.push((WebhookEvent::Start, None));
    }
    if wanted.contains(&WebhookEvent::Step) {
        for s in run.progress.steps.iter().filter(|s| s.status == domain::StepStatus::Completed) {
            due.push((WebhookEvent::Step, Some(s.name.clone())));
        }
    }
    if wanted.contains(&WebhookEvent::Completed) && run.status.is_terminal() {
        due.push((WebhookEvent::Completed, None));
    }
    due
}

fn new_delivery(
    subject: &str,
    owner: &str,
    event: &str,
    url: &str,
    body: &serde_json::Value,
    schedule_id: Option<&str>,
    now: DateTime<Utc>,
) -> DeliveryRow {
    DeliveryRow {
        webhook_id: format!("msg_{}", uuid::Uuid::new_v4().simple()),
        subject: subject.to_string(),
        user_id: owner.to_string(),
        event: event.to_string(),
        url: url.to_string(),
        body: body.to_string(),
        schedule_id: schedule_id.map(String::from),
        attempts: 0,
        next_attempt_at: Some(now.timestamp_millis()),
        last_status: None,
        last_error: None,
        delivered_at: None,
        failed_at: None,
        created_at: now.timestamp_millis(),
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
