//! Share links over HTTP, on both backends: the owner makes a read-only link; anyone opens the
//! page and the progress endpoint through it; cancel, retry and the links themselves stay the
//! owner's; a revoked link opens nothing.

mod common;

use common::{Server, client, visitor, wait_until_done};
use jobs::testing::TestDb;
use serde_json::{Value, json};

async fn not_found(resp: reqwest::Response) {
    assert_eq!(resp.status(), 404);
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
}

async fn share_links(db: TestDb) {
    let server = Server::start(db, &[]).await;
    let owner = visitor(&server).await;
    let started: Value = owner
        .post(server.url("/api/trading/run"))
        .json(&json!({"symbol": "NVDA", "analysts": ["risk"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = started["runId"].as_str().unwrap().to_string();
    let (done, _) = wait_until_done(&owner, &server, &id, std::time::Duration::from_secs(60)).await;
    assert_eq!(done["status"], "completed");

    let resp = owner.post(server.url(&format!("/api/trading/runs/{id}/shares"))).send().await.unwrap();
    assert_eq!(resp.status(), 201);
    let link: Value = resp.json().await.unwrap();
    let url = link["url"].as_str().unwrap().to_string();
    let api = link["apiUrl"].as_str().unwrap().to_string();
    assert!(url.starts_with("/share/ts_") && url.len() == "/share/".len() + 67, "{url}");
    assert_eq!(api, url.replace("/share/", "/api/trading/share/"));
    assert_eq!(link["runId"], id.as_str());

    // Anyone — another identity, or a client with no cookie at all — reads it through the link.
    let stranger = visitor(&server).await;
    for c in [&stranger, &client()] {
        let resp = c.get(server.url(&api)).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        let etag = resp.headers()["etag"].clone();
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["runId"], id.as_str());
        assert_eq!(body["status"], "completed");
        assert_eq!(body["result"]["symbol"], done["result"]["symbol"]);
        let again = c.get(server.url(&api)).header("if-none-match", etag).send().await.unwrap();
        assert_eq!(again.status(), 304);
        let page = c.get(server.url(&url)).send().await.unwrap();
        assert_eq!(page.status(), 200);
        let html = page.text().await.unwrap();
        assert!(html.contains("shared analysis") && html.contains("data-testid=\"result\""), "{html}");
        assert!(!html.contains("/cancel\"") && !html.contains("/retry\"") && !html.contains("/share\""), "read-only");
        assert!(html.contains("A read-only view its owner shared with you") && !html.contains("share-owner"));
        // Its log too, as the owner's page has it: the prices read, the call, the end.
        let log = html.split("data-testid=\"run-log\"").nth(1).expect("the run's log is on the page");
        for kind in ["data", "call", "ended"] {
            assert!(log.contains(&format!("data-kind=\"{kind}\"")), "{kind}: {log}");
        }
    }
    // A stranger who has only the run's own address is told why it does not open, and how to.
    let page = stranger.get(server.url(&format!("/runs/{id}"))).send().await.unwrap();
    assert_eq!(page.status(), 404);
    let html = page.text().await.unwrap();
    assert!(html.contains("a run is private to whoever started it") && html.contains("read-only link"), "{html}");
    // The link opens that page and that endpoint only: the run itself stays the owner's.
    for path in [format!("/api/trading/progress/{id}"), format!("/api/trading/runs/{id}/shares")] {
        not_found(stranger.get(server.url(&path)).send().await.unwrap()).await;
    }
    for path in [
        format!("/api/trading/cancel/{id}"),
        format!("/api/trading/retry/{id}"),
        format!("/api/trading/runs/{id}/shares"),
    ] {
        not_found(stranger.post(server.url(&path)).send().await.unwrap()).await;
    }
    let link_id = link["id"].as_str().unwrap();
    not_found(stranger.delete(server.url(&format!("/api/trading/shares/{link_id}"))).send().await.unwrap()).await;

    // The run page's form makes another and leads to it; the page lists both, for revoking.
    let resp = owner.post(server.url(&format!("/runs/{id}/share"))).send().await.unwrap();
    assert!(resp.url().path().starts_with("/share/ts_"), "{}", resp.url());
    let second = resp.url().path().to_string();
    // Its maker lands on it and is told what it is: the link, who can open it, how to revoke it.
    let made = resp.text().await.unwrap();
    assert!(made.contains("data-testid=\"share-owner\"") && made.contains("shown only here, never again"), "{made}");
    assert!(made.contains(&format!("value=\"{second}\"")), "the address to pass on: {made}");
    assert!(made.contains("data-testid=\"copy-link\""), "with a button to copy it: {made}");
    assert!(made.contains("Anyone who has the address, without signing in."), "who can open it: {made}");
    assert!(made.contains("You revoke it, on "), "and until when: {made}");
    let listed: Value =
        owner.get(server.url(&format!("/api/trading/runs/{id}/shares"))).send().await.unwrap().json().await.unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 2);
    assert!(!listed.to_string().contains("ts_"), "listed without secrets");
    let run_page = owner.get(server.url(&format!("/runs/{id}"))).send().await.unwrap().text().await.unwrap();
    assert_eq!(run_page.matches("data-share=").count(), 2);
    assert!(
        run_page.contains("2 live links") && run_page.contains("read-only, for anyone with its address"),
        "{run_page}"
    );

    // Revoked, a link opens nothing; the other still works.
    let resp = owner.delete(server.url(&format!("/api/trading/shares/{link_id}"))).send().await.unwrap();
    assert_eq!(resp.status(), 204);
    not_found(client().get(server.url(&api)).send().await.unwrap()).await;
    assert_eq!(client().get(server.url(&url)).send().await.unwrap().status(), 404);
    assert_eq!(client().get(server.url(&second)).send().await.unwrap().status(), 200);
    let second_id = listed[0]["id"].as_str().unwrap();
    let resp = owner.post(server.url(&format!("/runs/{id}/shares/{second_id}/revoke"))).send().await.unwrap();
    assert_eq!(resp.url().path(), format!("/runs/{id}"));
    assert_eq!(client().get(server.url(&second)).send().await.unwrap().status(), 404);

    for bad in ["/api/trading/share/nope", "/api/trading/share/ts_%00", "/api/trading/share/%E2%98%83"] {
        not_found(client().get(server.url(bad)).send().await.unwrap()).await;
    }
}

#[tokio::test]
async fn share_links_on_sqlite() {
    share_links(TestDb::sqlite()).await;
}

#[tokio::test]
async fn share_links_on_postgres() {
    share_links(TestDb::postgres().await).await;
}
