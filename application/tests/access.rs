//! Personal API tokens and share links on both backends: made, found by their secret only,
//! listed without it, and revoked by their owner only.

mod common;

use std::sync::Arc;

use application::access::{Access, TOKENS_PER_USER_MAX, hash};
use application::{Error, RunService, ServiceConfig, UserId};
use domain::{RunId, StartRequest};
use jobs::testing::TestDb;
use jobs::{Events, SystemClock};

async fn service(db: &TestDb) -> Arc<RunService> {
    let database = common::open(db, Arc::new(SystemClock)).await;
    Arc::new(RunService::new(&database, Events::new(), common::checks(), ServiceConfig::default()).unwrap())
}

async fn tokens(db: TestDb) {
    let runs = service(&db).await;
    let store = runs.store().clone();
    let access = Access::new(runs);
    let alice = UserId("a".repeat(32));
    let bob = UserId("b".repeat(32));

    let (first, secret) = access.create_token(&alice, "  laptop script ").await.unwrap();
    assert_eq!(first.name, "laptop script");
    assert!(secret.starts_with("ta_") && secret.len() == 67, "{secret}");
    let (second, other_secret) = access.create_token(&alice, "ci").await.unwrap();
    assert_ne!(secret, other_secret);

    // The secret stands for its owner; anything else for nobody.
    assert_eq!(access.token_user(&secret).await.unwrap(), Some(alice.clone()));
    assert_eq!(access.token_user(&secret[..66]).await.unwrap(), None);
    assert_eq!(access.token_user("ta_nope").await.unwrap(), None);
    assert_eq!(access.token_user(&hash(&secret)).await.unwrap(), None, "the stored hash is not a key");
    assert_eq!(store.token_owner(&hash(&secret)).await.unwrap().as_deref(), Some(alice.0.as_str()));

    // Listed newest first, never with the secret.
    let listed = access.tokens(&alice).await.unwrap();
    assert_eq!(listed.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(), [second.id.as_str(), first.id.as_str()]);
    assert!(!format!("{listed:?}").contains(&secret[3..]));
    assert!(access.tokens(&bob).await.unwrap().is_empty());

    // Only the owner revokes; a revoked secret is nobody.
    assert!(!access.revoke_token(&bob, &first.id).await.unwrap());
    assert_eq!(access.token_user(&secret).await.unwrap(), Some(alice.clone()));
    assert!(access.revoke_token(&alice, &first.id).await.unwrap());
    assert!(!access.revoke_token(&alice, &first.id).await.unwrap());
    assert_eq!(access.token_user(&secret).await.unwrap(), None);
    assert_eq!(access.token_user(&other_secret).await.unwrap(), Some(alice.clone()));

    // Names are checked, and the number of tokens bounded.
    for bad in ["", "   ", &"x".repeat(65), "a\u{0}b"] {
        let err = access.create_token(&bob, bad).await.unwrap_err();
        assert!(matches!(&err, Error::Invalid(e) if e[0].field == "name"), "{bad:?}: {err:?}");
    }
    for i in 0..TOKENS_PER_USER_MAX {
        access.create_token(&bob, &format!("t{i}")).await.unwrap();
    }
    assert!(matches!(access.create_token(&bob, "one more").await, Err(Error::Invalid(_))));
    assert_eq!(access.tokens(&bob).await.unwrap().len(), TOKENS_PER_USER_MAX);
}

async fn shares(db: TestDb) {
    let runs = service(&db).await;
    let access = Access::new(runs.clone());
    let alice = UserId("a".repeat(32));
    let bob = UserId("b".repeat(32));
    let request = StartRequest { symbol: Some("AAPL".into()), ..StartRequest::default() };
    let run = runs.start(&alice.0, &request, None).await.unwrap().run_id;

    // Only the owner shares; someone else's run and no run are the same "not found".
    assert!(matches!(access.create_share(&bob, run).await, Err(Error::NotFound)));
    assert!(matches!(access.create_share(&alice, RunId::from_uuid(uuid::Uuid::new_v4())).await, Err(Error::NotFound)));
    let (first, secret) = access.create_share(&alice, run).await.unwrap();
    let (second, other) = access.create_share(&alice, run).await.unwrap();
    assert!(secret.starts_with("ts_") && secret.len() == 67 && secret != other, "{secret}");
    assert_eq!(first.run_id, run);

    // The secret opens the run, as its owner's; nothing else does.
    assert_eq!(access.shared(&secret).await.unwrap(), Some((run, alice.clone())));
    assert_eq!(access.shared(&secret[..66]).await.unwrap(), None);
    assert_eq!(access.shared(&secret.replace("ts_", "ta_")).await.unwrap(), None, "a share is not a token");
    assert_eq!(access.token_user(&secret).await.unwrap(), None);

    let ids = |v: Vec<domain::ShareLink>| v.into_iter().map(|s| s.id).collect::<Vec<_>>();
    assert_eq!(ids(access.shares(&alice, run).await.unwrap()), [second.id.clone(), first.id.clone()]);
    assert!(access.shares(&bob, run).await.unwrap().is_empty());

    assert!(!access.revoke_share(&bob, &first.id).await.unwrap());
    assert!(access.revoke_share(&alice, &first.id).await.unwrap());
    assert_eq!(access.shared(&secret).await.unwrap(), None);
    assert_eq!(access.shared(&other).await.unwrap(), Some((run, alice.clone())));
    assert_eq!(ids(access.shares(&alice, run).await.unwrap()), [second.id]);
}

#[tokio::test]
async fn tokens_on_sqlite() {
    tokens(TestDb::sqlite()).await;
}

#[tokio::test]
async fn tokens_on_postgres() {
    tokens(TestDb::postgres().await).await;
}

#[tokio::test]
async fn shares_on_sqlite() {
    shares(TestDb::sqlite()).await;
}

#[tokio::test]
async fn shares_on_postgres() {
    shares(TestDb::postgres().await).await;
}
