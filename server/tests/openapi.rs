//! The API as a contract: `/api/openapi.json` from the real server, and real answers of that
//! server — runs, progress, problems, shares, backtests — each checked against the JSON schema
//! the document declares for its path, method, status and content type. Any field an answer
//! has that its schema does not declare is a failure too.

mod common;

use std::time::{Duration, Instant};

use common::{Server, client, visitor, wait_until_done};
use jobs::testing::TestDb;
use reqwest::Method;
use serde_json::{Map, Value, json};

/// The document, with every object schema closed to properties it does not declare.
struct Contract {
    doc: Value,
}

impl Contract {
    async fn fetch(server: &Server) -> Contract {
        let resp = client().get(server.url("/api/openapi.json")).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["content-type"], "application/json");
        assert!(resp.headers().get("set-cookie").is_none(), "the document sets no cookie");
        let mut doc: Value = resp.json().await.unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        close_objects(&mut doc);
        Contract { doc }
    }

    /// The declared response of `method path` with `status`: its content by media type.
    fn response(&self, method: &Method, path: &str, status: u16) -> &Value {
        let op = &self.doc["paths"][path][method.as_str().to_ascii_lowercase()];
        assert!(op.is_object(), "{method} {path} is not in the document");
        let resp = self.resolve(&op["responses"][status.to_string()]);
        assert!(resp.is_object(), "{method} {path} does not declare a {status}");
        resp
    }

    /// A response, or the one of the components it refers to.
    fn resolve<'a>(&'a self, resp: &'a Value) -> &'a Value {
        match resp["$ref"].as_str().and_then(|r| r.strip_prefix("#/components/responses/")) {
            Some(name) => &self.doc["components"]["responses"][name],
            None => resp,
        }
    }

    /// Why `body` does not fit `schema` (whose `$ref`s point into the document's components).
    fn errors(&self, schema: &Value, body: &Value) -> Vec<String> {
        let mut root = schema.as_object().expect("a schema object").clone();
        root.insert("components".into(), self.doc["components"].clone());
        let validator = jsonschema::draft202012::new(&Value::Object(root)).expect("a valid schema");
        validator.iter_errors(body).map(|e| format!("{} at {}", e, e.instance_path())).collect()
    }

    fn schema(&self, method: &Method, path: &str, status: u16, content_type: &str) -> &Value {
        let schema = &self.response(method, path, status)["content"][content_type]["schema"];
        assert!(schema.is_object(), "{method} {path} {status} declares no {content_type} body");
        schema
    }

    /// Checks an answer of `method path` (the document's template) against the document and
    /// returns its status and JSON body (`Null` when it has none).
    async fn check(&self, method: Method, path: &str, resp: reqwest::Response) -> (u16, Value) {
        let status = resp.status().as_u16();
        let content_type = resp
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().split(';').next().unwrap().trim().to_string());
        let bytes = resp.bytes().await.unwrap();
        let declared = self.response(&method, path, status);
        let Some(content_type) = content_type.filter(|_| !bytes.is_empty()) else {
            assert!(declared.get("content").is_none(), "{method} {path} {status} came without the body it declares");
            return (status, Value::Null);
        };
        let body: Value = serde_json::from_slice(&bytes).expect("a JSON body");
        let errors = self.errors(self.schema(&method, path, status, &content_type), &body);
        assert!(errors.is_empty(), "{method} {path} {status} breaks the contract:\n{}\n{body:#}", errors.join("\n"));
        (status, body)
    }
}

/// Adds `unevaluatedProperties: false` to every object schema of the components, so that a
/// field not in the document fails too. A schema that is one part of an `allOf` (how a
/// `#[serde(flatten)]` is written) stays open: the whole it is part of is closed instead.
fn close_objects(doc: &mut Value) {
    let schemas = doc["components"]["schemas"].as_object_mut().expect("component schemas");
    let mut parts = Vec::new();
    for schema in schemas.values() {
        for part in schema["allOf"].as_array().into_iter().flatten() {
            if let Some(name) = part["$ref"].as_str().and_then(|r| r.strip_prefix("#/components/schemas/")) {
                parts.push(name.to_string());
            }
        }
    }
    for (name, schema) in schemas.iter_mut() {
        if parts.contains(name) {
            continue;
        }
        close(schema);
    }
}

fn close(schema: &mut Value) {
    let Some(obj) = schema.as_object_mut() else { return };
    if obj.contains_key("allOf") {
        obj.insert("unevaluatedProperties".into(), Value::Bool(false));
        return;
    }
    if obj.contains_key("properties") {
        obj.insert("unevaluatedProperties".into(), Value::Bool(false));
    }
    if let Some(Value::Object(props)) = obj.get_mut("properties") {
        props.values_mut().for_each(close);
    }
    for key in ["items", "additionalProperties"] {
        if let Some(inner) = obj.get_mut(key) {
            close(inner);
        }
    }
    for key in ["oneOf", "anyOf"] {
        if let Some(Value::Array(list)) = obj.get_mut(key) {
            list.iter_mut().for_each(close);
        }
    }
}

async fn send(c: &reqwest::Client, s: &Server, method: Method, path: &str, body: Option<Value>) -> reqwest::Response {
    let mut req = c.request(method, s.url(path));
    if let Some(body) = body {
        req = req.json(&body);
    }
    req.send().await.unwrap()
}

async fn contract(db: TestDb) {
    let server = Server::start(db, &[]).await;
    let api = Contract::fetch(&server).await;
    let c = visitor(&server).await;
    use Method as M;

    // A start: 202 …
    let resp =
        send(&c, &server, M::POST, "/api/trading/run", Some(json!({"symbol": "AAPL", "analysts": ["invest"]}))).await;
    let (status, started) = api.check(M::POST, "/api/trading/run", resp).await;
    assert_eq!((status, started["status"].as_str()), (202, Some("pending")));
    let run_id = started["runId"].as_str().unwrap().to_string();
    let progress = format!("/api/trading/progress/{run_id}");

    // … its progress while it is young (nulls where nothing happened yet) and once completed …
    let (status, young) =
        api.check(M::GET, "/api/trading/progress/{runId}", send(&c, &server, M::GET, &progress, None).await).await;
    assert_eq!(status, 200);
    assert_eq!(young["runId"], run_id.as_str());
    wait_until_done(&c, &server, &run_id, Duration::from_secs(60)).await;
    let resp = send(&c, &server, M::GET, &progress, None).await;
    let etag = resp.headers()["etag"].to_str().unwrap().to_string();
    let (status, done) = api.check(M::GET, "/api/trading/progress/{runId}", resp).await;
    assert_eq!((status, done["status"].as_str()), (200, Some("completed")));
    assert_eq!(done["result"]["symbol"], "AAPL");
    assert!(done["result"]["investAnalyst"].is_object() && done["result"]["riskAnalyst"].is_null(), "{done}");

    // … 304 with no body, as declared.
    let resp = c.get(server.url(&progress)).header("if-none-match", &etag).send().await.unwrap();
    assert_eq!(api.check(M::GET, "/api/trading/progress/{runId}", resp).await, (304, Value::Null));

    // The checks are not vacuous: the same body with a field renamed, or a field of the
    // wrong type, breaks the contract.
    let schema = api.schema(&M::GET, "/api/trading/progress/{runId}", 200, "application/json");
    assert!(api.errors(schema, &done).is_empty());
    let mut renamed = done.clone();
    let id = renamed.as_object_mut().unwrap().remove("runId").unwrap();
    renamed["runID"] = id;
    let errors = api.errors(schema, &renamed);
    assert!(errors.iter().any(|e| e.contains("runId")), "{errors:?}");
    assert!(errors.iter().any(|e| e.contains("runID")), "an undeclared field is refused too: {errors:?}");
    let mut wrong = done.clone();
    wrong["result"]["rating"] = json!("Strong Buy");
    assert!(!api.errors(schema, &wrong).is_empty());

    // Problems: 400 naming each field, 404, 415, 401, 409.
    let resp = send(&c, &server, M::POST, "/api/trading/run", Some(json!({"symbol": "A B", "analysts": []}))).await;
    let (status, problem) = api.check(M::POST, "/api/trading/run", resp).await;
    assert_eq!((status, problem["status"].as_u64()), (400, Some(400)));
    let fields: Vec<&str> =
        problem["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    assert_eq!(fields, ["symbol", "analysts"]);
    let missing = format!("/api/trading/progress/{}", uuid::Uuid::new_v4());
    let (status, problem) =
        api.check(M::GET, "/api/trading/progress/{runId}", send(&c, &server, M::GET, &missing, None).await).await;
    assert_eq!((status, problem["type"].as_str()), (404, Some("/problems/not-found")));
    let (status, _) = api
        .check(
            M::GET,
            "/api/trading/progress/{runId}",
            send(&c, &server, M::GET, "/api/trading/progress/42", None).await,
        )
        .await;
    assert_eq!(status, 400);
    let resp = c.post(server.url("/api/trading/run")).body("symbol=AAPL").send().await.unwrap();
    assert_eq!(api.check(M::POST, "/api/trading/run", resp).await.0, 415);
    let resp = send(&client(), &server, M::POST, "/api/trading/run", Some(json!({"symbol": "AAPL"}))).await;
    assert_eq!(api.check(M::POST, "/api/trading/run", resp).await.0, 401);
    let retry = format!("/api/trading/retry/{run_id}");
    let (status, problem) =
        api.check(M::POST, "/api/trading/retry/{runId}", send(&c, &server, M::POST, &retry, None).await).await;
    assert_eq!((status, problem["type"].as_str()), (409, Some("/problems/not-retryable")));

    // Cancelling an ended run answers 200 with it.
    let cancel = format!("/api/trading/cancel/{run_id}");
    let (status, cancelled) =
        api.check(M::POST, "/api/trading/cancel/{runId}", send(&c, &server, M::POST, &cancel, None).await).await;
    assert_eq!((status, cancelled["status"].as_str()), (200, Some("completed")));

    // Lists and the catalog.
    let (status, runs) =
        api.check(M::GET, "/api/trading/runs", send(&c, &server, M::GET, "/api/trading/runs", None).await).await;
    assert_eq!((status, runs["total"].as_u64()), (200, Some(1)));
    assert_eq!(runs["runs"][0]["runId"], run_id.as_str());
    let (status, _) = api
        .check(M::GET, "/api/trading/runs", send(&c, &server, M::GET, "/api/trading/runs?perPage=0", None).await)
        .await;
    assert_eq!(status, 400);
    // Tags, and the history's filters.
    let tags = format!("/api/trading/runs/{run_id}/tags");
    let put = |body: Value| send(&c, &server, M::PUT, &tags, Some(body));
    let (status, stored) = api
        .check(M::PUT, "/api/trading/runs/{runId}/tags", put(json!({"tags": [" Weekly ", "weekly", "q3"]})).await)
        .await;
    assert_eq!((status, stored), (200, json!({"tags": ["weekly", "q3"]})));
    let (status, problem) =
        api.check(M::PUT, "/api/trading/runs/{runId}/tags", put(json!({"tags": ["no<html>"]})).await).await;
    assert_eq!((status, problem["errors"][0]["field"].as_str()), (400, Some("tags[0]")));
    let filtered = "/api/trading/runs?symbol=aapl&tag=weekly&status=completed&modelId=offline&depth=quick&perPage=1";
    let (status, runs) = api.check(M::GET, "/api/trading/runs", send(&c, &server, M::GET, filtered, None).await).await;
    assert_eq!(
        (status, runs["total"].as_u64(), runs["runs"][0]["tags"].clone()),
        (200, Some(1), json!(["weekly", "q3"]))
    );
    let bad = "/api/trading/runs?rating=Great&cursor=nope";
    let (status, problem) = api.check(M::GET, "/api/trading/runs", send(&c, &server, M::GET, bad, None).await).await;
    let fields: Vec<_> = problem["errors"].as_array().unwrap().iter().map(|e| e["field"].clone()).collect();
    assert_eq!((status, fields), (400, vec![json!("rating"), json!("cursor")]));
    for (path, first) in [
        ("/api/trading/models", json!("offline")),
        ("/api/trading/analysts", json!("invest")),
        ("/api/trading/symbols", json!("AAPL")),
    ] {
        let (status, list) = api.check(M::GET, path, send(&c, &server, M::GET, path, None).await).await;
        assert_eq!(status, 200);
        let list = list.as_array().unwrap();
        assert!(list.iter().any(|e| e == &first || e["id"] == first), "{path}: {list:?}");
    }

    // A share link: made, listed, opened by a stranger, revoked.
    let shares = format!("/api/trading/runs/{run_id}/shares");
    let (status, share) =
        api.check(M::POST, "/api/trading/runs/{runId}/shares", send(&c, &server, M::POST, &shares, None).await).await;
    assert_eq!((status, share["runId"].as_str()), (201, Some(run_id.as_str())));
    let (status, links) =
        api.check(M::GET, "/api/trading/runs/{runId}/shares", send(&c, &server, M::GET, &shares, None).await).await;
    assert_eq!((status, links[0]["id"].clone()), (200, share["id"].clone()));
    let shared = share["apiUrl"].as_str().unwrap().to_string();
    let (status, seen) =
        api.check(M::GET, "/api/trading/share/{secret}", send(&client(), &server, M::GET, &shared, None).await).await;
    assert_eq!((status, seen["runId"].as_str()), (200, Some(run_id.as_str())));
    let revoke = format!("/api/trading/shares/{}", share["id"].as_str().unwrap());
    let resp = send(&c, &server, M::DELETE, &revoke, None).await;
    assert_eq!(api.check(M::DELETE, "/api/trading/shares/{id}", resp).await, (204, Value::Null));
    let (status, _) =
        api.check(M::GET, "/api/trading/share/{secret}", send(&client(), &server, M::GET, &shared, None).await).await;
    assert_eq!(status, 404);

    // A small backtest, every view of it until it has its scorecard, the list, a cancel.
    let resp = send(
        &c,
        &server,
        M::POST,
        "/api/trading/backtests",
        Some(json!({"symbols": ["AAPL"], "from": "2019-01-01", "to": "2019-03-01", "everyDays": 20, "analysts": ["technical"]})),
    )
    .await;
    let (status, started) = api.check(M::POST, "/api/trading/backtests", resp).await;
    assert_eq!((status, started["cells"].as_u64()), (202, Some(3)));
    let view = format!("/api/trading/backtests/{}", started["backtestId"].as_str().unwrap());
    let begun = Instant::now();
    let finished = loop {
        let (status, body) = api
            .check(M::GET, "/api/trading/backtests/{backtestId}", send(&c, &server, M::GET, &view, None).await)
            .await;
        assert_eq!(status, 200);
        if body["status"] == "completed" {
            break body;
        }
        assert!(begun.elapsed() < Duration::from_secs(90), "{body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(finished["cells"].as_array().unwrap().len(), 3);
    assert!(finished["scorecard"]["strategy"]["cumulativeReturn"].is_f64(), "{finished}");
    let (status, bad) = api
        .check(
            M::POST,
            "/api/trading/backtests",
            send(&c, &server, M::POST, "/api/trading/backtests", Some(json!({"symbols": ["AAPL"]}))).await,
        )
        .await;
    assert_eq!((status, bad["errors"].as_array().map(Vec::is_empty)), (400, Some(false)));
    let (status, list) = api
        .check(M::GET, "/api/trading/backtests", send(&c, &server, M::GET, "/api/trading/backtests", None).await)
        .await;
    assert_eq!((status, list["backtests"].as_array().unwrap().len()), (200, 1));
    let (status, after) = api
        .check(
            M::POST,
            "/api/trading/backtests/{backtestId}/cancel",
            send(&c, &server, M::POST, &format!("{view}/cancel"), None).await,
        )
        .await;
    assert_eq!((status, after["cells"].as_array().unwrap().len()), (200, 3));
    let (status, _) = api
        .check(
            M::GET,
            "/api/trading/backtests/{backtestId}",
            send(&c, &server, M::GET, "/api/trading/backtests/x", None).await,
        )
        .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn real_answers_keep_the_documented_contract_sqlite() {
    contract(TestDb::sqlite()).await;
}

#[tokio::test]
async fn real_answers_keep_the_documented_contract_postgres() {
    contract(TestDb::postgres().await).await;
}

/// Every operation's answers are documented, and each JSON one has a schema the validator
/// accepts (no dangling `$ref`).
#[tokio::test]
async fn every_operation_declares_its_answers() {
    let server = Server::start(TestDb::sqlite(), &[]).await;
    let api = Contract::fetch(&server).await;
    let paths = api.doc["paths"].as_object().unwrap();
    assert!(paths.len() >= 17, "{:?}", paths.keys().collect::<Vec<_>>());
    let mut checked = 0;
    for (path, ops) in paths {
        for (method, op) in ops.as_object().unwrap() {
            let responses = op["responses"].as_object().unwrap_or(&Map::new()).clone();
            assert!(!responses.is_empty(), "{method} {path}");
            for (status, resp) in responses {
                let resp = api.resolve(&resp);
                assert!(resp["description"].is_string(), "{method} {path} {status}");
                for (media, content) in resp["content"].as_object().into_iter().flatten() {
                    if media.ends_with("json") {
                        // A body that fits no schema: an error list, not a panic.
                        api.errors(&content["schema"], &json!({"surely": "not this"}));
                        checked += 1;
                    }
                    if status.starts_with('4') || status.starts_with('5') {
                        assert_eq!(media, "application/problem+json", "{method} {path} {status}");
                        assert_eq!(content["schema"]["$ref"], "#/components/schemas/Problem");
                    }
                }
            }
        }
    }
    assert!(checked > 40, "{checked}");
}

impl Contract {
    /// The declared parameter `name` of `method path`.
    fn param(&self, method: &str, path: &str, name: &str) -> &Value {
        let params = self.doc["paths"][path][method]["parameters"].as_array();
        let found = params.into_iter().flatten().find(|p| p["name"] == name);
        found.unwrap_or_else(|| panic!("{method} {path} declares no parameter {name}"))
    }

    /// The `required` members of a component schema.
    fn required(&self, schema: &str) -> Vec<String> {
        let required = self.doc["components"]["schemas"][schema]["required"].as_array();
        required.into_iter().flatten().map(|v| v.as_str().unwrap().to_string()).collect()
    }
}

/// What the document says a request may be is what the server takes, checked against real
/// answers: the catalog needs no identity (and a client without one reads it) but answers a
/// bad bearer token with the `401` it declares; ids are UUIDs, and a non-UUID is the declared
/// `400`; `page` and `perPage` have the bounds the server enforces, on both sides of each;
/// an `Idempotency-Key` of the declared longest length is taken and one longer refused; the
/// fields a start and a backtest require are the ones whose absence is a `400` naming them.
#[tokio::test]
async fn the_document_states_what_the_server_enforces() {
    let server = Server::start(TestDb::sqlite(), &[("WORKERS", "0")]).await;
    let api = Contract::fetch(&server).await;
    let anonymous = client();
    let get = Method::GET;

    for path in ["/api/trading/models", "/api/trading/analysts", "/api/trading/symbols", "/healthz"] {
        assert_eq!(api.doc["paths"][path]["get"]["security"], json!([{}]), "{path} needs no identity");
        let resp = anonymous.get(server.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        if path != "/healthz" {
            api.check(get.clone(), path, resp).await;
        }
        let bad = anonymous.get(server.url(path)).header("authorization", "Bearer ta_nope").send().await.unwrap();
        let (status, body) = api.check(get.clone(), path, bad).await;
        assert_eq!((status, body["type"].as_str()), (401, Some("/problems/invalid-token")), "{path}");
    }
    // Every operation declares the 401 a bad bearer token gets.
    for (path, ops) in api.doc["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            assert!(op["responses"]["401"].is_object(), "{method} {path} does not declare a 401");
        }
    }

    let c = visitor(&server).await;
    for (path, template) in [
        ("/api/trading/progress/not-a-uuid", "/api/trading/progress/{runId}"),
        ("/api/trading/backtests/not-a-uuid", "/api/trading/backtests/{backtestId}"),
    ] {
        let name = template.rsplit('{').next().unwrap().trim_end_matches('}');
        assert_eq!(api.param("get", template, name)["schema"]["format"], "uuid", "{template}");
        let (status, _) = api.check(get.clone(), template, c.get(server.url(path)).send().await.unwrap()).await;
        assert_eq!(status, 400, "{path}");
    }

    let runs = "/api/trading/runs";
    let per_page_max = u64::from(application::runs::PER_PAGE_MAX);
    for (name, min, max) in [("page", 1, 1_000_000), ("perPage", 1, per_page_max)] {
        let schema = &api.param("get", runs, name)["schema"];
        assert_eq!((schema["minimum"].as_u64(), schema["maximum"].as_u64()), (Some(min), Some(max)));
        for (value, status) in [(min - 1, 400), (min, 200), (max, 200), (max + 1, 400)] {
            let resp = c.get(server.url(&format!("{runs}?{name}={value}"))).send().await.unwrap();
            let (got, body) = api.check(get.clone(), runs, resp).await;
            assert_eq!(got, status, "{name}={value}");
            if status == 400 {
                assert_eq!(body["errors"][0]["field"], name);
            }
        }
    }

    let key = &api.param("post", "/api/trading/run", "Idempotency-Key")["schema"];
    assert_eq!((key["minLength"].as_u64(), key["maxLength"].as_u64()), (Some(1), Some(255)));
    let pattern = key["pattern"].as_str().expect("a pattern");
    for (sent, status) in [("k".repeat(255), 202), ("k".repeat(256), 400), ("with space".to_string(), 400)] {
        let fits = sent.len() <= 255 && sent.bytes().all(|b| (0x21..=0x7e).contains(&b));
        assert_eq!(fits, status == 202, "{pattern}");
        let resp = c
            .post(server.url("/api/trading/run"))
            .header("idempotency-key", &sent)
            .json(&json!({"symbol": "AAPL", "analysts": ["risk"]}))
            .send()
            .await
            .unwrap();
        let (got, _) = api.check(Method::POST, "/api/trading/run", resp).await;
        assert_eq!(got, status, "a key of {} characters", sent.len());
    }

    for (path, schema, body, missing) in [
        ("/api/trading/run", "StartRequest", json!({"analysts": ["risk"]}), vec!["symbol"]),
        ("/api/trading/backtests", "BacktestRequest", json!({"everyDays": 5}), vec!["symbols", "from", "to"]),
    ] {
        let required = api.required(schema);
        for field in &missing {
            assert!(required.contains(&field.to_string()), "{schema} requires {field}: {required:?}");
        }
        let resp = c.post(server.url(path)).json(&body).send().await.unwrap();
        let (status, problem) = api.check(Method::POST, path, resp).await;
        assert_eq!(status, 400, "{path}");
        let named: Vec<&str> =
            problem["errors"].as_array().unwrap().iter().filter_map(|e| e["field"].as_str()).collect();
        for field in missing {
            assert!(named.contains(&field), "{path}: {field} is named in {problem}");
        }
    }
}
