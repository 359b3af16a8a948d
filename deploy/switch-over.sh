#!/usr/bin/env bash
# Switch a zae-limiter stack's Python aggregator over to zae-aggregator in
# place (or --rollback), printing every AWS CLI call before it is made;
# nothing changes without --apply. The work is done by switch-over.py with
# boto3 (PYTHON, default python3, must import boto3). Runbook: deploy/README.md.
#
#   bash deploy/switch-over.sh --stack NAME [--code bootstrap.zip] [--apply]
#   bash deploy/switch-over.sh --stack NAME --rollback --code aggregator.zip [--apply]
set -euo pipefail
exec "${PYTHON:-python3}" "$(dirname "${BASH_SOURCE[0]}")/switch-over.py" "$@"
