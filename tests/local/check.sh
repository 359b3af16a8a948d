#!/usr/bin/env bash
# The test of the local main job: runs tests/local/demo.sh and checks its
# output by counts (tests/local/check_demo.py): the stream was read, today's
# hourly and daily items exist per (entity, resource), backfill built the
# monthly items, usage average answered from them, reconcile found no drift,
# every window's totals equal what the client consumed, every expired audit
# row was archived. Run by tests/run.sh.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
out="$(mktemp)"
trap 'rm -f "$out"' EXIT
bash tests/local/demo.sh "$@" | tee "$out"
python3 tests/local/check_demo.py "$out"
