# Installs what building and testing Trading Agents needs, skipping what is already there.
# Sourced by serve.sh and test.sh. Everything comes from a package registry (crates.io, npm,
# Debian): downloads from elsewhere fail on locked-down machines.

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 DEBIAN_FRONTEND=noninteractive
BIN_DIR="${CARGO_HOME:-$HOME/.cargo}/bin"
# cargo-leptos looks for wasm-bindgen and wasm-opt on PATH before trying to download them.
export PATH="$BIN_DIR:$ROOT/end2end/node_modules/.bin:$PATH"

CARGO_LEPTOS_VERSION=0.3.10

step() { printf '\n==> %s\n' "$*"; }

need() {
  command -v "$1" >/dev/null 2>&1 || { echo "error: $1 is required ($2)" >&2; exit 1; }
}

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

install_rust_tools() {
  need cargo "install Rust with rustup: https://rustup.rs"
  need rustup "install Rust with rustup: https://rustup.rs"
  local c
  for c in rustfmt clippy; do
    if ! rustup component list --installed | grep -q "^$c"; then
      step "Adding the $c component"
      rustup component add "$c"
    fi
  done
  if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
    step "Adding the wasm32 target"
    rustup target add wasm32-unknown-unknown
  fi
  if [ "$(cargo-leptos --version 2>/dev/null)" != "cargo-leptos $CARGO_LEPTOS_VERSION" ]; then
    step "Installing cargo-leptos $CARGO_LEPTOS_VERSION (about 15 minutes, once)"
    # Without LTO the install takes a third less time and the tool works the same.
    CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
      cargo install --locked "cargo-leptos@$CARGO_LEPTOS_VERSION"
  fi
  # The wasm-bindgen CLI must match the wasm-bindgen crate in Cargo.lock exactly.
  local wb
  wb=$(awk '/^name = "wasm-bindgen"$/{getline; gsub(/version = |"/,""); print; exit}' Cargo.lock)
  if [ "$(wasm-bindgen --version 2>/dev/null)" != "wasm-bindgen $wb" ]; then
    step "Installing wasm-bindgen-cli $wb"
    cargo install --locked wasm-bindgen-cli --version "$wb"
  fi
}

install_node_packages() {
  need npm "install Node.js 20 or later"
  # npm's binaryen provides wasm-opt 132; Debian's older one breaks the release WASM.
  if [ ! -x end2end/node_modules/.bin/playwright ] || [ ! -x end2end/node_modules/.bin/wasm-opt ]; then
    step "Installing the end-to-end test packages (Playwright, binaryen)"
    (cd end2end && npm ci --no-audit --no-fund)
  fi
}

install_chromium() {
  if ! command -v chromium >/dev/null 2>&1; then
    step "Installing Debian's chromium for the browser tests"
    as_root apt-get update -qq
    as_root apt-get install -y -qq chromium
  fi
}

ensure_postgres() {
  if ! pg_isready -q -h 127.0.0.1 2>/dev/null; then
    if [ -d /usr/lib/postgresql ]; then
      step "Starting PostgreSQL"
      local v
      v=$(ls /usr/lib/postgresql | sort -n | tail -1)
      if ! pg_lsclusters -h | grep -q "^$v main"; then
        as_root pg_createcluster "$v" main
        # The tests connect as postgres over TCP without a password: trust local connections
        # on the cluster made here (Debian's default asks for one over TCP).
        as_root sed -i -E 's/(scram-sha-256|md5|peer)$/trust/' "/etc/postgresql/$v/main/pg_hba.conf"
      fi
      as_root pg_ctlcluster "$v" main start
    fi
    for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 && break; sleep 1; done
    pg_isready -q -h 127.0.0.1 || { echo "error: PostgreSQL is not reachable on 127.0.0.1:5432 (the tests need it)" >&2; exit 1; }
  fi
}
