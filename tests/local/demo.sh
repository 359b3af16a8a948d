#!/usr/bin/env bash
# The local main job: a real stream batch through `zae-aggregator invoke`
# against a local AWS endpoint, on a fresh machine.
#
#   bash tests/local/demo.sh
#
# Installs the wasm32-wasip2 target and the pinned moto server if missing
# (tests/env.sh), builds the binary (debug; ZAE_PROFILE=release for an
# optimised one), starts moto on 127.0.0.1, creates a zae-limiter-shaped
# table with a stream and an archive bucket, loads the table as the Python
# library's own traffic left it, runs the bundled 1,000-record batch and
# prints the usage snapshots, the buckets it refilled or re-sharded, and the
# archive objects. moto is stopped (by PID) on exit.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
# shellcheck source=tests/env.sh
source tests/env.sh

profile="${ZAE_PROFILE:-dev}"
echo "== building zae-aggregator (profile $profile)" >&2
cargo build --profile "$profile" -p zae-aggregator --bin zae-aggregator >&2
case "$profile" in dev) dir=debug ;; *) dir="$profile" ;; esac

exec "$ZAE_MOTO_VENV/bin/python" tests/local/demo.py --binary "target/$dir/zae-aggregator" "$@"
