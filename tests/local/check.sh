#!/usr/bin/env bash
# The test of the local main job: runs tests/local/demo.sh and checks its
# output by counts (tests/local/check_demo.py): the stream was read, every
# window holds an item per (entity, resource) the client used, the snapshot
# totals equal what the client consumed, every expired audit row was
# archived. Run by tests/run.sh.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
out="$(mktemp)"
trap 'rm -f "$out"' EXIT
bash tests/local/demo.sh "$@" | tee "$out"
python3 tests/local/check_demo.py "$out"
