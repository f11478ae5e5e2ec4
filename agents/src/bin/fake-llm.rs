//! The fake OpenAI-compatible provider as a process, for the browser tests:
//! `fake-llm [ADDR]` (default 127.0.0.1:0) prints `listening on http://…` and serves until
//! killed. Behaviours by path (see `agents::testing`): `/ok/v1`, `/slow/v1`, `/fail-first-4/v1`, `/xss/v1`…

#[tokio::main]
async fn main() {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:0".into());
    let fake = agents::testing::FakeLlm::start_on(addr.parse().expect("an address like 127.0.0.1:3200")).await;
    println!("listening on http://{}", fake.addr);
    std::future::pending::<()>().await;
}
