#!/usr/bin/env bash
# The local main job: real zae-limiter traffic on a fresh table with a
# DynamoDB stream, aggregated by `zae-aggregator poll` reading that stream,
# against a local AWS endpoint, on a fresh machine.
#
#   bash tests/local/demo.sh                 # live traffic through `poll`
#   bash tests/local/demo.sh --event FILE    # one Lambda event through `invoke`
#
# Installs the wasm32-wasip2 target (tests/env.sh) and a venv with the pinned
# zae-limiter client library and moto server (requirements-demo.txt) if
# missing, builds the binary (debug; ZAE_PROFILE=release for an optimised
# one), starts moto on 127.0.0.1, drives the client (three earlier months
# and now), runs `poll --until-caught-up` on the table's stream and prints
# the usage snapshots, the buckets it refilled or re-sharded, and the archive
# objects; then reads the table back (backfill of the monthly window, usage
# summary and average, reconcile); exits 1 if any window's counters differ
# from what the client consumed.
# moto is stopped (by PID) on exit. Options: tests/local/demo.py --help.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
# shellcheck source=tests/env.sh
source tests/env.sh

ZAE_DEMO_VENV="${ZAE_DEMO_VENV:-$PWD/target/demo-venv}"
zae_venv "$ZAE_DEMO_VENV" tests/local/requirements-demo.txt moto_server "the zae-limiter client and moto"

profile="${ZAE_PROFILE:-dev}"
echo "== building zae-aggregator (profile $profile)" >&2
cargo build --profile "$profile" -p zae-aggregator --bin zae-aggregator >&2
case "$profile" in dev) dir=debug ;; *) dir="$profile" ;; esac

ZAE_MOTO_SERVER="$(zae_moto_wrapper "$ZAE_DEMO_VENV")" \
    exec "$ZAE_DEMO_VENV/bin/python" tests/local/demo.py --binary "target/$dir/zae-aggregator" "$@"
