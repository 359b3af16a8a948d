#!/usr/bin/env python3
"""zae-limiter's own `get_usage_summary` on a table, for comparison with `zae-aggregator usage`
(host/tests/usage.rs, `the_python_library_agrees`; docs/reading.md#commands).

    python usage_summary.py --endpoint URL --table NAME --entity E --resource R \
        --window hourly [--start T] [--end T]

Prints one JSON object: the summary (`snapshot_count`, `total`, `min_window_start`,
`max_window_start`) and what its queries cost (`requests`, `items`, `read_units`), counted by
asking DynamoDB for the consumed capacity of every Query the library sends. Needs the venv of
tests/local/requirements-demo.txt (zae-limiter 0.17.0).
"""

from __future__ import annotations

import argparse
import json
import os

from zae_limiter import SyncRepository


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--endpoint", required=True)
    ap.add_argument("--table", required=True)
    ap.add_argument("--namespace", default="default")
    ap.add_argument("--entity", required=True)
    ap.add_argument("--resource")
    ap.add_argument("--window")
    ap.add_argument("--start")
    ap.add_argument("--end")
    args = ap.parse_args()
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "test")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "test")
    # `SyncRepository.open` less its version check: the tests' table holds the version record
    # of the zae-limiter 0.13 traffic it was written from, which the 0.17 client refuses to
    # serve, while its snapshot reader (what is compared) reads both alike.
    repo = SyncRepository(
        name=args.table, region="us-east-1", endpoint_url=args.endpoint, _skip_deprecation_warning=True
    )
    namespace_id = repo._resolve_namespace(args.namespace)
    if namespace_id is None:
        raise SystemExit(f"namespace {args.namespace!r} is not registered in {args.table}")
    repo._namespace_id = namespace_id
    repo._namespace_name = args.namespace
    repo._reinitialize_config_cache(namespace_id)
    repo._builder_initialized = True
    cost = {"requests": 0, "items": 0, "read_units": 0.0}

    def ask_capacity(params, **_):
        params["ReturnConsumedCapacity"] = "TOTAL"

    def count(parsed, **_):
        cost["requests"] += 1
        cost["items"] += len(parsed.get("Items", []))
        cost["read_units"] += parsed.get("ConsumedCapacity", {}).get("CapacityUnits", 0.0)

    client = repo._get_client()
    client.meta.events.register("provide-client-params.dynamodb.Query", ask_capacity)
    client.meta.events.register("after-call.dynamodb.Query", count)
    s = repo.get_usage_summary(
        entity_id=args.entity, resource=args.resource, window_type=args.window, start_time=args.start,
        end_time=args.end,
    )
    print(json.dumps({
        "snapshot_count": s.snapshot_count,
        "total": s.total,
        "min_window_start": s.min_window_start,
        "max_window_start": s.max_window_start,
        **cost,
    }, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
