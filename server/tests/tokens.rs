//! Personal API tokens over HTTP, on both backends: made on the settings page with a plain
//! form, used as `Authorization: Bearer`, owning the same runs as the browser that made them,
//! and revoked.

mod common;

use common::{Server, client, visitor};
use jobs::testing::TestDb;
use serde_json::{Value, json};

/// The first `prefix`-led run of `[0-9a-z_]` in `html`.
fn find<'a>(html: &'a str, prefix: &str) -> &'a str {
    let start = html.find(prefix).unwrap_or_else(|| panic!("{prefix} in {html}"));
    let rest = &html[start..];
    let end = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(rest.len());
    &rest[..end]
}

async fn problem(resp: reqwest::Response, status: u16, kind: &str) -> reqwest::header::HeaderMap {
    assert_eq!(resp.status(), status);
    let headers = resp.headers().clone();
    assert_eq!(headers["content-type"], "application/problem+json");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["type"], format!("/problems/{kind}"));
    headers
}

async fn tokens_stand_for_their_maker(db: TestDb) {
    let server = Server::start(db, &[("SIMULATED_LATENCY_MS", "60000")]).await;
    let browser = visitor(&server).await;
    let page = browser.get(server.url("/settings")).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("You have no tokens."), "{page}");

    // Made with the plain form; its secret is on the answer, once, and never cached.
    let resp = browser.post(server.url("/settings/tokens")).form(&[("name", "laptop script")]).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let html = resp.text().await.unwrap();
    let secret = find(&html, "ta_").to_string();
    assert_eq!(secret.len(), 67, "{secret}");
    let listed = browser.get(server.url("/settings")).send().await.unwrap().text().await.unwrap();
    assert!(listed.contains("laptop script") && !listed.contains(&secret), "listed, without its secret");
    let id = listed.split("data-token=\"").nth(1).and_then(|rest| rest.split('"').next()).unwrap().to_string();
    assert_eq!(id.len(), 32, "{id}");

    // A script with the token (no cookies) is the browser's identity: each sees the other's
    // runs. Another site's Origin does not matter to a bearer request, and it gets no cookie.
    let script = reqwest::Client::new();
    let bearer = format!("Bearer {secret}");
    let resp = script
        .post(server.url("/api/trading/run"))
        .header("authorization", &bearer)
        .header("origin", "https://elsewhere.example")
        .json(&json!({"symbol": "AAPL", "analysts": ["risk"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    assert!(resp.headers().get("set-cookie").is_none());
    let by_script: Value = resp.json().await.unwrap();
    let resp = browser.post(server.url("/api/trading/run")).json(&json!({"symbol": "MSFT"})).send().await.unwrap();
    let by_browser: Value = resp.json().await.unwrap();
    let seen: Value = browser.get(server.url("/api/trading/runs")).send().await.unwrap().json().await.unwrap();
    assert_eq!(seen["total"], 2);
    let seen: Value = script
        .get(server.url("/api/trading/runs"))
        .header("authorization", &bearer)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(seen["total"], 2);
    let progress = script
        .get(server.url(&format!("/api/trading/progress/{}", by_browser["runId"].as_str().unwrap())))
        .header("authorization", &bearer)
        .send()
        .await
        .unwrap();
    assert_eq!(progress.status(), 200);
    let cancel = script
        .post(server.url(&format!("/api/trading/cancel/{}", by_script["runId"].as_str().unwrap())))
        .header("authorization", format!("bearer {secret}"))
        .send()
        .await
        .unwrap();
    // 202 while its worker stops it: the scheme is case-insensitive, and the run the token's.
    assert!(matches!(cancel.status().as_u16(), 200 | 202), "{}", cancel.status());
    // Somebody else sees none of it.
    let stranger = visitor(&server).await;
    let seen: Value = stranger.get(server.url("/api/trading/runs")).send().await.unwrap().json().await.unwrap();
    assert_eq!(seen["total"], 0);
    let resp = stranger.post(server.url(&format!("/settings/tokens/{id}/revoke"))).send().await.unwrap();
    problem(resp, 404, "not-found").await;

    // A bad token is a 401, never the cookie that came along; other schemes are not ours.
    for value in ["Bearer ", "Bearer nope", &format!("Bearer {}x", secret), "Bearer ta_\u{0}"] {
        let Ok(v) = reqwest::header::HeaderValue::from_str(value) else { continue };
        let resp = browser.get(server.url("/api/trading/runs")).header("authorization", v).send().await.unwrap();
        let h = problem(resp, 401, "invalid-token").await;
        assert_eq!(h["www-authenticate"], "Bearer error=\"invalid_token\"");
    }
    let resp = browser.get(server.url("/api/trading/runs")).header("authorization", "Basic dTpw").send().await.unwrap();
    assert_eq!(resp.status(), 200);

    // The form is a cookie's, so another site cannot post it.
    let resp = browser
        .post(server.url("/settings/tokens"))
        .header("origin", "https://elsewhere.example")
        .form(&[("name", "evil")])
        .send()
        .await
        .unwrap();
    problem(resp, 403, "cross-site-request").await;
    let resp = browser.post(server.url("/settings/tokens")).form(&[("name", " ")]).send().await.unwrap();
    assert_eq!(resp.status(), 400);
    assert!(resp.text().await.unwrap().contains("give the token a name"));
    let resp = client().post(server.url("/settings/tokens")).form(&[("name", "x")]).send().await.unwrap();
    problem(resp, 401, "unauthenticated").await;

    // Revoked: gone from the page, and the secret is nobody.
    let resp = browser.post(server.url(&format!("/settings/tokens/{id}/revoke"))).send().await.unwrap();
    assert_eq!(resp.url().path(), "/settings", "303 back to the page");
    assert!(resp.text().await.unwrap().contains("You have no tokens."));
    let resp = script.get(server.url("/api/trading/runs")).header("authorization", &bearer).send().await.unwrap();
    problem(resp, 401, "invalid-token").await;
}

#[tokio::test]
async fn tokens_stand_for_their_maker_on_sqlite() {
    tokens_stand_for_their_maker(TestDb::sqlite()).await;
}

#[tokio::test]
async fn tokens_stand_for_their_maker_on_postgres() {
    tokens_stand_for_their_maker(TestDb::postgres().await).await;
}

/// Tokens are managed by a browser's session only: the bearer of a token can neither make
/// another (which would outlive the revocation of the first) nor revoke one — a `403`
/// problem, where the same forms with the session cookie succeed.
#[tokio::test]
async fn a_bearer_token_cannot_manage_tokens() {
    let server = Server::start(TestDb::sqlite(), &[("WORKERS", "0")]).await;
    let browser = visitor(&server).await;
    let resp = browser.post(server.url("/settings/tokens")).form(&[("name", "first")]).send().await.unwrap();
    assert_eq!(resp.status(), 200, "the session makes a token");
    let secret = find(&resp.text().await.unwrap(), "ta_").to_string();
    let bearer = format!("Bearer {secret}");
    let listed = browser.get(server.url("/settings")).send().await.unwrap().text().await.unwrap();
    let id = listed.split("data-token=\"").nth(1).and_then(|rest| rest.split('"').next()).unwrap().to_string();

    let script = reqwest::Client::new();
    let resp = script
        .post(server.url("/settings/tokens"))
        .header("authorization", &bearer)
        .form(&[("name", "minted-by-bearer")])
        .send()
        .await
        .unwrap();
    let h = problem(resp, 403, "session-required").await;
    assert!(h.get("set-cookie").is_none());
    let resp = script
        .post(server.url(&format!("/settings/tokens/{id}/revoke")))
        .header("authorization", &bearer)
        .send()
        .await
        .unwrap();
    problem(resp, 403, "session-required").await;

    let listed = browser.get(server.url("/settings")).send().await.unwrap().text().await.unwrap();
    assert_eq!(listed.matches("data-token=\"").count(), 1, "still the one token");
    assert!(!listed.contains("minted-by-bearer"));
    let resp = script.get(server.url("/api/trading/runs")).header("authorization", &bearer).send().await.unwrap();
    assert_eq!(resp.status(), 200, "the token still works for the API");

    // Revoked by the session, the token is nobody, and no other token of it lives on.
    let resp = browser.post(server.url(&format!("/settings/tokens/{id}/revoke"))).send().await.unwrap();
    assert_eq!(resp.url().path(), "/settings", "303 back to the page");
    let resp = script.get(server.url("/api/trading/runs")).header("authorization", &bearer).send().await.unwrap();
    problem(resp, 401, "invalid-token").await;
}
