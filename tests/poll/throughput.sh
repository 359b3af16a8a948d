#!/usr/bin/env bash
# `poll` throughput against a local moto server, next to `invoke` on the same
# records (docs/poll.md#throughput). Not part of CI.
#
#   bash tests/poll/throughput.sh [--records 2000] [--buckets 50]
#
# Builds zae-aggregator (debug; ZAE_PROFILE=release for an optimised build)
# and prints a JSON summary.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
# shellcheck source=tests/env.sh
source tests/env.sh
profile="${ZAE_PROFILE:-dev}"
cargo build --profile "$profile" -p zae-aggregator --bin zae-aggregator >&2
case "$profile" in dev) dir=debug ;; *) dir="$profile" ;; esac
exec "$ZAE_MOTO_VENV/bin/python" tests/poll/throughput.py --binary "target/$dir/zae-aggregator" "$@"
