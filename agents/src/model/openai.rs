//! OpenAI-compatible chat completions (`POST {base_url}/chat/completions`): OpenAI, xAI,
//! OpenRouter, Groq, Ollama, vLLM and the like.
//!
//! # Failure handling
//! - 429 and 5xx are retried with exponential backoff, honouring `Retry-After`; so are
//!   timeouts and dropped connections. 401/403 and other 4xx fail at once: retrying a
//!   rejected key or a bad request only costs time.
//! - A call has an overall timeout, and a limit on silence: from the request, or from the last
//!   event of a streamed answer. After `stall_after` without output the call reports itself
//!   stalled (the page names the model and counts); after `stall_timeout` it is abandoned — the
//!   connection dropped — and retried like a timeout. A provider that hangs before its headers,
//!   mid-answer or in a non-streamed body is noticed alike.
//! - The answer must be the JSON the prompt asked for; if not, one repair request says what was
//!   wrong; a second bad answer fails the step with that reason.
//! - Streaming answers advance the step's progress as text arrives. Token usage comes from the
//!   provider when it reports it, else it is estimated from the text (4 characters a token).
//! - The API key is sent only in the `Authorization` header and never appears in errors.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use async_trait::async_trait;
use domain::{AnalystKind, AnalystReport, Argument, LogEvent, TeamRole, TokenUsage, TradePlan, Verdict};
use eventsource_stream::{EventStreamError, Eventsource};
use futures::StreamExt;
use serde_json::{Value, json};

use super::prompt::{
    analyst_messages, assessment_messages, left_for_review, parse_analyst, parse_assessment, repair_message,
};
use super::readable;
use super::team_prompt::{
    contradiction_message, contradiction_note, parse_argument, parse_decision, parse_plan, parse_verdict,
    plan_contradiction, risk_contradiction, team_messages,
};
use super::{CallProgress, CatalogEntry, Model, ModelError, ModelsConfig, Usage};
use crate::assessment::{AnalystView, Brief, Decision};
use crate::plan::settle;
use crate::retry::{RetryPolicy, is_retryable, retry_after};
use crate::snapshot::MarketSnapshot;

/// Characters of answer text a report is expected to have, for the progress estimate.
const EXPECTED_ANSWER_CHARS: usize = 1_400;
const MAX_TOKENS_DEFAULT: u32 = 1_200;

pub struct ChatModel {
    entry: CatalogEntry,
    key: Option<String>,
    client: reqwest::Client,
    retry: RetryPolicy,
    call_timeout: Duration,
    stall_after: Duration,
    stall_timeout: Duration,
}

/// One answered call.
struct Answer {
    text: String,
    tokens: TokenUsage,
    /// From the request to the first text.
    first_output: Option<Duration>,
}

impl ChatModel {
    pub fn new(entry: CatalogEntry, key: Option<String>, client: reqwest::Client, config: &ModelsConfig) -> Self {
        let call_timeout = entry.timeout_secs.map(Duration::from_secs).unwrap_or(config.call_timeout);
        Self {
            entry,
            key,
            client,
            retry: config.retry,
            call_timeout,
            stall_after: config.stall_after,
            stall_timeout: config.stall_timeout,
        }
    }

    fn url(&self) -> String {
        format!("{}/chat/completions", self.entry.base_url.as_deref().unwrap_or_default().trim_end_matches('/'))
    }

    fn body(&self, messages: &[Value]) -> Value {
        let mut body = json!({
            "model": self.entry.model,
            "messages": messages,
            "temperature": 0.2,
            "max_tokens": self.entry.max_tokens.unwrap_or(MAX_TOKENS_DEFAULT),
            "stream": self.entry.stream,
        });
        if self.entry.stream {
            body["stream_options"] = json!({ "include_usage": true });
        }
        if self.entry.json_mode {
            body["response_format"] = json!({ "type": "json_object" });
        }
        body
    }

    /// One chat call with retries. Progress moves from `from` to `to` as the answer streams in.
    async fn call(
        &self,
        messages: &[Value],
        progress: &dyn CallProgress,
        from: u8,
        to: u8,
    ) -> Result<Answer, ModelError> {
        let mut retry = 0;
        loop {
            let mut silence = Silence::new(self, progress);
            let deadline = silence.deadline;
            let asked = Instant::now();
            let attempt = tokio::time::timeout_at(deadline, self.call_once(messages, &mut silence, from, to)).await;
            // A silence the page was told of is over, whatever comes next.
            silence.heard().await;
            let err = match attempt {
                Ok(Ok(answer)) => {
                    progress.log(self.answered(&answer, asked.elapsed())).await;
                    return Ok(answer);
                }
                Ok(Err(Failure::Fatal(e))) => return Err(e),
                Ok(Err(Failure::Retryable(e, wait))) => (e, wait),
                Err(_) => (ModelError::Timeout(retry + 1), None),
            };
            if retry >= self.retry.max_retries {
                return Err(match err.0 {
                    ModelError::RateLimited(_) => ModelError::RateLimited(retry + 1),
                    ModelError::Timeout(_) => ModelError::Timeout(retry + 1),
                    ModelError::Silent { model, secs, .. } => ModelError::Silent { model, secs, tries: retry + 1 },
                    other => other,
                });
            }
            let wait = self.retry.delay(retry, err.1);
            tracing::warn!(model = %self.entry.id, error = %err.0, ?wait, "model call failed; retrying");
            progress.report(from, &format!("Retrying after: {}", err.0)).await;
            progress
                .log(LogEvent::Retry {
                    model: self.entry.id.clone(),
                    retry: retry + 1,
                    of: self.retry.max_retries,
                    reason: retry_reason(&err.0),
                    status: match &err.0 {
                        ModelError::RateLimited(_) => Some(429),
                        ModelError::Upstream { status, .. } => Some(*status),
                        _ => None,
                    },
                    retry_after_ms: err.1.map(|d| d.as_millis() as u64),
                    wait_ms: wait.as_millis() as u64,
                })
                .await;
            tokio::time::sleep(wait).await;
            retry += 1;
        }
    }

    /// The log's note of an answered call, `took` from its request to its end.
    fn answered(&self, answer: &Answer, took: Duration) -> LogEvent {
        let e = &self.entry;
        let (tokens_in, tokens_out) = (answer.tokens.prompt, answer.tokens.completion);
        LogEvent::Call {
            model: e.id.clone(),
            tokens_in,
            tokens_out,
            cost_usd: (tokens_in as f64 * e.input_price_per_mtok + tokens_out as f64 * e.output_price_per_mtok) / 1e6,
            latency_ms: took.as_millis() as u64,
            first_output_ms: answer.first_output.map(|d| d.as_millis() as u64),
        }
    }

    async fn call_once(
        &self,
        messages: &[Value],
        silence: &mut Silence<'_>,
        from: u8,
        to: u8,
    ) -> Result<Answer, Failure> {
        let progress = silence.progress;
        let asked = Instant::now();
        let mut req = self.client.post(self.url()).json(&self.body(messages));
        if let Some(key) = &self.key {
            req = req.bearer_auth(key);
        }
        let resp = silence.wait(req.send()).await?.map_err(transport)?;
        let status = resp.status();
        if !status.is_success() {
            let wait = retry_after(resp.headers());
            let body = resp.text().await.unwrap_or_default();
            let message = provider_message(&body);
            return Err(if status == reqwest::StatusCode::TOO_MANY_REQUESTS {
                Failure::Retryable(ModelError::RateLimited(1), wait)
            } else if is_retryable(status) {
                Failure::Retryable(ModelError::Upstream { status: status.as_u16(), message }, wait)
            } else if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
                Failure::Fatal(ModelError::Unauthorized(status.as_u16()))
            } else {
                Failure::Fatal(ModelError::Upstream { status: status.as_u16(), message })
            });
        }
        let prompt_chars: usize = messages.iter().filter_map(|m| m["content"].as_str()).map(str::len).sum();
        let streamed = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|c| c.starts_with("text/event-stream"));
        let (text, usage, first_output) = if streamed {
            let (text, usage, first) = self.read_stream(resp, silence, from, to).await?;
            (text, usage, first.map(|at| at - asked))
        } else {
            let body: Value = silence.wait(resp.json::<Value>()).await?.map_err(|e| {
                Failure::Retryable(ModelError::InvalidAnswer(format!("unreadable response body: {e}")), None)
            })?;
            let text = body["choices"][0]["message"]["content"].as_str().map(str::to_string).ok_or_else(|| {
                Failure::Retryable(
                    ModelError::InvalidAnswer("the response has no choices[0].message.content".into()),
                    None,
                )
            })?;
            progress.text(&readable::Readable::whole(&text)).await;
            let usage = usage_of(&body);
            (text, usage, Some(asked.elapsed()))
        };
        let tokens =
            usage.unwrap_or(TokenUsage { prompt: (prompt_chars / 4) as u64, completion: (text.len() / 4) as u64 });
        Ok(Answer { text, tokens, first_output })
    }

    /// Reads a server-sent-events answer, reporting progress as text arrives; with its text and
    /// usage, when the first text came.
    async fn read_stream(
        &self,
        resp: reqwest::Response,
        silence: &mut Silence<'_>,
        from: u8,
        to: u8,
    ) -> Result<(String, Option<TokenUsage>, Option<Instant>), Failure> {
        let progress = silence.progress;
        // Events are parsed over bytes by a kept SSE parser: text is decoded once a whole event
        // has arrived, so a character split across network chunks arrives intact.
        let mut stream = resp.bytes_stream().eventsource();
        let mut text = String::new();
        let mut readable = readable::Readable::default();
        let mut usage = None;
        let mut first = None;
        let mut last_report = Instant::now();
        loop {
            let event = match silence.wait(stream.next()).await? {
                None => break,
                Some(Err(EventStreamError::Transport(e))) => return Err(transport(e)),
                Some(Err(e)) => {
                    return Err(Failure::Retryable(
                        ModelError::InvalidAnswer(format!("malformed event stream ({e})")),
                        None,
                    ));
                }
                Some(Ok(event)) => event,
            };
            silence.heard().await;
            let data = event.data.trim();
            if data.is_empty() {
                continue;
            }
            if data == "[DONE]" {
                return Ok((text, usage, first));
            }
            let event: Value = serde_json::from_str(data).map_err(|e| {
                Failure::Retryable(ModelError::InvalidAnswer(format!("malformed stream event ({e})")), None)
            })?;
            if let Some(err) = event.get("error") {
                return Err(Failure::Retryable(
                    ModelError::Upstream { status: 200, message: provider_message(&err.to_string()) },
                    None,
                ));
            }
            if let Some(delta) = event["choices"][0]["delta"]["content"].as_str() {
                text.push_str(delta);
                if !delta.is_empty() {
                    first.get_or_insert_with(Instant::now);
                    let shown = readable.push(delta);
                    if !shown.is_empty() {
                        progress.text(&shown).await;
                    }
                }
            }
            if let Some(u) = usage_of(&event) {
                usage = Some(u);
            }
            if last_report.elapsed() >= Duration::from_millis(200) {
                let share = (text.len() as f64 / EXPECTED_ANSWER_CHARS as f64).min(1.0);
                let pct = from + ((to - from) as f64 * share) as u8;
                progress.report(pct, "Receiving the answer").await;
                last_report = Instant::now();
            }
        }
        // A stream that ends without [DONE] is complete enough if it carried text.
        if text.is_empty() {
            return Err(Failure::Retryable(
                ModelError::InvalidAnswer("the stream ended without an answer".into()),
                None,
            ));
        }
        Ok((text, usage, first))
    }

    /// Asks, checks, and asks once more with the reason if the answer is unusable.
    async fn ask<T>(
        &self,
        messages: Vec<Value>,
        parse: impl Fn(&str) -> Result<T, String> + Send + Sync,
        progress: &dyn CallProgress,
    ) -> Result<(T, Usage), ModelError> {
        let (v, _, usage) = self.ask_checked(messages, parse, |_: &T| None, progress).await?;
        Ok((v, usage))
    }

    /// Asks and checks the answer's form, then whether it `contradicts` the plan; asks once
    /// more with the reason if it fails either. An answer that still contradicts the plan (or
    /// whose second try is unusable after a first that only contradicted it) is kept, with the
    /// contradiction returned for the caller to show.
    async fn ask_checked<T>(
        &self,
        messages: Vec<Value>,
        parse: impl Fn(&str) -> Result<T, String> + Send + Sync,
        contradicts: impl Fn(&T) -> Option<String> + Send + Sync,
        progress: &dyn CallProgress,
    ) -> Result<(T, Option<String>, Usage), ModelError> {
        match self.ask_read(messages, parse, contradicts, progress).await? {
            (Read::Answer(v, contradiction), usage) => Ok((v, contradiction, usage)),
            (Read::Unreadable { reason, .. }, _) => {
                Err(ModelError::InvalidAnswer(format!("{reason} (also after one correction)")))
            }
        }
    }

    /// Asks for a final decision: an answer still unreadable after one correction is not an
    /// error but the model's own words, for a decision left for review.
    async fn ask_final<T>(
        &self,
        messages: Vec<Value>,
        parse: impl Fn(&str) -> Result<T, String> + Send + Sync,
        progress: &dyn CallProgress,
    ) -> Result<(Read<T>, Usage), ModelError> {
        self.ask_read(messages, parse, |_: &T| None, progress).await
    }

    async fn ask_read<T>(
        &self,
        mut messages: Vec<Value>,
        parse: impl Fn(&str) -> Result<T, String> + Send + Sync,
        contradicts: impl Fn(&T) -> Option<String> + Send + Sync,
        progress: &dyn CallProgress,
    ) -> Result<(Read<T>, Usage), ModelError> {
        let mut usage = Usage::default();
        progress.report(5, "Waiting for the model").await;
        let first = self.call(&messages, progress, 10, 80).await?;
        usage.calls += 1;
        usage.tokens.add(first.tokens);
        let kept = match parse(&first.text) {
            Ok(v) => match contradicts(&v) {
                None => return Ok((Read::Answer(v, None), usage)),
                Some(reason) => {
                    tracing::warn!(model = %self.entry.id, %reason, "answer contradicts the plan; asking again");
                    progress.report(80, "Asking the model to follow the plan").await;
                    messages.push(json!({ "role": "assistant", "content": first.text }));
                    messages.push(contradiction_message(&reason));
                    Some((v, reason))
                }
            },
            Err(reason) => {
                tracing::warn!(model = %self.entry.id, %reason, "answer rejected; asking for a repair");
                progress.report(80, "Asking the model to correct its answer").await;
                messages.push(json!({ "role": "assistant", "content": first.text }));
                messages.push(repair_message(&reason));
                None
            }
        };
        let second = self.call(&messages, progress, 80, 95).await?;
        usage.calls += 1;
        usage.tokens.add(second.tokens);
        let read = match (parse(&second.text), kept) {
            (Ok(v), _) => {
                let contradiction = contradicts(&v);
                Read::Answer(v, contradiction)
            }
            (Err(_), Some((v, reason))) => Read::Answer(v, Some(reason)),
            (Err(reason), None) => Read::Unreadable { reason, words: second.text },
        };
        Ok((read, usage))
    }
}

/// What came of asking: an answer (with the contradiction it kept, if any), or one that could
/// not be read even after a correction, with the model's last words.
enum Read<T> {
    Answer(T, Option<String>),
    Unreadable { reason: String, words: String },
}

enum Failure {
    Retryable(ModelError, Option<Duration>),
    Fatal(ModelError),
}

/// The silence of one attempt at a call: since when the model has produced nothing, and
/// whether the step has been told it is stalled.
struct Silence<'a> {
    model: &'a ChatModel,
    progress: &'a dyn CallProgress,
    since: Instant,
    since_wall: chrono::DateTime<chrono::Utc>,
    /// The attempt's own end (the call timeout): the silence is given up by then at the latest.
    deadline: Instant,
    told: bool,
}

impl<'a> Silence<'a> {
    /// The silence of an attempt starting now, which the call timeout ends at the latest.
    fn new(model: &'a ChatModel, progress: &'a dyn CallProgress) -> Self {
        let since = Instant::now();
        let deadline = since + model.call_timeout;
        Self { model, progress, since, since_wall: chrono::Utc::now(), deadline, told: false }
    }

    /// The model produced something: its silence starts again now.
    async fn heard(&mut self) {
        self.since = Instant::now();
        self.since_wall = chrono::Utc::now();
        if std::mem::take(&mut self.told) {
            self.progress.stalled(None).await;
        }
    }

    /// Waits for `fut` while the model is silent: tells the step it is stalled after
    /// `stall_after`, and gives up after `stall_timeout` (dropping `fut`, and with it the
    /// connection).
    async fn wait<T>(&mut self, fut: impl Future<Output = T>) -> Result<T, Failure> {
        let mut fut = std::pin::pin!(fut);
        let give_up = self.since + self.model.stall_timeout;
        let warn = self.since + self.model.stall_after;
        if !self.told && warn < give_up && warn < self.deadline {
            if let Ok(v) = tokio::time::timeout_at(warn, &mut fut).await {
                return Ok(v);
            }
            let limit = give_up.min(self.deadline) - self.since;
            let stall = domain::Stall {
                model: self.model.entry.label.clone(),
                since: self.since_wall,
                gives_up_at: self.since_wall + chrono::Duration::from_std(limit).unwrap_or(chrono::TimeDelta::MAX),
            };
            self.progress.stalled(Some(&stall)).await;
            self.told = true;
        }
        // The step logs the stall with its run; a call given up is logged with its retry, or with
        // the step's failure.
        tokio::time::timeout_at(give_up, fut).await.map_err(|_| {
            Failure::Retryable(
                ModelError::Silent {
                    model: self.model.entry.label.clone(),
                    secs: self.model.stall_timeout.as_secs(),
                    tries: 1,
                },
                None,
            )
        })
    }
}

/// Why a call is tried again, for the log: the error without its count of tries.
fn retry_reason(e: &ModelError) -> String {
    match e {
        ModelError::RateLimited(_) => "rate limited by the provider".into(),
        ModelError::Timeout(_) => "no answer within the call's time limit".into(),
        ModelError::Silent { model, secs, .. } => format!("no output from {model} for {secs} s"),
        other => other.to_string(),
    }
}

fn transport(e: reqwest::Error) -> Failure {
    if e.is_timeout() {
        Failure::Retryable(ModelError::Timeout(1), None)
    } else {
        // `without_url`: the URL is ours, but keep errors short and free of query strings.
        Failure::Retryable(ModelError::Network(e.without_url().to_string()), None)
    }
}

fn usage_of(v: &Value) -> Option<TokenUsage> {
    let u = v.get("usage")?;
    Some(TokenUsage { prompt: u["prompt_tokens"].as_u64()?, completion: u["completion_tokens"].as_u64()? })
}

/// The provider's own error message if the body has one (`{"error":{"message":…}}`), else the
/// start of the body.
fn provider_message(body: &str) -> String {
    serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v["error"]["message"].as_str().or(v["message"].as_str()).map(str::to_string))
        .unwrap_or_else(|| body.chars().take(200).collect())
}

#[async_trait]
impl Model for ChatModel {
    fn id(&self) -> &str {
        &self.entry.id
    }

    fn rule_based(&self) -> bool {
        false
    }

    async fn analyst_view(
        &self,
        kind: AnalystKind,
        data: &MarketSnapshot,
        progress: &dyn CallProgress,
    ) -> Result<(AnalystView, Usage), ModelError> {
        self.ask(analyst_messages(kind, data), parse_analyst, progress).await
    }

    async fn assessment(
        &self,
        data: &MarketSnapshot,
        reports: &[AnalystReport],
        progress: &dyn CallProgress,
    ) -> Result<(Decision, Usage), ModelError> {
        let (read, usage) = self.ask_final(assessment_messages(data, reports), parse_assessment, progress).await?;
        let (assessment, reasoning) = match read {
            Read::Answer(a, _) => (a, String::new()),
            Read::Unreadable { reason, words } => left_for_review(self.entry.id.as_str(), &reason, &words),
        };
        let trade = settle(data, None, &[], assessment.rating);
        Ok((Decision { assessment, reasoning, trade }, usage))
    }

    async fn argue(
        &self,
        role: TeamRole,
        brief: &Brief<'_>,
        progress: &dyn CallProgress,
    ) -> Result<(Argument, Usage), ModelError> {
        let round = brief.round;
        let plan = brief.plan;
        let (mut argument, contradiction, usage) = self
            .ask_checked(
                team_messages(role, brief),
                move |a: &str| parse_argument(role, round, a),
                move |a: &Argument| risk_contradiction(a, plan),
                progress,
            )
            .await?;
        if let Some(reason) = contradiction {
            argument.text.push_str(&contradiction_note(&reason));
        }
        Ok((argument, usage))
    }

    async fn judge(&self, brief: &Brief<'_>, progress: &dyn CallProgress) -> Result<(Verdict, Usage), ModelError> {
        self.ask(team_messages(TeamRole::ResearchManager, brief), parse_verdict, progress).await
    }

    async fn plan(&self, brief: &Brief<'_>, progress: &dyn CallProgress) -> Result<(TradePlan, Usage), ModelError> {
        let verdict = brief.verdict;
        let (mut plan, contradiction, usage) = self
            .ask_checked(
                team_messages(TeamRole::Trader, brief),
                parse_plan,
                move |p: &TradePlan| plan_contradiction(p, verdict),
                progress,
            )
            .await?;
        if let Some(reason) = contradiction {
            plan.reasoning.push_str(&contradiction_note(&reason));
        }
        Ok((plan, usage))
    }

    async fn decide(&self, brief: &Brief<'_>, progress: &dyn CallProgress) -> Result<(Decision, Usage), ModelError> {
        let (read, usage) =
            self.ask_final(team_messages(TeamRole::PortfolioManager, brief), parse_decision, progress).await?;
        let (assessment, reasoning) = match read {
            Read::Answer(decision, _) => decision,
            Read::Unreadable { reason, words } => left_for_review(self.entry.id.as_str(), &reason, &words),
        };
        let trade = settle(brief.data, brief.plan, brief.risk_debate, assessment.rating);
        Ok((Decision { assessment, reasoning, trade }, usage))
    }
}
