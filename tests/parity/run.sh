#!/usr/bin/env bash
# Parity with the Python aggregator on real traffic, for both zae-limiter
# versions we serve.
#
#   bash tests/parity/run.sh
#
# zae-limiter 0.17.0 (second part): the 0.17 oracle (../shared/oracle17: its
# setup.sh installs zae-limiter 0.17.0 from PyPI into its own venv) replays
# the seed-1 stream its generator made with the 0.17.0 client (schedules in
# non-UTC zones, calendar quotas crossing their reset edge, duration windows,
# soft limits overdrawn, hot buckets doubling, quota-conserving clones, a
# parent move, set_limits fan-outs, audit deletions), batch by batch from the
# table as it was at each batch's end, through upstream 0.17.0 and through
# `zae-aggregator invoke` (which picks the 0.17 semantics from the table's
# version record, as a deployment with ZAE_LIMITER_VERSION unset would);
# check17.py classifies every difference by attribute family, tolerates only
# the documented ones where the value each predicts holds, and exits 1 on
# any other. Report: target/parity17/. ZAE_SKIP_PARITY17=1 skips it.
#
# Runs zae-limiter 0.13.0's aggregator Lambda (installed from PyPI into the
# oracle's venv by ../shared/oracle/setup.sh) and `zae-aggregator invoke` on
# the same events from the same seeded table with the same clock and request
# id (the oracle's compare.py, against one moto server on 127.0.0.1), for the
# seed-1 stream with SNAPSHOT_WINDOWS hourly,daily and hourly,daily,monthly;
# then tests/parity/classify.py assigns every difference to a documented
# change, checking that both sides hold exactly the value the change predicts,
# and fails on any it cannot explain. Its self-test (wrong values that must come
# out UNEXPLAINED) runs first. Dumps: target/parity/<windows>/.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
root=$(pwd)
oracle="$root/../shared/oracle"
[ -d "$oracle" ] || { echo "parity: $oracle not found (the shared oracle must sit beside the repository)" >&2; exit 2; }
export ORACLE_SCRATCH="${ORACLE_SCRATCH:-$root/target/oracle-scratch}"

echo "== classify.py self-test" >&2
python3 tests/parity/classify.py --self-test >&2

echo "== oracle venv (zae-limiter 0.13.0 from PyPI) in $ORACLE_SCRATCH" >&2
bash "$oracle/setup.sh" >&2
py="$ORACLE_SCRATCH/venv/bin/python"

echo "== building zae-aggregator" >&2
cargo build -p zae-aggregator --bin zae-aggregator >&2
bin="$root/target/debug/zae-aggregator"

cd "$oracle"
"$py" moto_server.py start >&2
trap '"$py" "$oracle/moto_server.py" stop >&2 || true' EXIT

rm -rf "$root/target/parity"
for windows in hourly,daily hourly,daily,monthly; do
    echo "== compare, SNAPSHOT_WINDOWS=$windows" >&2
    # compare.py exits 1 when the states differ at all; classify.py judges them.
    "$py" compare.py --windows "$windows" \
        --cmd "$bin invoke --now-ms \$ORACLE_NOW_MS --request-id \$ORACLE_REQUEST_ID --output \$ORACLE_RESULT_FILE {event} >/dev/null" \
        vectors/1 > "$ORACLE_SCRATCH/compare-$windows.log" || true
    mkdir -p "$root/target/parity"
    cp -r "$ORACLE_SCRATCH/compare/1" "$root/target/parity/$windows"
done

cd "$root"
for windows in hourly,daily hourly,daily,monthly; do
    echo "== differences, SNAPSHOT_WINDOWS=$windows"
    python3 tests/parity/classify.py --vectors "$oracle/vectors/1" "target/parity/$windows"
done

if [ "${ZAE_SKIP_PARITY17:-0}" != 1 ]; then
    oracle17="$root/../shared/oracle17"
    [ -d "$oracle17" ] || { echo "parity: $oracle17 not found" >&2; exit 2; }
    export ORACLE17_SCRATCH="${ORACLE17_SCRATCH:-$root/target/oracle17-scratch}"
    echo "== oracle venv (zae-limiter 0.17.0 from PyPI) in $ORACLE17_SCRATCH" >&2
    bash "$oracle17/setup.sh" >&2
    py17="$ORACLE17_SCRATCH/venv/bin/python"
    cd "$oracle17"
    endpoint=$("$py17" moto_server.py start)
    trap '"$py17" "$oracle17/moto_server.py" stop >&2 || true; "$py" "$oracle/moto_server.py" stop >&2 || true' EXIT
    mkdir -p "$root/target/parity17"
    echo "== check17, zae-limiter 0.17.0, seed 1, SNAPSHOT_WINDOWS=hourly,daily"
    status=0
    "$py17" check17.py --endpoint "$endpoint" --label zae-aggregator --json-out "$root/target/parity17/report.json" \
        --cmd "$bin invoke --now-ms \$ORACLE_NOW_MS --request-id \$ORACLE_REQUEST_ID --output \$ORACLE_RESULT_FILE {event} >/dev/null" \
        vectors/1 > "$root/target/parity17/check17.log" || status=$?
    cd "$root"
    python3 tests/parity/summary17.py "$root/target/parity17/check17.log"
    [ "$status" = 0 ] || { echo "parity 0.17: unexplained differences (target/parity17/check17.log)" >&2; exit 1; }
fi
