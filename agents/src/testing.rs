//! A fake OpenAI-compatible provider for tests: a real HTTP server on a local port that
//! speaks `POST /v1/chat/completions` — plain and streamed (server-sent events) — and its
//! failures: 429 with `Retry-After`, 500, bodies that are not JSON, answers that are not the
//! JSON asked for, streams that break, and requests that never get an answer.
//!
//! The first path segment picks a behaviour for every call (`/{mode}/v1/chat/completions`),
//! so a model catalog can point different models at different behaviours: `ok`, `slow` (2 s),
//! `delay-MS` (MS milliseconds),
//! `fail` (500), `fail-first-N` (500 for the first N calls, then answers), `ratelimit` (429),
//! `unauthorized` (401), `garbage` (prose instead of JSON), `malformed` (a body that is not
//! JSON), `hang`, `stall` (a streamed answer's first two pieces, then silence; a plain answer
//! never comes), `xss` (answers carrying `<script>` and `<img onerror>`). Tests can also queue
//! one-off behaviours for the next calls whose prompt mentions a given text.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

/// What the fake does with one call.
#[derive(Debug, Clone, PartialEq)]
pub enum Behaviour {
    /// A valid answer of the kind the prompt asks for (streamed if the request streams).
    Valid,
    /// This text as the answer's content.
    Content(String),
    /// This status with an OpenAI-style error body, and `Retry-After` seconds if given.
    Status(u16, Option<u64>),
    /// 200 with a body that is not JSON.
    Malformed,
    /// A stream whose second event is not JSON.
    BrokenStream,
    /// Never answers.
    Hang,
    /// Streams the first two pieces of a valid answer, then goes silent for ever (a plain
    /// answer never comes).
    Stall,
    /// Waits, then behaves validly.
    Delay(Duration),
}

/// One call as the fake saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    pub mode: String,
    /// The step the prompt is for: an analyst's step name or "Final Assessment".
    pub step: String,
    pub stream: bool,
    pub authorization: Option<String>,
    pub messages: usize,
    pub model: String,
    /// Every message's content, joined.
    pub prompt: String,
}

#[derive(Default)]
struct Shared {
    calls: Mutex<Vec<Call>>,
    queued: Mutex<VecDeque<(String, Behaviour)>>,
    /// Time between stream chunks.
    chunk_delay: Mutex<Duration>,
    /// When set, a stream's bytes go out in pieces of this many bytes, splitting events and
    /// multi-byte characters across network chunks.
    chunk_bytes: Mutex<Option<usize>>,
    /// Calls seen per mode, for the modes that change behaviour over time.
    per_mode: Mutex<std::collections::HashMap<String, usize>>,
}

pub struct FakeLlm {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeLlm {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeLlm {
    /// Starts on a free port of 127.0.0.1.
    pub async fn start() -> Self {
        Self::start_on("127.0.0.1:0".parse().expect("addr")).await
    }

    pub async fn start_on(addr: SocketAddr) -> Self {
        let shared = Arc::new(Shared::default());
        let listener = tokio::net::TcpListener::bind(addr).await.expect("bind the fake LLM");
        let addr = listener.local_addr().expect("addr");
        let app = Router::new()
            .route(
                "/v1/chat/completions",
                post(|s: State<Arc<Shared>>, h: HeaderMap, b: Bytes| handle(s, "ok".to_string(), h, b)),
            )
            .route(
                "/{mode}/v1/chat/completions",
                post(|s: State<Arc<Shared>>, Path(mode): Path<String>, h: HeaderMap, b: Bytes| handle(s, mode, h, b)),
            )
            .with_state(shared.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { addr, shared, task }
    }

    /// The base URL of a behaviour mode, as a catalog's `base_url`: `http://…/{mode}/v1`.
    pub fn base_url(&self, mode: &str) -> String {
        format!("http://{}/{mode}/v1", self.addr)
    }

    /// The next call whose prompt mentions `text` (e.g. "Risk Analyst") gets `behaviour`.
    pub fn queue(&self, text: &str, behaviour: Behaviour) {
        self.shared.queued.lock().expect("lock").push_back((text.to_string(), behaviour));
    }

    pub fn set_chunk_delay(&self, d: Duration) {
        *self.shared.chunk_delay.lock().expect("lock") = d;
    }

    /// Streams are cut into pieces of `n` bytes, wherever that falls.
    pub fn set_chunk_bytes(&self, n: usize) {
        *self.shared.chunk_bytes.lock().expect("lock") = Some(n.max(1));
    }

    pub fn calls(&self) -> Vec<Call> {
        self.shared.calls.lock().expect("lock").clone()
    }
}

/// Which step a request is for, from its system prompt.
fn step_of(system: &str) -> String {
    for name in ["Invest Analyst", "Risk Analyst", "Sentiment Analyst", "Technical Analyst"] {
        if system.contains(&format!("You are the {name}")) {
            return name.to_string();
        }
    }
    if system.contains("You lead an equity research desk") {
        return "Final Assessment".to_string();
    }
    for role in domain::TeamRole::ALL {
        if system.contains(&format!("You are the {} of a trading firm", role.title())) {
            return role.step_name().to_string();
        }
    }
    "unknown".to_string()
}

/// A valid answer for the step; `hostile` puts markup in it that must never render as HTML.
pub fn valid_answer(step: &str, hostile: bool) -> String {
    let poison =
        if hostile { " <script>window.__pwned = 1</script> <img src=x onerror=\"window.__pwned = 2\">" } else { "" };
    let team = |text: &str| format!("**{step}** (language model)\n\n{text}{poison}");
    match step {
        "Bull Researcher" | "Bear Researcher" => {
            return json!({ "argument": team("The figures make my case.") }).to_string();
        }
        "Aggressive Risk Analyst" | "Conservative Risk Analyst" | "Neutral Risk Analyst" => {
            return json!({ "argument": team("Size it to the drawdown."), "positionSize": 0.05, "stopLoss": 250.0 })
                .to_string();
        }
        "Research Manager" => {
            return json!({ "action": "Buy", "confidence": 0.6, "reasoning": team("The bull's case is stronger.") })
                .to_string();
        }
        "Trader" => {
            return json!({ "action": "Buy", "entry": 290.0, "stopLoss": 275.0, "positionSize": 0.06, "reasoning": team("Buy with a stop.") })
                .to_string();
        }
        _ => {}
    }
    if step == "Final Assessment" {
        json!({
            "rating": "Overweight",
            "confidence": 0.66,
            "summary": format!("The desk leans positive: the trend is intact and risk is moderate.{poison}"),
            "keyRisks": ["A reversal below the 200-day average", format!("Volatility could rise{poison}")],
            "reasoning": format!("The team agrees on a measured position.{poison}")
        })
        .to_string()
    } else {
        json!({
            "stance": "bullish",
            "confidence": 0.7,
            "report": format!("**{step}** (language model)\n\nThe figures point up.{poison}\n\n- Momentum is positive\n- Risk is moderate")
        })
        .to_string()
    }
}

async fn handle(State(shared): State<Arc<Shared>>, mode: String, headers: HeaderMap, body: Bytes) -> Response {
    let request: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return (StatusCode::BAD_REQUEST, json!({"error": {"message": format!("bad request: {e}")}}).to_string())
                .into_response();
        }
    };
    let messages = request["messages"].as_array().cloned().unwrap_or_default();
    let system = messages.first().and_then(|m| m["content"].as_str()).unwrap_or_default().to_string();
    let step = step_of(&system);
    let stream = request["stream"].as_bool().unwrap_or(false);
    let prompt: String = messages.iter().filter_map(|m| m["content"].as_str()).collect::<Vec<_>>().join("\n");
    shared.calls.lock().expect("lock").push(Call {
        mode: mode.clone(),
        step: step.clone(),
        stream,
        authorization: headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).map(str::to_string),
        messages: messages.len(),
        model: request["model"].as_str().unwrap_or_default().to_string(),
        prompt: prompt.clone(),
    });

    let queued = {
        let mut q = shared.queued.lock().expect("lock");
        q.iter().position(|(text, _)| prompt.contains(text.as_str())).and_then(|i| q.remove(i)).map(|(_, b)| b)
    };
    let nth = {
        let mut per_mode = shared.per_mode.lock().expect("lock");
        let n = per_mode.entry(mode.clone()).or_insert(0);
        *n += 1;
        *n
    };
    // `fail-first-N`: the first N calls of this mode fail with 500, the rest answer.
    let fail_first = mode.strip_prefix("fail-first-").and_then(|n| n.parse::<usize>().ok());
    // `delay-MS`: every call answers after MS milliseconds.
    let delay = mode.strip_prefix("delay-").and_then(|n| n.parse::<u64>().ok());
    let behaviour = queued.unwrap_or_else(|| {
        if fail_first.is_some_and(|n| nth <= n) {
            return Behaviour::Status(500, None);
        }
        if let Some(ms) = delay {
            return Behaviour::Delay(Duration::from_millis(ms));
        }
        by_mode(&mode, &step)
    });
    let chunk_delay = *shared.chunk_delay.lock().expect("lock");
    let chunk_bytes = *shared.chunk_bytes.lock().expect("lock");
    respond(behaviour, &step, stream, Chunking { delay: chunk_delay, bytes: chunk_bytes }).await
}

/// How a streamed answer goes out.
#[derive(Clone, Copy)]
struct Chunking {
    delay: Duration,
    bytes: Option<usize>,
}

/// What a call gets by the mode in its path.
fn by_mode(mode: &str, step: &str) -> Behaviour {
    match mode {
        "fail" => Behaviour::Status(500, None),
        "ratelimit" => Behaviour::Status(429, Some(1)),
        "unauthorized" => Behaviour::Status(401, None),
        "garbage" => Behaviour::Content("I think it's a great buy!".into()),
        "malformed" => Behaviour::Malformed,
        "hang" => Behaviour::Hang,
        "stall" => Behaviour::Stall,
        "slow" => Behaviour::Delay(Duration::from_secs(2)),
        "xss" => Behaviour::Content(valid_answer(step, true)),
        _ => Behaviour::Valid,
    }
}

async fn respond(behaviour: Behaviour, step: &str, stream: bool, chunking: Chunking) -> Response {
    let content = match behaviour {
        Behaviour::Valid => valid_answer(step, false),
        Behaviour::Delay(d) => {
            tokio::time::sleep(d).await;
            valid_answer(step, false)
        }
        Behaviour::Content(c) => c,
        Behaviour::Status(code, retry_after) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let mut resp = (
                status,
                json!({"error": {"message": format!("fake provider error {code}"), "type": "fake"}}).to_string(),
            )
                .into_response();
            if let Some(s) = retry_after {
                resp.headers_mut().insert(header::RETRY_AFTER, s.into());
            }
            return resp;
        }
        Behaviour::Malformed => {
            return (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], "{\"choices\": [").into_response();
        }
        Behaviour::Stall if stream => {
            let events = content_events(&valid_answer(step, false)).into_iter().take(2).collect();
            return sse_then(events, chunking, Then::Silence);
        }
        Behaviour::Hang | Behaviour::Stall => {
            std::future::pending::<()>().await;
            unreachable!()
        }
        Behaviour::BrokenStream => {
            let events = vec![
                format!("data: {}\n\n", json!({"choices": [{"delta": {"content": "{\"stance\""}}]})),
                "data: {this is not json\n\n".to_string(),
            ];
            return sse(events, chunking);
        }
    };
    let prompt_tokens = 400u64;
    let completion_tokens = (content.len() / 4) as u64;
    if !stream {
        let body = json!({
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": prompt_tokens + completion_tokens}
        });
        return (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response();
    }
    let mut events = content_events(&content);
    events.push(format!(
        "data: {}\n\n",
        json!({"choices": [], "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens}})
    ));
    events.push("data: [DONE]\n\n".to_string());
    sse(events, chunking)
}

/// A streamed answer's content as eight `data:` events.
fn content_events(content: &str) -> Vec<String> {
    let chars: Vec<char> = content.chars().collect();
    chars
        .chunks(chars.len().div_ceil(8).max(1))
        .map(|c| {
            format!(
                "data: {}\n\n",
                json!({"choices": [{"index": 0, "delta": {"content": c.iter().collect::<String>()}}]})
            )
        })
        .collect()
}

fn sse(events: Vec<String>, chunking: Chunking) -> Response {
    sse_then(events, chunking, Then::End)
}

/// What a stream does after its events.
enum Then {
    End,
    /// Stays open, sending nothing.
    Silence,
}

fn sse_then(events: Vec<String>, chunking: Chunking, then: Then) -> Response {
    let delay = chunking.delay;
    let chunks: Vec<Bytes> = match chunking.bytes {
        None => events.into_iter().map(Bytes::from).collect(),
        Some(n) => events.concat().into_bytes().chunks(n).map(Bytes::copy_from_slice).collect(),
    };
    let stream = futures::stream::unfold(chunks.into_iter(), move |mut it| async move {
        let next = it.next()?;
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        Some((Ok::<_, std::convert::Infallible>(next), it))
    });
    let body = match then {
        Then::End => Body::from_stream(stream),
        Then::Silence => Body::from_stream(futures::StreamExt::chain(stream, futures::stream::pending())),
    };
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/event-stream")
        .body(body)
        .expect("response")
}
