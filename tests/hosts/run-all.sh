#!/usr/bin/env bash
# Conformance kit: runs every host of the planner over every vector in
# tests/conformance/ and checks each answer byte for byte against plan.json
# (reader vectors, tests/conformance/reader/, against answer.json)
# (the node and python hosts check both their own rendering and the
# component's render-plan / render-error of the answer they lifted).
#
#   tests/hosts/run-all.sh [--timings]
#
# 1. Builds the component once, with the command host/build.rs runs (same
#    target directory, same environment), so the host crate's own build of it
#    is then up to date and every wasm host runs the same file:
#      cargo build -p zae-planner --target wasm32-wasip2 --profile component \
#        --locked --target-dir target/component
#    -> target/component/wasm32-wasip2/component/zae_planner.wasm
#    With $ZAE_COMPONENT_WASM set, that prebuilt component is used instead
#    (host/build.rs honours the same variable).
# 2. Runs the hosts:
#      native         cargo test -p zae-planner --test conformance (the planner as a Rust library)
#      wasmtime-rust  cargo test -p zae-aggregator --test conformance_wasm (the host crate)
#      node           node tests/hosts/node/run.mjs    (jco; `npm ci` first if needed)
#      python         tests/hosts/python/run.py        (wasmtime-py; venv + `pip install -r` if needed)
# 3. Prints one line per host and a final line `N passed, M failed`, counting
#    host x vector checks. Exits 1 on any mismatch or host failure.
#
# --timings: the node and python hosts print every vector's call time, and the
#   native planner's time on the 1,000-record vector is measured with
#   `cargo bench -p zae-planner --bench plan` (a release build of zae-planner).
#
# Network: only `npm ci` and `pip install`, and only when tests/hosts/node/
# node_modules or tests/hosts/python/.venv is missing or older than its lock
# file; after that everything runs offline. Full logs: target/conformance-hosts/.
set -euo pipefail

HOSTS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HOSTS_DIR/../.." && pwd)
VECTORS="$ROOT/tests/conformance"
LOGS="$ROOT/target/conformance-hosts"
TIMED=real-batch-1000

timings=false
for arg in "$@"; do
  case "$arg" in
    --timings) timings=true ;;
    -h|--help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "run-all.sh: unknown argument $arg (try --help)" >&2; exit 2 ;;
  esac
done

cd "$ROOT"
mkdir -p "$LOGS"

# Every vector directory, by name; reader vectors as reader/<name>.
mapfile -t vectors < <({
  for d in "$VECTORS"/*/; do [ -f "$d/input.json" ] && basename "$d"; done
  for d in "$VECTORS"/reader/*/; do [ -f "$d/input.json" ] && echo "reader/$(basename "$d")"; done
} | LC_ALL=C sort)
total=${#vectors[@]}
if [ "$total" -eq 0 ]; then
  echo "run-all.sh: no vectors under $VECTORS" >&2
  exit 2
fi

all_passed=0
all_failed=0
host_errors=0

# report HOST PASSED FAILED NOTE: one summary line per host.
report() {
  printf '%-14s %3d passed, %3d failed%s\n' "$1" "$2" "$3" "${4:+   $4}"
  all_passed=$((all_passed + $2))
  all_failed=$((all_failed + $3))
}

# Failed vectors named in a log: lines "<vector>: ..." or "FAIL <vector>: ...".
failed_vectors() {
  local v
  for v in "${vectors[@]}"; do
    if grep -Eq "^(FAIL |\s*)${v}: " "$1"; then echo "$v"; fi
  done
}

# run_cargo_host HOST LOG CMD...: a cargo test over every vector; per-vector
# results come from the names in its failure message.
run_cargo_host() {
  local host=$1 log=$2
  shift 2
  if "$@" >"$log" 2>&1; then
    report "$host" "$total" 0
    return
  fi
  local bad
  bad=$(failed_vectors "$log" | wc -l)
  if [ "$bad" -eq 0 ]; then
    host_errors=$((host_errors + 1))
    report "$host" 0 "$total" "did not run: see $log"
    tail -n 15 "$log" | sed 's/^/    /'
  else
    report "$host" $((total - bad)) "$bad"
    { grep -A2 -E "^\s*($(failed_vectors "$log" | paste -sd'|')): " "$log" | grep -v '^--$' | head -n 30 |
      sed 's/^/    /'; } || true
  fi
}

# run_script_host HOST LOG CMD...: a host script printing FAIL lines and a
# final "<host>: P passed, F failed; NOTE" line.
run_script_host() {
  local host=$1 log=$2
  shift 2
  local rc=0
  "$@" >"$log" 2>"$log.stderr" || rc=$?
  local summary
  summary=$(grep -E "^${host}: [0-9]+ passed, [0-9]+ failed" "$log" | tail -n 1 || true)
  if [ -z "$summary" ] || [ "$rc" -gt 1 ]; then
    host_errors=$((host_errors + 1))
    report "$host" 0 "$total" "did not run (exit $rc): see $log.stderr"
    tail -n 15 "$log.stderr" | sed 's/^/    /'
    return
  fi
  local passed failed note
  passed=$(sed -E 's/^[^:]+: ([0-9]+) passed.*/\1/' <<<"$summary")
  failed=$(sed -E 's/^[^:]+: [0-9]+ passed, ([0-9]+) failed.*/\1/' <<<"$summary")
  note=$(sed -E 's/^[^;]*; ?//' <<<"$summary")
  if [ $((passed + failed)) -ne "$total" ]; then
    failed=$((total - passed))
  fi
  report "$host" "$passed" "$failed" "$note"
  grep -A6 '^FAIL ' "$log" | grep -v '^--$' | head -n 30 | sed 's/^/    /' || true
}

# ---------------------------------------------------------------------------
echo "== component"
if [ -n "${ZAE_COMPONENT_WASM:-}" ]; then
  component=$(realpath "$ZAE_COMPONENT_WASM")
  export ZAE_COMPONENT_WASM="$component"
  echo "using ZAE_COMPONENT_WASM"
else
  # host/build.rs removes these from its nested cargo's environment; so do we,
  # or the two builds would differ and rebuild each other's artifact.
  unset_vars=()
  for var in $(compgen -e); do
    case "$var" in
      RUSTFLAGS|RUSTDOCFLAGS|RUSTC_WORKSPACE_WRAPPER|CARGO_ENCODED_RUSTFLAGS|CARGO_ENCODED_RUSTDOCFLAGS|\
      CARGO_INCREMENTAL|CARGO_BUILD_*|CARGO_PROFILE_*|CARGO_TARGET_*) unset_vars+=(-u "$var") ;;
    esac
  done
  env "${unset_vars[@]}" cargo build -p zae-planner --target wasm32-wasip2 --profile component --locked \
    --target-dir "$ROOT/target/component" 2>&1 | tail -n 1
  component="$ROOT/target/component/wasm32-wasip2/component/zae_planner.wasm"
fi
[ -f "$component" ] || { echo "run-all.sh: no component at $component" >&2; exit 2; }
component_sha=$(sha256sum "$component" | cut -d' ' -f1)
echo "$component ($(wc -c <"$component") bytes, sha256 ${component_sha:0:16})"

echo "== installs"
# node: `npm ci` when node_modules is missing or older than the lock file.
node_dir="$HOSTS_DIR/node"
if [ ! -f "$node_dir/node_modules/.package-lock.json" ] ||
   [ "$node_dir/package-lock.json" -nt "$node_dir/node_modules/.package-lock.json" ]; then
  (cd "$node_dir" && npm ci --no-audit --no-fund --loglevel=error) >"$LOGS/npm-ci.log" 2>&1 ||
    { echo "npm ci failed: see $LOGS/npm-ci.log" >&2; tail -n 15 "$LOGS/npm-ci.log" >&2; }
fi
echo "node $(node --version), $(cd "$node_dir" && node -p 'require("./package-lock.json").packages["node_modules/@bytecodealliance/jco"].version' 2>/dev/null | sed 's/^/jco /')"
# python: a venv with requirements.txt installed; reinstalled when the file changes.
py_dir="$HOSTS_DIR/python"
venv="$py_dir/.venv"
if [ ! -x "$venv/bin/python" ] || ! cmp -s "$py_dir/requirements.txt" "$venv/requirements.installed"; then
  { rm -rf "$venv" && python3 -m venv "$venv" &&
    "$venv/bin/pip" install --disable-pip-version-check --quiet -r "$py_dir/requirements.txt" &&
    cp "$py_dir/requirements.txt" "$venv/requirements.installed"; } >"$LOGS/pip-install.log" 2>&1 ||
    { echo "pip install failed: see $LOGS/pip-install.log" >&2; tail -n 15 "$LOGS/pip-install.log" >&2; }
fi
echo "$("$venv/bin/python" --version 2>&1), $("$venv/bin/pip" freeze 2>/dev/null | grep -i '^wasmtime==' || echo 'wasmtime not installed')"

echo "== hosts ($total vectors)"
run_cargo_host native "$LOGS/native.log" cargo test -p zae-planner --test conformance --locked
run_cargo_host wasmtime-rust "$LOGS/wasmtime-rust.log" cargo test -p zae-aggregator --test conformance_wasm --locked
if [ "$(sha256sum "$component" | cut -d' ' -f1)" != "$component_sha" ]; then
  echo "note: the host crate's build rebuilt $component (a different cargo environment?);" \
    "node and python run the rebuilt file, which is the one the wasmtime-rust host embedded"
fi
script_flags=(--component "$component" --vectors "$VECTORS" --timed "$TIMED")
$timings && script_flags+=(--timings)
run_script_host node "$LOGS/node.log" node "$node_dir/run.mjs" "${script_flags[@]}"
run_script_host python "$LOGS/python.log" "$venv/bin/python" "$py_dir/run.py" "${script_flags[@]}"

if $timings; then
  echo "== timings of $TIMED"
  if cargo bench -p zae-planner --bench plan --locked -- "$TIMED" >"$LOGS/native-bench.log" 2>&1; then
    printf '%-14s %s\n' native "$(grep -A1 "$TIMED" "$LOGS/native-bench.log" | grep -m1 -o 'time: *\[[^]]*\]')"
  else
    printf '%-14s %s\n' native "cargo bench failed: see $LOGS/native-bench.log"
  fi
  for host in node python; do
    printf '%-14s %s\n' "$host" "$(grep -E "^${host}: " "$LOGS/$host.log" | sed -E 's/^[^;]*; ?//')"
    printf '%-14s all vectors: %s\n' "" "$LOGS/$host.log.stderr"
  done
fi

echo "$all_passed passed, $all_failed failed"
[ "$all_failed" -eq 0 ] && [ "$host_errors" -eq 0 ]
