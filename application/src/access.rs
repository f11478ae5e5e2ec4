//! Other ways to an identity than the browser's session cookie: personal API tokens, and
//! read-only share links of single runs.
//!
//! A token is made on the settings page by the identity that will own it, and from then on
//! stands for that identity: `Authorization: Bearer <token>` reads, starts and cancels the
//! same runs as the browser that made it. The secret is 256 random bits, shown once when it
//! is made; only its SHA-256 is stored, so a leaked database lets nobody in. (A slow password
//! hash buys nothing for a secret this long, and would cost every API call.)

use std::sync::Arc;

use chrono::Utc;
use domain::access::TOKEN_NAME_MAX;
use domain::{ApiToken, FieldError, RunId, ShareLink};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::runs::{RunService, UserId};
use crate::store::Store;

/// What every share link's secret starts with.
pub const SHARE_PREFIX: &str = "ts_";
/// Share links one run may have.
pub const SHARES_PER_RUN_MAX: usize = 20;

/// What every token starts with, so a leaked one is easy to recognise (and to scan for).
pub const TOKEN_PREFIX: &str = "ta_";
/// Tokens one identity may hold.
pub const TOKENS_PER_USER_MAX: usize = 20;

#[derive(Clone)]
pub struct Access {
    store: Store,
    runs: Arc<RunService>,
}

/// The hex SHA-256 of a secret: what is stored and looked up.
pub fn hash(secret: &str) -> String {
    Sha256::digest(secret.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

fn random_hex() -> String {
    // Two v4 UUIDs: 244 random bits from the operating system.
    format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple())
}

impl Access {
    pub fn new(runs: Arc<RunService>) -> Self {
        Self { store: runs.store().clone(), runs }
    }

    /// A new token for `user`, and its secret (the only time the secret exists outside the
    /// caller's hands).
    pub async fn create_token(&self, user: &UserId, name: &str) -> Result<(ApiToken, String)> {
        let name = name.trim();
        let invalid = |message: String| Error::Invalid(vec![FieldError::new("name", message)]);
        if name.is_empty() {
            return Err(invalid("give the token a name, e.g. where it will be used".into()));
        }
        if name.chars().count() > TOKEN_NAME_MAX || name.chars().any(char::is_control) {
            return Err(invalid(format!("at most {TOKEN_NAME_MAX} characters, without control characters")));
        }
        if self.store.tokens_for(&user.0).await?.len() >= TOKENS_PER_USER_MAX {
            return Err(invalid(format!("you already have {TOKENS_PER_USER_MAX} tokens; revoke one first")));
        }
        let secret = format!("{TOKEN_PREFIX}{}", random_hex());
        let token =
            ApiToken { id: uuid::Uuid::new_v4().simple().to_string(), name: name.to_string(), created_at: Utc::now() };
        self.store.insert_token(&user.0, &token, &hash(&secret)).await?;
        Ok((token, secret))
    }

    pub async fn tokens(&self, user: &UserId) -> Result<Vec<ApiToken>> {
        self.store.tokens_for(&user.0).await
    }

    /// Revokes one of `user`'s tokens; whether it existed (another's token never does).
    pub async fn revoke_token(&self, user: &UserId, id: &str) -> Result<bool> {
        self.store.delete_token(&user.0, id).await
    }

    /// The identity a presented secret stands for, if it is a live token.
    pub async fn token_user(&self, secret: &str) -> Result<Option<UserId>> {
        if !secret.starts_with(TOKEN_PREFIX) || secret.len() > 128 {
            return Ok(None);
        }
        Ok(self.store.token_owner(&hash(secret)).await?.map(UserId))
    }

    /// A share link of one of `user`'s runs, and its secret (the rest of the link's address).
    /// A run that is not the user's is [`Error::NotFound`], as everywhere.
    pub async fn create_share(&self, user: &UserId, run_id: RunId) -> Result<(ShareLink, String)> {
        self.runs.owned(&user.0, run_id).await?;
        if self.store.shares_for(&user.0, run_id).await?.len() >= SHARES_PER_RUN_MAX {
            return Err(Error::Invalid(vec![FieldError::new(
                "runId",
                format!("this run already has {SHARES_PER_RUN_MAX} share links; revoke one first"),
            )]));
        }
        let secret = format!("{SHARE_PREFIX}{}", random_hex());
        let share = ShareLink { id: uuid::Uuid::new_v4().simple().to_string(), run_id, created_at: Utc::now() };
        self.store.insert_share(&user.0, &share, &hash(&secret)).await?;
        Ok((share, secret))
    }

    /// The share links of one of `user`'s runs (none for anyone else's).
    pub async fn shares(&self, user: &UserId, run_id: RunId) -> Result<Vec<ShareLink>> {
        self.store.shares_for(&user.0, run_id).await
    }

    /// Revokes one of `user`'s share links; whether it existed.
    pub async fn revoke_share(&self, user: &UserId, id: &str) -> Result<bool> {
        self.store.delete_share(&user.0, id).await
    }

    /// The run a share link opens, and its owner (whose reads the link may make).
    pub async fn shared(&self, secret: &str) -> Result<Option<(RunId, UserId)>> {
        if !secret.starts_with(SHARE_PREFIX) || secret.len() > 128 {
            return Ok(None);
        }
        Ok(self.store.shared_run(&hash(secret)).await?.map(|(run, user)| (run, UserId(user))))
    }
}
