#!/usr/bin/env bash
# Benchmarks of zae-aggregator next to zae-limiter 0.13.0's Python aggregator (docs/benchmarks.md).
#
#   bash tests/bench/run.sh                 # everything: ~1 h on 2 cores (the Python aggregator's
#                                           # 10,000-record batch alone takes ~10 min per repetition)
#   bash tests/bench/run.sh --quick         # one repetition each, criterion in --quick mode (~20 min)
#   bash tests/bench/run.sh --no-criterion [side_by_side.py options, e.g. --sizes 100,1000 --reps 3]
#
# From a clean clone beside the shared oracle (../shared/oracle), with a Rust toolchain and
# Python 3.11:
#  1. installs what is missing: /usr/bin/time (apt package `time`), the wasm32-wasip2 target, and
#     the oracle's venv with zae-limiter==0.13.0 and moto[server]==5.2.5 from PyPI
#     (../shared/oracle/setup.sh, into $ORACLE_SCRATCH/venv, default target/oracle-scratch);
#  2. builds the release binary (cargo build --release; ZAE_BIN=/path skips this);
#  3. runs the criterion benches: `cargo bench -p zae-planner --bench plan` (native planning,
#     stage breakdown) and `cargo bench -p zae-aggregator --bench plan_wasm` (native vs
#     wasmtime, ready/load-precompiled);
#  4. runs tests/bench/side_by_side.py: one private moto server on 127.0.0.1, both aggregators on
#     the same batches (100, 1,000, 10,000 records) from the same seeded table, AWS requests
#     counted from moto's request log, wall / CPU / peak RSS, cold start, the Python logic's
#     planning CPU; writes tests/bench/results/{results.json,table.md,chart.svg} and prints the
#     tables.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
root=$(pwd)
oracle="${ZAE_ORACLE:-$root/../shared/oracle}"
[ -d "$oracle" ] || { echo "bench: $oracle not found (the shared oracle must sit beside the repository)" >&2; exit 2; }
export ZAE_ORACLE="$oracle"
export ORACLE_SCRATCH="${ORACLE_SCRATCH:-$root/target/oracle-scratch}"

criterion=1
criterion_args=()
args=()
for a in "$@"; do
    case "$a" in
        --quick) args+=(--reps 1 --reps-10k 1 --cold-reps 5); criterion_args+=(--quick) ;;
        --no-criterion) criterion=0 ;;
        *) args+=("$a") ;;
    esac
done

if [ ! -x /usr/bin/time ]; then
    echo "== installing /usr/bin/time (apt package time)" >&2
    sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
    $sudo apt-get install -y -q time >&2 || { $sudo apt-get update -q >&2 && $sudo apt-get install -y -q time >&2; }
fi
if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2; then
    echo "== installing the wasm32-wasip2 Rust target" >&2
    rustup target add wasm32-wasip2 >&2
fi

echo "== Python aggregator: zae-limiter 0.13.0 from PyPI into $ORACLE_SCRATCH/venv" >&2
bash "$oracle/setup.sh" >&2
py="$ORACLE_SCRATCH/venv/bin/python"

if [ -n "${ZAE_BIN:-}" ]; then
    bin="$ZAE_BIN"
else
    echo "== building zae-aggregator (release)" >&2
    cargo build --release -p zae-aggregator --bin zae-aggregator >&2
    bin="$root/target/release/zae-aggregator"
fi

if [ "$criterion" = 1 ]; then
    echo "== criterion: native planning and stage breakdown" >&2
    cargo bench -p zae-planner --bench plan -- "${criterion_args[@]}" >&2
    echo "== criterion: native vs wasmtime, component ready" >&2
    cargo bench -p zae-aggregator --bench plan_wasm -- "${criterion_args[@]}" >&2
fi

# measure a copy, so that a concurrent cargo build cannot swap the binary mid-run
mkdir -p target/bench
cp "$bin" target/bench/zae-aggregator

echo "== side by side against one moto server" >&2
"$py" tests/bench/side_by_side.py --bin target/bench/zae-aggregator "${args[@]}"
