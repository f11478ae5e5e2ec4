//! What the application's tests share: the real request checks.

#![allow(dead_code)]

use std::sync::Arc;

use agents::market::bundled::BundledData;
use agents::model::{Catalog, Models, ModelsConfig};
use application::checks::Checks;

/// The checks of a real deployment: the bundled market data and the built-in catalog, no keys.
pub fn checks() -> Arc<Checks> {
    let data = concat!(env!("CARGO_MANIFEST_DIR"), "/../data/market");
    let market = Arc::new(BundledData::load(std::path::Path::new(data)).expect("bundled data"));
    let models = Arc::new(Models::new(Catalog::builtin(), &|_| None, reqwest::Client::new(), ModelsConfig::default()));
    Arc::new(Checks { market, models })
}

/// The test database opened with `clock`, every migration applied (the queue's and the
/// application's).
pub async fn open(db: &jobs::testing::TestDb, clock: Arc<dyn jobs::Clock>) -> jobs::Database {
    let database = jobs::Database::connect(&db.url, clock).await.expect("open the test database");
    application::store::migrate(&database).await.expect("migrate");
    database
}
