//! `AUTH_PROXY_HEADER` against the real binary: the user a trusted single sign-on proxy names
//! is an identity of its own — believed from trusted proxies only, and in a namespace no
//! cookie identity can reach.

mod common;

use common::{Server, client};
use jobs::testing::TestDb;
use serde_json::{Value, json};

async fn total(resp: reqwest::Response) -> u64 {
    assert_eq!(resp.status(), 200);
    resp.json::<Value>().await.unwrap()["total"].as_u64().unwrap()
}

#[tokio::test]
async fn a_trusted_proxy_names_the_user() {
    let env = [("SIMULATED_LATENCY_MS", "60000"), ("AUTH_PROXY_HEADER", "X-Forwarded-User")];
    let server = Server::start(TestDb::sqlite(), &[env.as_slice(), &[("TRUSTED_PROXIES", "127.0.0.1")]].concat()).await;
    let as_user = |name: &str, method: reqwest::Method, path: &str| {
        client().request(method, server.url(path)).header("x-forwarded-user", name)
    };
    // No cookie needed: the proxy's word is the identity, on every request, and none is issued.
    let resp = as_user("alice", reqwest::Method::POST, "/api/trading/run")
        .json(&json!({"symbol": "AAPL"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    let page = as_user("alice", reqwest::Method::GET, "/").send().await.unwrap();
    assert!(page.headers().get("set-cookie").is_none());
    assert_eq!(total(as_user("alice", reqwest::Method::GET, "/api/trading/runs").send().await.unwrap()).await, 1);
    assert_eq!(total(as_user("bob", reqwest::Method::GET, "/api/trading/runs").send().await.unwrap()).await, 0);

    // A cookie identity's id given as a proxy user name is a different identity.
    let page = client().get(server.url("/")).send().await.unwrap();
    let cookie = page.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string();
    let cookie_user = cookie.trim_start_matches("ta_session=").split('.').next().unwrap().to_string();
    assert_eq!(cookie_user.len(), 32);
    let resp = client()
        .post(server.url("/api/trading/run"))
        .header("cookie", &cookie)
        .json(&json!({"symbol": "MSFT"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    assert_eq!(
        total(client().get(server.url("/api/trading/runs")).header("cookie", &cookie).send().await.unwrap()).await,
        1
    );
    assert_eq!(total(as_user(&cookie_user, reqwest::Method::GET, "/api/trading/runs").send().await.unwrap()).await, 0);

    // Cross-site writes stay refused: the proxy's user is an ambient credential like a cookie.
    let resp = as_user("alice", reqwest::Method::POST, "/api/trading/run")
        .header("origin", "https://evil.example")
        .json(&json!({"symbol": "AAPL"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    let resp = as_user(" ", reqwest::Method::GET, "/api/trading/runs").send().await.unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(resp.headers()["content-type"], "application/problem+json");

    // From a peer that is not a trusted proxy, the header is nobody.
    let direct = Server::start(TestDb::sqlite(), &env).await;
    let resp = client()
        .post(direct.url("/api/trading/run"))
        .header("x-forwarded-user", "alice")
        .json(&json!({"symbol": "AAPL"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
}
