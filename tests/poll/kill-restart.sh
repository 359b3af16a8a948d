#!/usr/bin/env bash
# The long kill/restart campaign of `poll` (docs/poll.md#tests): each run a
# fresh table and stream, the poller SIGKILLed one to three times at random
# points and restarted from its checkpoint; counters must equal the ground
# truth every time. CI runs 5 runs of the same test.
#
#   bash tests/poll/kill-restart.sh [RUNS] [SEED]     # default 50 runs, seed 16
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
# shellcheck source=tests/env.sh
source tests/env.sh
ZAE_POLL_RUNS="${1:-50}" ZAE_POLL_SEED="${2:-16}" \
    cargo test -p zae-aggregator --test poll sigkill_at_random_points_then_restart -- --nocapture
