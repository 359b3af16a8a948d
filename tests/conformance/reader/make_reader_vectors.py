#!/usr/bin/env python3
"""Writes the reader vectors' input.json files (tests/conformance/README.md#reader-vectors).

    python3 tests/conformance/reader/make_reader_vectors.py
    ZAE_BLESS=1 cargo test -p zae-planner --test conformance native_reader   # then review answer.json

Each vector names one function of the contract's `reader` interface and its arguments. Items
are DynamoDB JSON maps as a Query returns them (objects) or raw text (strings, passed verbatim).
"""

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
WM = "0" * 39 + "7"
NOW = "1710504000000"  # 2024-03-15T12:00:00Z


def item(entity, resource, key, window, suffixed=True, ns="ns1", counters=None, events=1, extra=None):
    """A snapshot item as this aggregator writes it (suffixed) or upstream (not)."""
    sk = f"#USAGE#{resource}#{key}" + (f"#{window}" if suffixed and window != "hourly" else "")
    out = {
        "PK": {"S": f"{ns}/ENTITY#{entity}"},
        "SK": {"S": sk},
        "entity_id": {"S": entity},
        "resource": {"S": resource},
        "window": {"S": window},
        "window_start": {"S": key},
        "GSI2PK": {"S": f"{ns}/RESOURCE#{resource}"},
        "GSI2SK": {"S": f"USAGE#{key}#{entity}"},
        "ttl": {"N": "1717200000"},
        "total_events": {"N": str(events)},
    }
    for name, value in (counters or {"tpm": 100}).items():
        out[name] = {"N": str(value)}
    out.update(extra or {})
    return out


VECTORS = {
    "rows-every-layout": dict(
        description="rows read every key layout: ours (hourly, #daily, #monthly), upstream's "
        "unsuffixed daily and monthly (window attribute), 0.17's {limit}#od counter; watermarks "
        "(S, and an N one) are skipped; newest first",
        function="rows",
        items=[
            item("u1", "gpt-4", "2024-03-05T10:00:00Z", "hourly", extra={"wm#0": {"S": WM}}),
            item("u1", "gpt-4", "2024-03-05T00:00:00Z", "daily", extra={"wm#0": {"S": WM}, "wm#1": {"S": WM}}),
            item("u1", "gpt-4", "2024-03-01T00:00:00Z", "monthly", counters={"tpm": 250, "rpm": 3, "tpm#od": 1}),
            item("u2", "gpt-4", "2024-03-04T00:00:00Z", "daily", suffixed=False, counters={"tpm": 5}),
            item("u2", "gpt-4", "2024-02-01T00:00:00Z", "monthly", suffixed=False, counters={"tpm": 9},
                 extra={"wm#ENTITY#u2": {"N": "12"}}),
        ],
    ),
    "rows-filters": dict(
        description="rows filter by namespace, entity, resource, window and an inclusive "
        "window_start range; `to` as a day alone covers the whole day",
        function="rows",
        query={"namespace": "ns1", "entity": "u1", "resource": "gpt-4", "window": "hourly",
               "from": "2024-03-05T11:00:00Z", "to": "2024-03-06"},
        items=[
            item("u1", "gpt-4", "2024-03-05T10:00:00Z", "hourly"),
            item("u1", "gpt-4", "2024-03-05T11:00:00Z", "hourly"),
            item("u1", "gpt-4", "2024-03-06T23:00:00Z", "hourly"),
            item("u1", "gpt-4", "2024-03-07T00:00:00Z", "hourly"),
            item("u1", "gpt-4", "2024-03-06T00:00:00Z", "daily"),
            item("u1", "claude", "2024-03-05T12:00:00Z", "hourly"),
            item("u2", "gpt-4", "2024-03-05T12:00:00Z", "hourly"),
            item("u1", "gpt-4", "2024-03-05T12:00:00Z", "hourly", ns="ns2"),
        ],
    ),
    "rows-unreadable-items": dict(
        description="items that are not readable snapshots are skipped with their index and reason, "
        "never guessed at: not JSON, a bucket item, a key that is not a window key, a suffix "
        "contradicting the window attribute, a non-integer counter, an exponent",
        function="rows",
        items=[
            "{not json",
            {"PK": {"S": "ns1/BUCKET#u1#gpt-4#0"}, "SK": {"S": "#STATE"}, "b_tpm_tc": {"N": "5"}},
            item("u1", "gpt-4", "2024-03-05T10:30:00Z", "hourly"),
            item("u1", "gpt-4", "2024-03-05T00:00:00Z", "daily", extra={"window": {"S": "hourly"}}),
            item("u1", "gpt-4", "2024-03-05T11:00:00Z", "hourly", counters={"tpm": "1.5"}),
            item("u1", "gpt-4", "2024-03-05T12:00:00Z", "hourly", counters={"tpm": "1E3"}),
            item("u1", "gpt-4", "2024-03-05T13:00:00Z", "hourly"),
        ],
    ),
    "rows-bad-time": dict(
        description="a query time in no accepted form is an error naming it",
        function="rows",
        query={"from": "2024-03-05 10:00"},
        items=[item("u1", "gpt-4", "2024-03-05T10:00:00Z", "hourly")],
    ),
    "summaries-per-window": dict(
        description="totals, total_events and the average per window, per entity, resource and "
        "window; the earliest and latest window_start",
        function="summaries",
        query={"entity": "u1"},
        items=[
            item("u1", "gpt-4", "2024-03-05T10:00:00Z", "hourly", counters={"tpm": 100, "rpm": 1}, events=2),
            item("u1", "gpt-4", "2024-03-05T11:00:00Z", "hourly", counters={"tpm": 51}, events=1),
            item("u1", "gpt-4", "2024-03-05T00:00:00Z", "daily", counters={"tpm": 151, "rpm": 1}, events=3),
            item("u1", "claude", "2024-03-05T00:00:00Z", "daily", counters={"tpm": -7}, events=1),
            item("u2", "gpt-4", "2024-03-05T00:00:00Z", "daily", counters={"tpm": 1}, events=1),
        ],
    ),
    "summaries-38-digit-counters": dict(
        description="counters of 38 digits sum exactly (128-bit), negatives included",
        function="summaries",
        items=[
            item("u1", "r", "2024-03-05T10:00:00Z", "hourly", counters={"tpm": "99999999999999999999999999999999999999"}),
            item("u1", "r", "2024-03-05T11:00:00Z", "hourly", counters={"tpm": "-99999999999999999999999999999999999998"}),
        ],
    ),
    "summaries-overflow": dict(
        description="a sum beyond 128 bits is an error naming the counter",
        function="summaries",
        items=[item("u1", "r", f"2024-03-05T{h:02}:00:00Z", "hourly",
                    counters={"tpm": "99999999999999999999999999999999999999"}) for h in range(3)],
    ),
    "period-across-a-year": dict(
        description="the last 3 complete months before 2024-03-15: December to February",
        function="average-period", months=3, now_ms=NOW,
    ),
    "period-bad-months": dict(
        description="0 months is refused", function="average-period", months=0, now_ms=NOW,
    ),
    "period-clock-out-of-range": dict(
        description="a period that would start before year 1 is refused",
        function="average-period", months=2, now_ms="-62135596800000",
    ),
    "average-monthly-keys": dict(
        description="every month of the period has its monthly item: monthly answers, complete, "
        "3 items; the current month's item is outside the period",
        function="monthly-average", months=3, now_ms=NOW, whole_period=False, query={"entity": "u1"},
        items=[
            item("u1", "gpt-4", "2023-12-01T00:00:00Z", "monthly", counters={"tpm": 100}, events=4),
            item("u1", "gpt-4", "2024-01-01T00:00:00Z", "monthly", counters={"tpm": 200}, events=4),
            item("u1", "gpt-4", "2024-02-01T00:00:00Z", "monthly", counters={"tpm": 301}, events=4),
            item("u1", "gpt-4", "2024-03-01T00:00:00Z", "monthly", counters={"tpm": 9999}, events=4),
        ],
    ),
    "average-monthly-keys-missing": dict(
        description="from the monthly keys alone, a missing month leaves the answer incomplete "
        "(the host then reads the period's range)",
        function="monthly-average", months=3, now_ms=NOW, whole_period=False,
        items=[
            item("u1", "gpt-4", "2024-01-01T00:00:00Z", "monthly", counters={"tpm": 200}),
            item("u1", "gpt-4", "2024-02-01T00:00:00Z", "monthly", counters={"tpm": 300}),
        ],
    ),
    "average-monthly-covers-range": dict(
        description="given the whole period, monthly answers when every month with finer items has "
        "its monthly item (a month without usage has none)",
        function="monthly-average", months=3, now_ms=NOW, whole_period=True,
        items=[
            item("u1", "gpt-4", "2024-01-01T00:00:00Z", "monthly", counters={"tpm": 200}),
            item("u1", "gpt-4", "2024-01-09T00:00:00Z", "daily", counters={"tpm": 200}),
            item("u1", "gpt-4", "2024-01-09T05:00:00Z", "hourly", counters={"tpm": 200}),
        ],
    ),
    "average-daily-fallback": dict(
        description="monthly switched on in February: January's daily items have no monthly item, "
        "so daily answers; per resource",
        function="monthly-average", months=3, now_ms=NOW, whole_period=True,
        items=[
            item("u1", "gpt-4", "2024-02-01T00:00:00Z", "monthly", counters={"tpm": 30}),
            item("u1", "gpt-4", "2024-02-02T00:00:00Z", "daily", counters={"tpm": 30}),
            item("u1", "gpt-4", "2024-01-20T00:00:00Z", "daily", counters={"tpm": 11}),
            item("u1", "gpt-4", "2024-01-20T03:00:00Z", "hourly", counters={"tpm": 11}),
            item("u1", "claude", "2023-12-01T00:00:00Z", "monthly", counters={"tpm": 1}),
            item("u1", "claude", "2024-01-01T00:00:00Z", "monthly", counters={"tpm": 2}),
            item("u1", "claude", "2024-02-01T00:00:00Z", "monthly", counters={"tpm": 4}),
        ],
    ),
    "average-hourly-fallback": dict(
        description="an hourly item whose day has no daily item: hourly answers; incomplete when "
        "a daily item's day has no hourly item",
        function="monthly-average", months=2, now_ms=NOW, whole_period=True,
        items=[
            item("u1", "gpt-4", "2024-02-03T07:00:00Z", "hourly", counters={"tpm": 5}),
            item("u1", "gpt-4", "2024-02-04T00:00:00Z", "daily", counters={"tpm": 6}),
        ],
    ),
    "reconcile-consistent": dict(
        description="reconcile: daily items equal their hourly sums and the monthly item its daily "
        "sum (a counter absent on one side counts as 0); nothing drifts",
        function="reconcile",
        items=[
            item("u1", "gpt-4", "2024-03-05T10:00:00Z", "hourly", counters={"tpm": 10, "rpm": 1}, events=2),
            item("u1", "gpt-4", "2024-03-05T11:00:00Z", "hourly", counters={"tpm": 5}, events=1),
            item("u1", "gpt-4", "2024-03-05T00:00:00Z", "daily", counters={"tpm": 15, "rpm": 1}, events=3),
            item("u1", "gpt-4", "2024-03-06T10:00:00Z", "hourly", counters={"tpm": 4, "rpm": 0}, events=1),
            item("u1", "gpt-4", "2024-03-06T00:00:00Z", "daily", counters={"tpm": 4}, events=1),
            item("u1", "gpt-4", "2024-03-01T00:00:00Z", "monthly", counters={"tpm": 19, "rpm": 1}, events=4),
        ],
    ),
    "reconcile-consumption-bound": dict(
        description="reconcile: the hourly sums against the bucket items' b_{limit}_tc, summed over "
        "shards (current-format #STATE items and an old-format #BUCKET# item); 1000 x the hourly sum "
        "may not exceed it: u1/gpt-4 tpm is within it, u1/gpt-4 rpm one millitoken short exceeds it, "
        "u2/claude has no bucket (unchecked); wcu and {limit}#od are not compared; a bucket item "
        "with a tc that is not an integer is skipped with its reason",
        function="reconcile",
        items=[
            item("u1", "gpt-4", "2024-03-05T10:00:00Z", "hourly", counters={"tpm": 10, "rpm": 2, "tpm#od": 9}, events=2),
            item("u1", "gpt-4", "2024-03-05T11:00:00Z", "hourly", counters={"tpm": 5, "rpm": 1}, events=2),
            item("u1", "gpt-4", "2024-03-05T00:00:00Z", "daily", counters={"tpm": 15, "rpm": 3, "tpm#od": 9}, events=4),
            item("u2", "claude", "2024-03-05T10:00:00Z", "hourly", counters={"tpm": 7}),
            item("u3", "gpt-4", "2024-03-05T10:00:00Z", "hourly", counters={"tpm": 1}),
            {"PK": {"S": "ns1/BUCKET#u1#gpt-4#0"}, "SK": {"S": "#STATE"}, "entity_id": {"S": "u1"},
             "b_tpm_tc": {"N": "9000"}, "b_rpm_tc": {"N": "2000"}, "b_wcu_tc": {"N": "0"}, "shard_count": {"N": "2"}},
            {"PK": {"S": "ns1/BUCKET#u1#gpt-4#1"}, "SK": {"S": "#STATE"}, "entity_id": {"S": "u1"},
             "b_tpm_tc": {"N": "6500"}, "b_rpm_tc": {"N": "999"}, "shard_count": {"N": "2"}},
            {"PK": {"S": "ns1/ENTITY#u3"}, "SK": {"S": "#BUCKET#gpt-4"}, "entity_id": {"S": "u3"},
             "b_tpm_tc": {"N": "1000"}},
            {"PK": {"S": "ns1/BUCKET#u4#gpt-4#0"}, "SK": {"S": "#STATE"}, "b_tpm_tc": {"S": "12"}},
        ],
    ),
    "reconcile-drifts": dict(
        description="reconcile: an edited hourly item makes its day drift; a missing daily item "
        "inside the span drifts with present=false and makes its month drift; upstream's "
        "unsuffixed daily item is read through its window attribute",
        function="reconcile",
        items=[
            item("u1", "gpt-4", "2024-03-05T10:00:00Z", "hourly", counters={"tpm": 11}),
            item("u1", "gpt-4", "2024-03-05T00:00:00Z", "daily", counters={"tpm": 10}),
            item("u1", "gpt-4", "2024-03-06T10:00:00Z", "hourly", counters={"tpm": 4}),
            item("u1", "gpt-4", "2024-03-07T10:00:00Z", "hourly", counters={"tpm": 1}),
            item("u1", "gpt-4", "2024-03-07T00:00:00Z", "daily", counters={"tpm": 1}),
            item("u1", "gpt-4", "2024-03-01T00:00:00Z", "monthly", counters={"tpm": 15}, events=3),
            item("u2", "gpt-4", "2024-03-05T10:00:00Z", "hourly", counters={"tpm": 3}),
            item("u2", "gpt-4", "2024-03-05T00:00:00Z", "daily", suffixed=False, counters={"tpm": 3}),
        ],
    ),
    "reconcile-span-and-range": dict(
        description="reconcile: the daily window switched on mid-day (its first day is not "
        "compared); `to` keeps only periods that end within it; window=daily skips monthly",
        function="reconcile",
        query={"window": "daily", "to": "2024-03-07"},
        items=[
            item("u1", "gpt-4", "2024-03-05T10:00:00Z", "hourly", counters={"tpm": 10}),
            item("u1", "gpt-4", "2024-03-06T01:00:00Z", "hourly", counters={"tpm": 3}),
            item("u1", "gpt-4", "2024-03-06T10:00:00Z", "hourly", counters={"tpm": 4}),
            item("u1", "gpt-4", "2024-03-06T00:00:00Z", "daily", counters={"tpm": 4}),
            item("u1", "gpt-4", "2024-03-07T10:00:00Z", "hourly", counters={"tpm": 1}),
            item("u1", "gpt-4", "2024-03-07T00:00:00Z", "daily", counters={"tpm": 2}),
            item("u1", "gpt-4", "2024-03-08T10:00:00Z", "hourly", counters={"tpm": 1}),
            item("u1", "gpt-4", "2024-03-08T00:00:00Z", "daily", counters={"tpm": 9}),
            item("u1", "gpt-4", "2024-03-01T00:00:00Z", "monthly", counters={"tpm": 99}),
        ],
    ),
    "backfill-daily-from-hourly": dict(
        description="backfill daily from hourly: counters and total_events summed per day, each "
        "watermark the highest of the day's hourly items, ttl from now_ms and ttl_days; the "
        "existing daily item and other windows are not inputs; a day that ended less than 25 "
        "hours before now_ms is held",
        function="backfill", window="daily", now_ms="1709776800000", ttl_days=90,
        items=[
            item("u1", "gpt-4", "2024-03-05T10:00:00Z", "hourly", counters={"tpm": 10, "rpm": 1}, events=2,
                 extra={"wm#0": {"S": "0" * 38 + "15"}, "wm#1": {"S": WM}}),
            item("u1", "gpt-4", "2024-03-05T11:00:00Z", "hourly", counters={"tpm": 5}, events=1,
                 extra={"wm#0": {"S": "0" * 38 + "20"}}),
            item("u1", "gpt-4", "2024-03-05T00:00:00Z", "daily", counters={"tpm": 99}),
            item("u1", "gpt-4", "2024-03-06T09:00:00Z", "hourly", counters={"tpm": 4}),
            item("u2", "claude", "2024-03-04T23:00:00Z", "hourly", counters={"tpm": 7}),
        ],
    ),
    "backfill-monthly-held-and-range": dict(
        description="backfill monthly from daily: a month with a malformed watermark on a daily "
        "item is held; `from` keeps whole months only; hourly items are not inputs",
        function="backfill", window="monthly", now_ms=NOW, ttl_days=30, query={"from": "2024-01"},
        items=[
            item("u1", "gpt-4", "2023-12-05T00:00:00Z", "daily", counters={"tpm": 1}),
            item("u1", "gpt-4", "2024-01-05T00:00:00Z", "daily", counters={"tpm": 2}, extra={"wm#0": {"S": WM}}),
            item("u1", "gpt-4", "2024-01-06T00:00:00Z", "daily", counters={"tpm": 3}),
            item("u1", "gpt-4", "2024-01-06T05:00:00Z", "hourly", counters={"tpm": 3}),
            item("u1", "gpt-4", "2024-02-05T00:00:00Z", "daily", counters={"tpm": 4}, extra={"wm#0": {"S": "7"}}),
        ],
    ),
    "reconcile-bad-time": dict(
        description="reconcile: a `to` that is not a time is refused",
        function="reconcile", query={"to": "March"}, items=[],
    ),
}


def main():
    for name, spec in VECTORS.items():
        d = HERE / name
        d.mkdir(exist_ok=True)
        (d / "input.json").write_text(json.dumps(spec, indent=1) + "\n")
    print(f"{len(VECTORS)} reader vectors written under {HERE}")


if __name__ == "__main__":
    main()
