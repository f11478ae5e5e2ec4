//! Shared pieces of the benchmarks: argument parsing and table printing.

use std::str::FromStr;

/// `--name value` from the command line, or the default.
pub fn arg<T: FromStr>(name: &str, default: T) -> T {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|v| v.parse().unwrap_or_else(|_| panic!("{name}: cannot read '{v}'")))
        .unwrap_or(default)
}

/// `--name a,b,c` as a list, or the default.
pub fn list<T: FromStr + Clone>(name: &str, default: &[T]) -> Vec<T> {
    let raw: String = arg(name, String::new());
    if raw.is_empty() {
        return default.to_vec();
    }
    raw.split(',').map(|v| v.trim().parse().unwrap_or_else(|_| panic!("{name}: cannot read '{v}'"))).collect()
}

/// p50, p99 and max of `values` (nearest rank).
pub fn quantiles(mut values: Vec<f64>) -> (f64, f64, f64) {
    values.sort_by(f64::total_cmp);
    let at = |p: f64| values[((p * values.len() as f64).ceil() as usize).clamp(1, values.len()) - 1];
    (at(0.50), at(0.99), *values.last().expect("values"))
}

/// The machine, for the record.
pub fn machine() -> String {
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    format!("{cpus} CPUs ({model})")
}

/// The request checks of a real deployment: the bundled market data and the built-in catalog.
pub fn checks() -> std::sync::Arc<application::checks::Checks> {
    use agents::market::bundled::BundledData;
    use agents::model::{Catalog, Models, ModelsConfig};
    let data = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/market");
    let market = std::sync::Arc::new(BundledData::load(&data).expect("bundled data"));
    let models = Models::new(Catalog::builtin(), &|_| None, reqwest::Client::new(), ModelsConfig::default());
    std::sync::Arc::new(application::checks::Checks { market, models: std::sync::Arc::new(models) })
}
