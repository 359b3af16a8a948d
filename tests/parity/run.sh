#!/usr/bin/env bash
# Parity with the Python aggregator on real traffic.
#
#   bash tests/parity/run.sh
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
