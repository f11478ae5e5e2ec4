#!/usr/bin/env bash
# Builds Trading Agents (release) and serves it on http://127.0.0.1:3000 with the embedded
# defaults: a SQLite file under data/, the bundled market data, the offline model. No key, no
# network, no external service. Installs the build tools it needs on the first run.
#
# Anything in the README's configuration table can be set in the environment, e.g.
#   SIMULATED_LATENCY_MS=0 ./scripts/serve.sh
#   LEPTOS_SITE_ADDR=0.0.0.0:8080 ./scripts/serve.sh

source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"

install_rust_tools
install_node_packages

step "Building and serving (release) on http://${LEPTOS_SITE_ADDR:-127.0.0.1:3000}"
exec cargo leptos serve --release --precompress
