#!/usr/bin/env bash
# Parity with the Python aggregator on real traffic, for both zae-limiter
# versions we serve.
#
#   bash tests/parity/run.sh            # what CI runs (three comparisons, concurrently)
#   ZAE_PARITY_FULL=1 bash tests/parity/run.sh   # adds the 0.17 monthly setting and seeds 2, 3
#
# zae-limiter 0.13.0: runs 0.13.0's aggregator Lambda (installed from PyPI
# into the oracle's venv by ../shared/oracle/setup.sh) and `zae-aggregator
# invoke` on the same events from the same seeded table with the same clock
# and request id (the oracle's compare.py, against a moto server on
# 127.0.0.1), for the seed-1 stream with SNAPSHOT_WINDOWS hourly,daily and
# hourly,daily,monthly; then tests/parity/classify.py assigns every
# difference to a documented change, checking that both sides hold exactly
# the value the change predicts, and fails on any it cannot explain. Its
# self-test (wrong values that must come out UNEXPLAINED) runs first.
# Dumps: target/parity/<windows>/.
#
# zae-limiter 0.17.0: the 0.17 oracle (../shared/oracle17: its setup.sh
# installs zae-limiter 0.17.0 from PyPI into its own venv) replays the seed-1
# stream its generator made with the 0.17.0 client (schedules in non-UTC
# zones, calendar quotas crossing their reset edge, duration windows, soft
# limits overdrawn, hot buckets doubling, quota-conserving clones, a parent
# move, set_limits fan-outs, audit deletions), batch by batch from the table
# as it was at each batch's end, through upstream 0.17.0 and through
# `zae-aggregator invoke` (which picks the 0.17 semantics from the table's
# version record, as a deployment with ZAE_LIMITER_VERSION unset would);
# check17.py classifies every difference by attribute family, tolerates only
# the documented ones where the value each predicts holds, and exits 1 on
# any other. Report: target/parity17/<seed>-<windows>/. ZAE_SKIP_PARITY17=1
# skips it.
#
# Each comparison is one Python process talking to its own moto server, about
# one core between them, so the comparisons run side by side (on 2 cores the
# three take about as long as the longest one); their logs are printed in a
# fixed order once all have finished. ZAE_PARITY_FULL=1 adds, after those,
# three more side by side: 0.17 with hourly,daily,monthly on seed 1 and 0.17
# on seeds 2 and 3 (their streams are generated with the oracle's
# gen_events.py into the scratch directory first, about 2.5 minutes each).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
root=$(pwd)
oracle="$root/../shared/oracle"
oracle17="$root/../shared/oracle17"
[ -d "$oracle" ] || { echo "parity: $oracle not found (the shared oracle must sit beside the repository)" >&2; exit 2; }
skip17=${ZAE_SKIP_PARITY17:-0}
full=${ZAE_PARITY_FULL:-0}
if [ "$skip17" != 1 ]; then
    [ -d "$oracle17" ] || { echo "parity: $oracle17 not found" >&2; exit 2; }
fi
scratch13="$root/target/oracle-scratch"
export ORACLE17_SCRATCH="${ORACLE17_SCRATCH:-$root/target/oracle17-scratch}"
logs="$root/target/parity-logs"
rm -rf "$logs" "$root/target/parity" "$root/target/parity17"
mkdir -p "$logs" "$root/target/parity" "$root/target/parity17"

echo "== classify.py self-test" >&2
python3 tests/parity/classify.py --self-test >&2

echo "== oracle venv (zae-limiter 0.13.0 from PyPI) in $scratch13/venv" >&2
ORACLE_SCRATCH="$scratch13" ORACLE_VENV="$scratch13/venv" bash "$oracle/setup.sh" >&2
py="$scratch13/venv/bin/python"
if [ "$skip17" != 1 ]; then
    echo "== oracle venv (zae-limiter 0.17.0 from PyPI) in $ORACLE17_SCRATCH/venv" >&2
    bash "$oracle17/setup.sh" >&2
fi
py17="$ORACLE17_SCRATCH/venv/bin/python"

echo "== building zae-aggregator" >&2
cargo build -p zae-aggregator --bin zae-aggregator >&2
bin="$root/target/debug/zae-aggregator"
cmd="$bin invoke --now-ms \$ORACLE_NOW_MS --request-id \$ORACLE_REQUEST_ID --output \$ORACLE_RESULT_FILE {event} >/dev/null"

# Every moto server this script started, stopped by PID on exit.
servers=()
cleanup() {
    for s in "${servers[@]}"; do
        kind=${s%%:*}
        dir=${s#*:}
        if [ "$kind" = 13 ]; then
            ORACLE_SCRATCH="$dir" "$py" "$oracle/moto_server.py" stop >/dev/null 2>&1 || true
        else
            ORACLE17_SCRATCH="$dir" "$py17" "$oracle17/moto_server.py" stop >/dev/null 2>&1 || true
        fi
    done
}
trap cleanup EXIT

# compare13 WINDOWS: zae-limiter 0.13.0, seed 1, in its own scratch directory
# (its own moto server), dumps copied to target/parity/WINDOWS.
compare13() {
    local windows=$1 dir="$scratch13/$1"
    mkdir -p "$dir"
    (
        export ORACLE_SCRATCH="$dir" ORACLE_VENV="$scratch13/venv"
        cd "$oracle"
        start=$(date +%s)
        "$py" moto_server.py start >/dev/null
        # compare.py exits 1 when the states differ at all; classify.py judges them.
        "$py" compare.py --windows "$windows" --cmd "$cmd" vectors/1 > "$dir/compare.log" || true
        "$py" moto_server.py stop >/dev/null || true
        cp -r "$dir/compare/1" "$root/target/parity/$windows"
        echo "0.13 $windows: compared in $(( $(date +%s) - start )) s"
    )
}

# check17 SEED WINDOWS VECTORS: zae-limiter 0.17.0 through check17.py, in its
# own scratch directory (its own moto server); report in
# target/parity17/SEED-WINDOWS/.
check17() {
    local seed=$1 windows=$2 vectors=$3
    local out="$root/target/parity17/$seed-$windows"
    mkdir -p "$out"
    (
        export ORACLE17_SCRATCH="$ORACLE17_SCRATCH/$seed-$windows"
        mkdir -p "$ORACLE17_SCRATCH"
        cd "$oracle17"
        start=$(date +%s)
        endpoint=$("$py17" moto_server.py start)
        status=0
        "$py17" check17.py --endpoint "$endpoint" --label "zae-aggregator-$seed-$windows" \
            --windows "$windows" --json-out "$out/report.json" --cmd "$cmd" "$vectors" \
            > "$out/check17.log" || status=$?
        "$py17" moto_server.py stop >/dev/null || true
        echo "0.17 seed $seed $windows: checked in $(( $(date +%s) - start )) s"
        exit "$status"
    )
}

# One moto server per comparison, each in its own scratch directory, so that
# concurrent comparisons never share a table.
servers+=("13:$scratch13/hourly,daily" "13:$scratch13/hourly,daily,monthly")
for run in 1-hourly,daily 1-hourly,daily,monthly 2-hourly,daily 3-hourly,daily; do
    servers+=("17:$ORACLE17_SCRATCH/$run")
done

pids=()
compare13 hourly,daily > "$logs/13-hd.log" 2>&1 & pids+=($!)
compare13 hourly,daily,monthly > "$logs/13-hdm.log" 2>&1 & pids+=($!)
status17=0
if [ "$skip17" != 1 ]; then
    check17 1 hourly,daily "$oracle17/vectors/1" > "$logs/17-1-hd.log" 2>&1 & pid17=$!
fi
failed=0
for p in "${pids[@]}"; do wait "$p" || failed=1; done
if [ "$skip17" != 1 ]; then wait "$pid17" || status17=$?; fi
cat "$logs/13-hd.log" "$logs/13-hdm.log"
[ "$failed" = 0 ] || { echo "parity 0.13: a comparison did not run (target/parity-logs/)" >&2; exit 1; }

for windows in hourly,daily hourly,daily,monthly; do
    echo "== differences, zae-limiter 0.13.0, SNAPSHOT_WINDOWS=$windows"
    python3 tests/parity/classify.py --vectors "$oracle/vectors/1" "target/parity/$windows"
done

[ "$skip17" = 1 ] && exit 0
runs17=("1 hourly,daily")
if [ "$full" = 1 ]; then
    for seed in 2 3; do
        vectors="$ORACLE17_SCRATCH/vectors/$seed"
        if [ ! -f "$vectors/meta.json" ]; then
            echo "== generating the 0.17 oracle's seed-$seed stream into $vectors" >&2
            (cd "$oracle17" && "$py17" gen_events.py --seed "$seed" --out "$vectors" >&2)
        fi
    done
    pids=()
    check17 1 hourly,daily,monthly "$oracle17/vectors/1" > "$logs/17-1-hdm.log" 2>&1 & pids+=($!)
    for seed in 2 3; do
        check17 "$seed" hourly,daily "$ORACLE17_SCRATCH/vectors/$seed" > "$logs/17-$seed-hd.log" 2>&1 & pids+=($!)
    done
    for p in "${pids[@]}"; do wait "$p" || status17=1; done
    runs17+=("1 hourly,daily,monthly" "2 hourly,daily" "3 hourly,daily")
fi
for run in "${runs17[@]}"; do
    read -r seed windows <<< "$run"
    echo "== differences, zae-limiter 0.17.0, seed $seed, SNAPSHOT_WINDOWS=$windows"
    cat "$logs/17-$seed-$( [ "$windows" = hourly,daily ] && echo hd || echo hdm ).log"
    python3 tests/parity/summary17.py "$root/target/parity17/$seed-$windows/check17.log"
done
[ "$status17" = 0 ] || { echo "parity 0.17: unexplained differences (target/parity17/*/check17.log)" >&2; exit 1; }
