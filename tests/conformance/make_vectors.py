#!/usr/bin/env python3
"""Write the inputs of the conformance vectors (input.json + event.json per directory).

    python3 tests/conformance/make_vectors.py [--shared ../shared]

Synthetic vectors are built here, one per rule or fix; `real-*` vectors copy
stream batches of the Python library's own traffic from
`../shared/oracle/vectors/1/`. Expected plans (`plan.json`) are not written
here: `ZAE_BLESS=1 cargo test -p zae-planner --test conformance` writes them
from the native planner, and review of their diff is part of any change.
Deterministic: running it twice gives identical files.
"""

import argparse
import base64
import hashlib
import json
import shutil
from pathlib import Path

HERE = Path(__file__).resolve().parent
T0 = 1704067195000  # 2023-12-31T23:59:55Z
NOW = 1704067200000  # 2024-01-01T00:00:00Z

BASE_CONFIG = {
    "table_name": "rate-limits",
    "windows": ["hourly", "daily"],
    "snapshot_ttl_days": 90,
    "archive_bucket": "audit-archive",
    "max_shard_count": 32,
}

_seq = [10_000_000_000_000_000_000]


class RawNumber:
    """A JSON number written into input.json exactly as given (json.dumps cannot write `1E+2` or keep `-0.0`
    apart from a float); see dumps()."""

    def __init__(self, text):
        self.text = text


def dumps(value, **kw):
    """json.dumps, with each RawNumber written verbatim."""
    raws = []

    def default(o):
        if isinstance(o, RawNumber):
            raws.append(o.text)
            return f"\x00raw{len(raws) - 1}\x00"
        raise TypeError(f"{o!r} is not JSON")

    text = json.dumps(value, default=default, **kw)
    for i, raw in enumerate(raws):
        text = text.replace(json.dumps(f"\x00raw{i}\x00"), raw)
    return text


def without_entity(record):
    """The record with `entity_id` removed from both images."""
    for image in ("NewImage", "OldImage"):
        record["dynamodb"][image].pop("entity_id", None)
    return record


def next_seq():
    _seq[0] += 100
    return str(_seq[0])


def n(v):
    return {"N": str(v)}


def s(v):
    return {"S": v}


def bucket(pk, limits, rf=T0, shard_count=1, old_shard_count=None, sk="#STATE", entity=None, approx=None,
           seq=None, extra=None, event="MODIFY"):
    """A bucket record. limits: list of (name, old_tc, new_tc, tk, cp, ra, rp)."""
    ns, rest = pk.split("/", 1) if "/" in pk else ("", pk)
    if entity is None:
        entity = rest.split("#")[1] if rest.startswith(("BUCKET#", "ENTITY#")) else "e"
    new = {"PK": s(pk), "SK": s(sk), "entity_id": s(entity)}
    old = {"PK": s(pk), "SK": s(sk), "entity_id": s(entity)}
    if rest.startswith("BUCKET#"):
        parts = rest.split("#")
        res, shard = parts[2], parts[-1]
        new.update({"GSI2PK": s(f"{ns}/RESOURCE#{res}"), "GSI2SK": s(f"BUCKET#{entity}#{shard}"),
                    "GSI3PK": s(f"{ns}/ENTITY#{entity}"), "GSI3SK": s(f"BUCKET#{res}#{shard}"),
                    "GSI4PK": s(ns), "GSI4SK": s(f"BUCKET#{entity}#{res}#{shard}"), "resource": s(res)})
    for name, otc, ntc, tk, cp, ra, rp in limits:
        new.update({f"b_{name}_cp": n(cp), f"b_{name}_ra": n(ra), f"b_{name}_rp": n(rp),
                    f"b_{name}_tc": n(ntc), f"b_{name}_tk": n(tk)})
        old.update({f"b_{name}_cp": n(cp), f"b_{name}_ra": n(ra), f"b_{name}_rp": n(rp),
                    f"b_{name}_tc": n(otc), f"b_{name}_tk": n(tk)})
    if rf is not None:
        new["rf"] = n(rf)
        old["rf"] = n(rf)
    if shard_count is not None:
        new["shard_count"] = n(shard_count)
        old["shard_count"] = n(old_shard_count if old_shard_count is not None else shard_count)
    if extra:
        new.update(extra)
    ddb = {"Keys": {"PK": s(pk), "SK": s(sk)}, "NewImage": new, "OldImage": old,
           "SequenceNumber": seq or next_seq(), "SizeBytes": 512, "StreamViewType": "NEW_AND_OLD_IMAGES"}
    if approx is not None:
        ddb["ApproximateCreationDateTime"] = approx
    if event == "INSERT":
        del ddb["OldImage"]
    return {"eventID": "ev-" + ddb["SequenceNumber"][-6:], "eventName": event, "eventVersion": "1.1",
            "eventSource": "aws:dynamodb", "awsRegion": "us-east-1", "dynamodb": ddb,
            "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/rate-limits/stream/2024-01-01T00:00:00.000"}


def audit(pk, event_id, ts, action="limits_set", details=None, approx=1705363200, extra=None, drop=()):
    old = {"PK": s(pk), "SK": s(f"#AUDIT#{event_id}"), "entity_id": s(pk.split("AUDIT#", 1)[1]),
           "event_id": s(event_id), "timestamp": s(ts) if isinstance(ts, str) else ts, "action": s(action),
           "principal": s("arn:aws:iam::123456789012:user/admin"), "resource": {"NULL": True},
           "details": {"M": details if details is not None else {"limits": {"L": [{"M": {"name": s("rpm"), "capacity": n(100)}}]}}},
           "ttl": n(1713139200), "GSI4PK": s(pk.split("/")[0]), "GSI4SK": s(pk)}
    if extra:
        old.update(extra)
    for k in drop:
        old.pop(k, None)
    seq = next_seq()
    ddb = {"ApproximateCreationDateTime": approx, "Keys": {"PK": s(pk), "SK": s(f"#AUDIT#{event_id}")},
           "OldImage": old, "SequenceNumber": seq, "SizeBytes": 400, "StreamViewType": "NEW_AND_OLD_IMAGES"}
    if approx is None:
        del ddb["ApproximateCreationDateTime"]
    return {"eventID": "ev-" + seq[-6:], "eventName": "REMOVE", "eventVersion": "1.1", "eventSource": "aws:dynamodb",
            "awsRegion": "us-east-1", "dynamodb": ddb,
            "userIdentity": {"type": "Service", "principalId": "dynamodb.amazonaws.com"}}


TPM = ("tpm", 0, 20_000_000, 5_000_000, 100_000_000, 100_000_000, 60_000)
WCU_LOW = ("wcu", 0, 1000, 150_000, 1_000_000, 1_000_000, 1000)
WCU_OK = ("wcu", 0, 1000, 999_000, 1_000_000, 1_000_000, 1000)
RPM = ("rpm", 4_000, 5_000, 55_000, 60_000, 60_000, 60_000)
P0 = "ns/BUCKET#u1#gpt-4#0"

VECTORS = []


def vector(name, description, records=None, config=None, now=NOW, raw_event=None, observed=None, invocation="req-1",
           read_results=None):
    VECTORS.append({
        "name": name, "description": description,
        "config": {**BASE_CONFIG, **(config or {})}, "now_ms": str(now), "invocation_id": invocation,
        "event": raw_event if raw_event is not None else json.dumps({"Records": records}, indent=1) + "\n",
        "observed": observed, "read_results": read_results,
    })


def build():
    # --- worked examples (docs/specification.md#worked-examples) -----------------------------------
    vector("golden-1-spec13", "Worked example 1: snapshot keys from rf (no ApproximateCreationDateTime), "
           "refill of tpm 8333333 plus wcu's accrued refill (W10), guarded (W19), shard doubling 1->2",
           [bucket(P0, [TPM, WCU_LOW])])
    vector("golden-2-midnight-w4", "Worked example 2 with W4 fixed: at 00:30 the hourly and daily items differ",
           [bucket(P0, [TPM, WCU_OK], rf=1704069000000)], now=1704069005000)
    vector("window-monthly", "hourly,daily,monthly: three distinct items per delta (W4)",
           [bucket(P0, [TPM, WCU_OK], approx=1709289322)], config={"windows": ["hourly", "daily", "monthly"]},
           now=1709289322000)
    vector("window-from-approx-time-w5", "the window comes from ApproximateCreationDateTime, not the old rf (W5)",
           [bucket(P0, [RPM, WCU_OK], rf=1704060000000, approx=1704150000)], now=1704150001000)
    vector("window-rf-missing-1970", "no rf and no ApproximateCreationDateTime: 1970 windows, counted; no refill",
           [bucket(P0, [RPM, WCU_OK], rf=None)])
    vector("window-year-10000-invalid", "a window time past year 9999 makes the record invalid, the rest is planned",
           [bucket(P0, [RPM], approx=253402300800), bucket("ns/BUCKET#u2#gpt-4#0", [RPM], approx=1704067195)])
    # --- deltas and coalescing -----------------------------------------------------------------
    vector("delta-refund-negative", "a refund (tc down) is a negative delta, floored per delta: -1500 -> -2",
           [bucket(P0, [("tpm", 10_000, 8_500, 0, 0, 0, 0)], approx=1704067195)])
    vector("delta-sub-token", "a 999-millitoken delta writes 0 tokens and still counts one event (W7 kept)",
           [bucket(P0, [("tpm", 0, 999, 0, 0, 0, 0)], approx=1704067195)])
    vector("coalesce-same-item-w6-w7", "three records of one bucket in one hour: one write, counters equal the "
           "per-delta floored sums (1500+1500-1 -> 1+1-1), total_events 3",
           [bucket(P0, [("tpm", 0, 1500, 0, 0, 0, 0)], approx=1704067100),
            bucket(P0, [("tpm", 1500, 3000, 0, 0, 0, 0)], approx=1704067150),
            bucket(P0, [("tpm", 3000, 2999, 0, 0, 0, 0)], approx=1704067190)])
    vector("coalesce-two-limits", "tpm and rpm in one record: one item write with two counters, total_events 2",
           [bucket(P0, [TPM, RPM], approx=1704067195)])
    vector("namespaces-separate", "the same entity in two namespaces aggregates separately",
           [bucket("ns1/BUCKET#e#r#0", [RPM], approx=1704067195), bucket("ns2/BUCKET#e#r#0", [RPM], approx=1704067195)])
    vector("shards-share-snapshot-item", "two shards of one bucket feed one snapshot item: two watermarks",
           [bucket("ns/BUCKET#u1#gpt-4#0", [RPM], shard_count=2, approx=1704067195),
            bucket("ns/BUCKET#u1#gpt-4#1", [RPM], shard_count=2, approx=1704067196)])
    vector("old-format-bucket-w20", "an old-format bucket: snapshot as usual, refill addresses the old item (W20), "
           "no shard doubling",
           [bucket("default/ENTITY#user-1", [TPM, WCU_LOW], sk="#BUCKET#gpt-4", entity="user-1")])
    vector("wcu-only-w8", "only wcu changed: no snapshot, but the refill and shard stages still run (W8)",
           [bucket(P0, [WCU_LOW, ("tpm", 5, 5, 0, 100_000_000, 100_000_000, 60_000)])])
    vector("zero-delta", "an unchanged tc writes nothing", [bucket(P0, [("tpm", 5, 5, 10, 100, 100, 1000)])])
    vector("limit-names-w9", "limit names with '-', '.' and '_' go through placeholders everywhere (W9)",
           [bucket(P0, [("out-tpm", 0, 9_000_000, 0, 10_000_000, 10_000_000, 60_000),
                        ("my.limit", 0, 3_000, 0, 10_000_000, 10_000_000, 60_000),
                        ("tpm_out", 0, 2_000, 9_000_000, 10_000_000, 10_000_000, 60_000)], approx=1704067195)])
    vector("reserved-limit-names", "limits named ttl and total_events cannot be counters: counted, logged, "
           "not written; the other limit is",
           [bucket(P0, [("ttl", 0, 5000, 0, 0, 0, 0), ("total_events", 0, 7000, 0, 0, 0, 0), RPM], approx=1704067195)])
    vector("non-bucket-items", "META, LIMIT, RESOURCE config, snapshot and INSERT records are skipped with reasons",
           [bucket("ns/ENTITY#e", [RPM], sk="#META"), bucket("ns/ENTITY#e", [RPM], sk="#LIMIT#gpt-4#rpm"),
            bucket("ns/RESOURCE#gpt-4", [RPM], sk="#CONFIG"), bucket(P0, [RPM], event="INSERT"),
            bucket("ns/ENTITY#e", [], sk="#USAGE#gpt-4#2024-01-01T00:00:00Z")])
    vector("pre-migration-unprefixed", "an un-namespaced bucket PK is skipped with a warning",
           [bucket("BUCKET#u1#gpt-4#0", [RPM]), bucket(P0, [RPM], approx=1704067195)])
    vector("latest-image-wins-w11-w17", "records out of sequence order: the highest sequence number's image "
           "decides rf, tk and shard_count",
           [bucket(P0, [("tpm", 5_000_000, 20_000_000, 5_000_000, 100_000_000, 100_000_000, 60_000)],
                   rf=T0, shard_count=2, seq="10000000000000009000"),
            bucket(P0, [("tpm", 0, 5_000_000, 90_000_000, 100_000_000, 100_000_000, 60_000)],
                   rf=T0 - 60_000, shard_count=1, seq="10000000000000008000")])
    # --- refill ---------------------------------------------------------------------------------
    vector("refill-sufficient", "projected tokens cover consumption: no refill",
           [bucket(P0, [("tpm", 0, 1_000_000, 90_000_000, 100_000_000, 100_000_000, 60_000)])])
    vector("refill-zero-elapsed", "now == rf: nothing accrues, no refill", [bucket(P0, [TPM], rf=NOW)])
    vector("refill-w10-every-limit", "tpm needs a refill; rpm accrued too and receives it in the same write (W10)",
           [bucket(P0, [TPM, ("rpm", 0, 1000, 30_000, 60_000, 60_000, 60_000)])])
    accrual_only = bucket(P0, [TPM], extra={"b_rph_cp": n(3_600_000), "b_rph_ra": n(3_600_000), "b_rph_rp": n(3_600_000),
                                            "b_rph_tk": n(0)})
    vector("refill-accrual-only-limit", "a limit with no consumption counter never triggers a refill but receives "
           "its accrual when rf moves (W10)", [accrual_only])
    vector("refill-sharded-division", "shard_count 4 divides cp and ra per shard", [bucket(P0, [TPM], shard_count=4)])
    vector("refill-negative-consumption", "a refund never triggers a refill",
           [bucket(P0, [("tpm", 20_000_000, 0, 0, 100_000_000, 100_000_000, 60_000)])])
    vector("refill-big-numbers", "i128 math: products beyond 2^63, numbers beyond 2^53, 40-digit sequence number",
           [bucket(P0, [("tpm", 0, 90_000_000_000_000_000_000, 12_345_678_901_234_567_890, 99_999_999_999_999_999_999_999,
                         99_999_999_999_999_999_999_999, 1000)], seq="9" * 40, approx=1704067195)])
    # --- sharding -------------------------------------------------------------------------------
    vector("shard-threshold-exact", "wcu at exactly 20%: no doubling",
           [bucket(P0, [("wcu", 0, 1000, 200_000, 1_000_000, 1_000_000, 1000)], rf=NOW)])
    vector("shard-cap-w12", "shard_count 32 at the default maximum: no doubling, a warning (W12)",
           [bucket(P0, [("wcu", 0, 1000, 10_000, 1_000_000, 1_000_000, 1000)], rf=NOW, shard_count=32)])
    vector("shard-cap-raised", "MAX_SHARD_COUNT 64 lets 32 double to 64",
           [bucket(P0, [("wcu", 0, 1000, 10_000, 1_000_000, 1_000_000, 1000)], rf=NOW, shard_count=32)],
           config={"max_shard_count": 64})
    vector("shard-not-shard-zero", "a hot shard 1 does not double (only shard 0 owns shard_count)",
           [bucket("ns/BUCKET#u1#gpt-4#1", [("wcu", 0, 1000, 10_000, 1_000_000, 1_000_000, 1000)], rf=NOW, shard_count=2)])
    vector("propagate-2-to-4", "shard 0 raised 2->4: update shard 1, create shards 2 and 3 with per-shard tokens",
           [bucket(P0, [("rpm", 0, 1000, 50_000, 100_000_001, 100_000_001, 60_000), WCU_OK],
                   shard_count=4, old_shard_count=2, rf=NOW)])
    vector("propagate-alone-w8", "a shard_count change with no consumption still propagates (W8)",
           [bucket(P0, [("rpm", 7, 7, 50_000, 100_000_000, 100_000_000, 60_000)], shard_count=2, old_shard_count=1, rf=NOW)])
    vector("propagate-two-steps", "1->2 then 2->4 in one batch: coalesced from the latest image",
           [bucket(P0, [("rpm", 7, 7, 50_000, 100_000_000, 100_000_000, 60_000)], shard_count=2, old_shard_count=1, rf=NOW),
            bucket(P0, [("rpm", 7, 7, 50_000, 100_000_000, 100_000_000, 60_000)], shard_count=4, old_shard_count=2, rf=NOW)])
    vector("propagate-above-max", "shard_count raised beyond MAX_SHARD_COUNT: propagation stops at the maximum",
           [bucket(P0, [("rpm", 7, 7, 50_000, 100_000_000, 100_000_000, 60_000)], shard_count=8, old_shard_count=2, rf=NOW)],
           config={"max_shard_count": 4})
    # --- archive --------------------------------------------------------------------------------
    vector("archive-basic", "one audit deletion: one object, stable key from its sequence number (W14)",
           [audit("ns/AUDIT#user-1", "01HQAAAAAAAAAAAAAAAAAAAAAA", "2024-01-15T14:30:00Z")])
    vector("archive-multi-day-w13", "events of two UTC days (one via a -05:00 offset) go to two objects (W13)",
           [audit("ns/AUDIT#user-1", "01HQB1", "2024-01-15T14:30:00Z"),
            audit("ns/AUDIT#user-1", "01HQB2", "2024-01-15T23:30:00-05:00"),
            audit("ns/AUDIT#user-2", "01HQB3", "2024-01-16T08:00:00Z")])
    vector("archive-legacy-and-gaps-w15", "a legacy un-namespaced audit key, an item without action and one without "
           "event_id are all archived (nothing lost)",
           [audit("AUDIT#old-user", "01HQC1", "2024-01-15T10:00:00Z"),
            audit("ns/AUDIT#user-1", "01HQC2", "2024-01-15T10:00:01Z", drop=("action",)),
            audit("ns/AUDIT#user-1", "01HQC3", "2024-01-15T10:00:02Z", drop=("event_id",))])
    vector("archive-values", "DynamoDB JSON to plain JSON: ints, floats in Python repr, big ints, bad numbers kept "
           "verbatim, sets unchanged, nesting",
           [audit("ns/AUDIT#user-1", "01HQD1", "2024-01-15T10:00:00Z", details={
               "int": n(42), "neg0": n("-0"), "float": n("3.14"), "trail": n("1.50"), "exp": n("1E+2"),
               "tiny": n("0.00001"), "huge": n("12345678901234567890123456789012345678"), "big": n("1E+16"),
               "bad": n("1.2.3"), "ss": {"SS": ["x", "y"]}, "ns": {"NS": ["1", "2"]}, "b": {"B": "AAEC"},
               "bool": {"BOOL": True}, "null": {"NULL": True},
               "nested": {"L": [{"M": {"k": {"L": [n(100), s("v")]}}}, {"M": {}}]}})])
    vector("archive-unicode-and-large", "non-ASCII text is \\u-escaped in NDJSON (and raw UTF-8 in log JSON); "
           "300 events make a large gzip body",
           [audit("ns/AUDIT#usér-é", f"01HQE{i:04d}", f"2024-01-15T{i % 24:02d}:00:00Z",
                  details={"note": s("naïve 😀 \u2028 \"q\" \\ / \t"), "i": n(i)}) for i in range(300)])
    vector("archive-bad-timestamp", "an unparsable timestamp is partitioned by the record's "
           "ApproximateCreationDateTime; a non-string one too",
           [audit("ns/AUDIT#user-1", "01HQF1", "not-a-date"), audit("ns/AUDIT#user-1", "01HQF2", n(5))])
    vector("archive-disabled", "with archival off, audit deletions are skipped with a reason",
           [audit("ns/AUDIT#user-1", "01HQG1", "2024-01-15T10:00:00Z")], config={"archive_bucket": None})
    # --- malformed and errors -------------------------------------------------------------------
    good = bucket(P0, [RPM], approx=1704067195)
    no_new = bucket("ns/BUCKET#u3#gpt-4#0", [RPM]); del no_new["dynamodb"]["NewImage"]
    bad_tc = bucket("ns/BUCKET#u4#gpt-4#0", [RPM]); bad_tc["dynamodb"]["NewImage"]["b_rpm_tc"] = n("not_a_number")
    bad_rf = bucket("ns/BUCKET#u5#gpt-4#0", [RPM]); bad_rf["dynamodb"]["NewImage"]["rf"] = n("1.5")
    bad_sc = bucket("ns/BUCKET#u6#gpt-4#0", [RPM]); bad_sc["dynamodb"]["NewImage"]["shard_count"] = n("two")
    no_entity = bucket("ns/BUCKET#u7#gpt-4#0", [RPM]); del no_entity["dynamodb"]["NewImage"]["entity_id"]
    bad_pk = bucket("ns/BUCKET#u8#0", [RPM])
    no_seq = bucket("ns/BUCKET#u9#gpt-4#0", [RPM]); del no_seq["dynamodb"]["SequenceNumber"]
    bad_seq = bucket("ns/BUCKET#u10#gpt-4#0", [RPM]); bad_seq["dynamodb"]["SequenceNumber"] = "12ab"
    no_ddb = {"eventName": "MODIFY", "eventID": "x"}
    ddb_str = {"eventName": "MODIFY", "dynamodb": "invalid"}
    not_obj = "just a string"
    no_name = bucket("ns/BUCKET#u11#gpt-4#0", [RPM]); del no_name["eventName"]
    audit_no_old = audit("ns/AUDIT#user-1", "01HQH1", "2024-01-15T10:00:00Z"); del audit_no_old["dynamodb"]["OldImage"]
    vector("malformed-records", "every kind of malformed record is invalid with its reason and sequence number; "
           "the valid records around them are planned",
           [good, no_new, bad_tc, bad_rf, bad_sc, no_entity, bad_pk, no_seq, bad_seq, no_ddb, ddb_str, not_obj,
            no_name, audit_no_old, audit("ns/AUDIT#user-1", "01HQH2", "2024-01-15T10:00:00Z")])
    vector("error-not-json", "an event that is not JSON fails the whole batch as a value", raw_event="{not json")
    vector("error-records-not-list", "Records must be a list", raw_event='{"Records": {"a": 1}}')
    vector("error-bad-config", "a hand-built config with no windows is rejected",
           [good], config={"windows": []})
    vector("empty-batch", "no records: an empty plan with the start and summary logs", [])
    vector("missing-records-key", "an event without Records is an empty batch (upstream behaviour)", raw_event="{}")
    # --- re-planning (exactly-once) ----------------------------------------------------------------
    r1 = bucket(P0, [("tpm", 0, 1000, 0, 0, 0, 0)], approx=1704067100, seq="20000000000000000100")
    r2 = bucket(P0, [("tpm", 1000, 3000, 0, 0, 0, 0)], approx=1704067150, seq="20000000000000000200")
    r3 = bucket(P0, [("tpm", 3000, 6000, 0, 0, 0, 0)], approx=1704067190, seq="20000000000000000300")
    hourly_key = {"PK": s("ns/ENTITY#u1"), "SK": s("#USAGE#gpt-4#2023-12-31T23:00:00Z")}
    daily_key = {"PK": s("ns/ENTITY#u1"), "SK": s("#USAGE#gpt-4#2023-12-31T00:00:00Z#daily")}
    wm = lambda seq: s(seq.zfill(40))  # noqa: E731
    # Observed items name the snapshot write whose condition failed by its id, its position in the plan:
    # the hourly item's write comes first, then the daily (then the monthly) one.
    HOURLY, DAILY, MONTHLY = 0, 1, 2
    vector("replan-partial", "the hourly item already holds records up to 200: only record 300 remains, "
           "conditioned on exactly that watermark",
           [r1, r2, r3], observed=[{"write_id": HOURLY, "item": {**hourly_key, "tpm": n(3), "total_events": n(2),
                                                             "wm#0": wm("20000000000000000200")}}])
    vector("replan-all-applied", "both items already hold every record: nothing left to write",
           [r1, r2, r3], observed=[{"write_id": i, "item": {**k, "wm#0": wm("20000000000000000300")}}
                                   for i, k in ((HOURLY, hourly_key), (DAILY, daily_key))])
    vector("replan-item-gone", "the item vanished (TTL): rewrite everything, conditioned on no watermark",
           [r1, r2, r3], observed=[{"write_id": DAILY, "item": None}])
    vector("replan-malformed-watermark", "a watermark that is not 40 digits: no write, records invalid with reason",
           [r1, r2, r3], observed=[{"write_id": HOURLY, "item": {**hourly_key, "wm#0": n(5)}}])
    host_independence(r1, r2, r3, hourly_key, daily_key, (HOURLY, DAILY, MONTHLY))
    # --- records without entity_id (appended last: earlier vectors keep their sequence numbers) --------
    raised = without_entity(bucket(P0, [("rpm", 7, 7, 50_000, 100_000_000, 100_000_000, 60_000)],
                                   shard_count=4, old_shard_count=2, rf=NOW))
    used = without_entity(bucket("ns/BUCKET#u2#gpt-4#0", [("rpm", 0, 3000, 50_000, 100_000, 100_000, 60_000)],
                                 rf=NOW))
    vector("no-entity-id-propagates", "a bucket record without entity_id: skipped and counted for usage, refill and "
           "doubling (upstream skips it silently), but a raised shard_count still propagates from the key alone",
           [raised, used])
    vector("dead-letter-invalid-records", "with a dead-letter bucket, invalid records go into one gzip NDJSON "
           "object under dead-letter/ (whole record, sequence number, reason) in the plan's last write, which "
           "is required: once stored they count as handled", [good, bad_tc, no_seq, bad_rf],
           config={"dead_letter_bucket": "dead-letters"})
    # --- DynamoDB limits (docs/specification.md#dynamodb-limits; appended last) ------------------------
    long_res = "r" * 1000
    vector("limit-resource-too-long", "a resource of 1,000 bytes makes the snapshot SK 1,028 bytes (over 1,024): "
           "the record is invalid and in no write; the other record is planned",
           [bucket(f"ns/BUCKET#u1#{long_res}#0", [RPM], approx=1704067195),
            bucket("ns/BUCKET#u2#gpt-4#0", [RPM], approx=1704067195)])
    long_entity = "e" * 1010
    vector("limit-entity-too-long", "an entity of 1,010 bytes makes GSI2SK and GSI4SK of its snapshot item longer "
           "than 1,024 bytes: invalid, and no refill or doubling carries it",
           [bucket(f"ns/BUCKET#{long_entity}#gpt-4#0", [TPM, WCU_LOW], approx=1704067195)])
    vector("limit-empty-namespace", "a bucket PK with an empty namespace would write an empty GSI4PK: invalid",
           [bucket("/BUCKET#e#gpt-4#0", [RPM], approx=1704067195)])
    lo, hi = -int("84" + "9" * 36), int("84" + "9" * 36)
    vector("limit-counter-38-digits", "601 shards each adding ~1.7e35 tokens: the counter's sum has 39 significant "
           "digits, so every record feeding it is invalid",
           [bucket(f"ns/BUCKET#u1#gpt-4#{i}", [("rpm", lo, hi, 0, 0, 0, 0)], approx=1704067195, shard_count=None)
            for i in range(601)])
    big = int("9" * 38)
    vector("limit-refill-negative-cp", "b_rpm_cp -9.9e37 with b_rpm_tk +9.9e37: projected minus stored tokens "
           "overflows 128 bits; the record is invalid (never a wrapped refill)",
           [bucket(P0, [("rpm", 0, 5000, big, -big, 1000, 1000)], approx=1704067195)])
    vector("limit-100-sources-chunked", "100 shards feed one snapshot item: its condition would pass 300 operators, "
           "so the item is written in chunks of sources sorted by watermark name, each guarded by its own watermarks",
           [bucket(f"ns/BUCKET#u1#gpt-4#{i}", [("rpm", 0, 1000 + i, 0, 0, 0, 0)], approx=1704067195,
                   shard_count=None) for i in range(100)])

    build_017()


# --- zae-limiter 0.17 semantics (docs/specification.md#zae-limiter-017) -----------------------------
N17 = 1769904030000  # 2026-02-01T00:00:30Z
B17 = 1769903940000  # 2026-01-31T23:59:00Z
V17 = {"limiter": "0.17", "archive_bucket": None}
Q0 = "ns/BUCKET#k1#gpt-4#0"


def b17(limits, extra=None, rf=B17, shard_count=1, old_shard_count=None, pk=Q0, approx=1769903990):
    """A 0.17 bucket record: limits are (name, old_tc, new_tc, tk, cp, ra, rp[, {field: value}])."""
    plain = [lim[:7] for lim in limits]
    more = dict(extra or {})
    for lim in limits:
        for field, value in (lim[7] if len(lim) > 7 else {}).items():
            more[f"b_{lim[0]}_{field}"] = value
    return bucket(pk, plain, rf=rf, shard_count=shard_count, old_shard_count=old_shard_count, approx=approx,
                  extra=more)


def v17(name, description, records, now=N17, config=None, read_results=None):
    vector(name, description, records, config={**V17, **(config or {})}, now=now, read_results=read_results)


def shard_item(shard, rpd_tk, gc=None, shard_count=2, rf=N17 - 5_000):
    """An old shard of Q0's bucket as a consistent GetItem returns it."""
    item = {"PK": s(f"ns/BUCKET#k1#gpt-4#{shard}"), "SK": s("#STATE"), "entity_id": s("k1"), "rf": n(rf),
            "shard_count": n(shard_count), "rsched": s("1m0h0"),
            "b_rpd_tk": n(rpd_tk), "b_rpd_cp": n(100_000), "b_rpd_ra": n(0), "b_rpd_rp": n(1_000), "b_rpd_tc": n(0)}
    if gc is not None:
        item["b_rpd_gc"] = n(gc)
    return item


def build_017():
    soft = ("tpm", 0, 9_000_000, -1_000_000, 8_000_000, 8_000_000, 60_000, {"soft": n(1769990400000)})
    v17("v17-soft-overdraw", "a soft limit's delta that left the shard in debt adds 1 to tpm#od in the same "
        "snapshot write; a hard limit in debt and a soft one still in credit add nothing",
        [b17([soft, ("rpm", 0, 1000, -5000, 60_000, 60_000, 60_000)]),
         b17([("tpm", 9_000_000, 9_500_000, 100, 8_000_000, 8_000_000, 60_000, {"soft": {"BOOL": True}})],
             rf=B17 + 1000)])
    v17("v17-soft-overdraw-twice", "two overdrawing deltas of one soft limit in a batch: tpm#od + 2",
        [b17([soft]), b17([("tpm", 9_000_000, 9_100_000, -1_100_000, 8_000_000, 8_000_000, 60_000,
                            {"soft": n(1769990400000)})], rf=B17 + 500)])
    quota = ("rpd", 0, 5_000, 7_000, 100_000, 0, 1_000)
    v17("v17-reset-edge", "a daily quota reset at UTC midnight, rf before it and now after: tk back to "
        "cp // shard_count, gc re-granted (pinned on shard_count), the top-up removed",
        [b17([(*quota, {"gc": n(2), "tu": n(4_000)})], extra={"rsched": s("1m0h0")}, shard_count=2)])
    v17("v17-reset-edge-not-crossed", "rf already past the reset edge: a quota does not drip, nothing to write",
        [b17([quota], extra={"rsched": s("1m0h0")}, rf=N17 - 10_000)])
    v17("v17-reset-edge-paris", "a reset at 01:00 Europe/Paris (= 00:00Z in winter) crossed",
        [b17([quota], extra={"rsched": s("1m0h1"), "sched_tz": s("Europe/Paris")})])
    v17("v17-reset-edge-own-override", "a limit's own b_rpd_rsched overrides the item's default, and "
        "b_rpm_rsched '-' blocks it for a dripping limit beside it",
        [b17([(*quota, {"rsched": s("1m0h0")}), ("rpm", 0, 60_000, 0, 60_000, 60_000, 60_000, {"rsched": s("-")})],
             extra={"rsched": s("1m30h12")})])
    ses = ("ses", 0, 12_000, -3_000, 50_000, 0, 1_000)
    v17("v17-window-roll", "a duration window fanned out (ws) but not applied (wa older): the balance rolls "
        "to the share less what was spent since the fan-out (tc - wtc), pinned on ws, wa marked",
        [b17([(*ses, {"ws": n(N17 - 20_000), "rsa": n(75), "wa": n(N17 - 100_000), "wtc": n(9_000)})],
             rf=N17 - 60_000)])
    v17("v17-window-ended", "an unapplied window that has already ended: nothing is written",
        [b17([(*ses, {"ws": n(N17 - 100_000), "rsa": n(60), "wa": n(N17 - 300_000)})], rf=N17 - 200_000)])
    v17("v17-window-rf-ahead", "a window start ahead of the aggregator's clock: rf = max(now, rf, ws) never "
        "moves back",
        [b17([(*ses, {"ws": n(N17 + 5_000), "rsa": n(75), "wa": n(N17 - 100_000)}),
              ("rpm", 0, 60_000, 0, 60_000, 60_000, 60_000)], rf=N17 - 60_000)])
    v17("v17-schedule-scale", "an item schedule x0.5 all day: the drip tops up to half the capacity",
        [b17([("rpm", 0, 60_000, 10_000, 100_000, 100_000, 60_000)], extra={"sched": s("1s500")},
             rf=N17 - 60_000)])
    v17("v17-schedule-absolute", "a limit's own schedule with an absolute capacity (30 tokens) every 5th minute "
        "in New York; its ceiling is 30,000 millitokens when it matches",
        [b17([("rpm", 0, 60_000, 10_000, 100_000, 100_000, 60_000, {"sched": s("1m*/5c30")})],
             extra={"sched_tz": s("America/New_York")}, rf=N17 - 60_000)])
    v17("v17-schedule-none-marker", "b_tpm_sched '-' beside an item schedule: tpm refills at its base, rpm at half",
        [b17([("rpm", 0, 60_000, 0, 100_000, 100_000, 60_000),
              ("tpm", 0, 60_000, 0, 100_000, 100_000, 60_000, {"sched": s("-")})],
             extra={"sched": s("1s500")}, rf=N17 - 60_000)])
    v17("v17-schedule-undecodable", "a stored schedule this build cannot decode: the bucket is left alone "
        "(no refill at the base rate), logged; usage is still counted",
        [b17([("rpm", 0, 60_000, 0, 100_000, 100_000, 60_000)], extra={"sched": s("9zz")}, rf=N17 - 60_000)])
    v17("v17-clamp", "a balance above its capacity after a shrink is clamped down, with no tk pin",
        [b17([("rpm", 0, 1_000, 90_000, 60_000, 60_000, 60_000)], rf=N17 - 1_000)])
    v17("v17-deferred-wcu-credit", "tpm needs a refill; wcu's accrual (not needed on its own) is credited in the "
        "same write, pinned on tk <= read",
        [b17([TPM, ("wcu", 0, 1000, 500_000, 1_000_000, 1_000_000, 1000)], rf=N17 - 1_000)])
    v17("v17-vu-restamp", "vu expired: the write stamps the next boundary (the next reset edge) pinned on sched "
        "and on each unclamped quota staying within its ceiling",
        [b17([("rpm", 0, 60_000, 0, 60_000, 60_000, 60_000), quota],
             extra={"rsched": s("1m0h0"), "vu": n(0)}, rf=N17 - 10_000)])
    v17("v17-vu-held-over-ceiling", "vu expired but a quota sits above its ceiling: no re-stamp, the gate stays "
        "shut for the client's slow pass",
        [b17([("rpm", 0, 60_000, 0, 60_000, 60_000, 60_000), ("rpd", 0, 5_000, 150_000, 100_000, 0, 1_000)],
             extra={"rsched": s("1m0h0"), "vu": n(0)}, rf=N17 - 10_000)])
    v17("v17-vu-future", "vu still in the future: left alone, pinned",
        [b17([("rpm", 0, 60_000, 0, 60_000, 60_000, 60_000)], extra={"vu": n(N17 + 60_000)}, rf=N17 - 10_000)])
    v17("v17-quota-grant-ceiling", "a quota granted at gc 1 on 2 shards keeps C // 1 as its ceiling; with a top-up "
        "the ceiling grows; a dripping limit keeps C // shard_count",
        [b17([("rpm", 0, 60_000, 0, 60_000, 60_000, 60_000),
              ("rpd", 0, 5_000, 90_000, 100_000, 0, 1_000, {"gc": n(1), "tu": n(20_000)})],
             extra={"rsched": s("1m0h0"), "vu": n(0)}, rf=N17 - 10_000, shard_count=2)])
    v17("v17-doubling-projected", "stored wcu at 15% but rf 10 s old: projected to now it is full, no doubling",
        [b17([WCU_LOW, RPM], rf=N17 - 10_000)])
    v17("v17-doubling-hot", "stored wcu at 15% and rf 50 ms old: projected 20% is still below... 19.9%: doubles",
        [b17([("wcu", 0, 1000, 149_000, 1_000_000, 1_000_000, 1000), RPM], rf=N17 - 50)])
    v17("v17-doubling-capped", "24 shards double to min(48, 32) = 32; at 32 nothing happens",
        [b17([("wcu", 0, 1000, 0, 1_000_000, 1_000_000, 1000)], rf=N17, shard_count=24),
         b17([("wcu", 0, 1000, 0, 1_000_000, 1_000_000, 1000)], rf=N17, shard_count=32,
             pk="ns/BUCKET#k2#gpt-4#0")])
    owner = {"pgen": n(2), "pinc": s("2026-01-31T23:56:30Z"), "parent_id": s("proj-a"), "cascade": {"BOOL": True}}
    v17("v17-propagation-clones", "shard 0 raised 2 -> 4 (no quota): shard 1 raised; shards 2 and 3 created as "
        "transactions of a Put and a ConditionCheck of the owner's META on its pgen/pinc",
        [b17([RPM, WCU_OK], extra=owner, rf=N17, shard_count=4, old_shard_count=2)])
    v17("v17-propagation-scheduled-start", "a clone starts at the scheduled capacity in force (x0.5) over the new "
        "count, wcu at its capacity",
        [b17([RPM, WCU_OK], extra={"sched": s("1s500")}, rf=N17, shard_count=2, old_shard_count=1)])
    v17("v17-propagation-quota-reads", "the image carries a quota: the plan reads shards 0 and 1 first "
        "(strongly consistent) and plans their writes after the reads",
        [b17([RPM, (*quota, {"gc": n(2)})], extra={"rsched": s("1m0h0")}, rf=N17, shard_count=4,
             old_shard_count=2)])
    raise_quota = b17([RPM, (*quota, {"gc": n(2)})], extra={"rsched": s("1m0h0")}, rf=N17, shard_count=4,
                      old_shard_count=2)
    v17("v17-after-reads-quota-clones", "after reading shards 0 and 1: shard 1 raised with its grant frozen, "
        "shards 2 and 3 each funded by a move off their parent (2 -> 0, 3 -> 1) in the clone's transaction",
        [raise_quota], read_results=[{"read_id": 0, "outcome": "found", "item": shard_item(0, 30_000, gc=2)},
                                     {"read_id": 1, "outcome": "found", "item": shard_item(1, 40_000)}])
    v17("v17-after-reads-failed", "a failed read: shard 1 raised without the freeze, no clone",
        [raise_quota], read_results=[{"read_id": 0, "outcome": "found", "item": shard_item(0, 30_000, gc=2)},
                                     {"read_id": 1, "outcome": "failed", "error": "ProvisionedThroughputExceeded"}])
    v17("v17-after-reads-overtaken", "an old shard already stores 8: a later doubling overtook this record, "
        "no quota clone (the later one creates them)",
        [raise_quota], read_results=[{"read_id": 0, "outcome": "found", "item": shard_item(0, 30_000, gc=2,
                                                                                             shard_count=8)},
                                     {"read_id": 1, "outcome": "missing"}])
    v17("v17-after-reads-unknown-id", "a read result naming no read of the plan is an error",
        [raise_quota], read_results=[{"read_id": 7, "outcome": "missing"}])
    v17("v17-propagation-undecodable", "a schedule that does not decode: existing shards raised, no clone",
        [b17([RPM], extra={"sched": s("9zz")}, rf=N17, shard_count=4, old_shard_count=2)])
    v17("v17-propagation-above-max", "a count above the maximum (a runaway doubling) is not propagated at all",
        [b17([RPM], rf=N17, shard_count=64, old_shard_count=32)])
    v17("v17-malformed-window", "b_ses_rsa 1.5 is not an integer: the record is invalid",
        [b17([(*ses, {"rsa": {"N": "1.5"}, "ws": n(N17)})], rf=N17 - 60_000)])
    v17("v17-plain-limits-as-013", "a 0.17 table item with no 0.17 attribute plans its refill as 0.13 does, "
        "with the 0.17 clamp and tk pins", [b17([TPM, WCU_LOW], rf=N17 - 5_000)])


def noise(seed, length):
    """`length` deterministic, incompressible base64 characters."""
    out, block = [], seed.encode()
    while sum(map(len, out)) < length:
        block = hashlib.sha256(block).digest()
        out.append(base64.b64encode(block * 3).decode()[:64])
    return "".join(out)[:length]


def host_independence(r1, r2, r3, hourly_key, daily_key, ids):
    """Vectors that fail a host whose rendering or argument passing depends on its own number formatting, string
    escaping, text decoding or byte handling (tests/conformance/README.md, "Host independence")."""
    big = 9_007_199_254_740_993  # 2^53 + 1: the nearest double is 2^53
    vector("now-above-2p53", "now_ms 2^53+1 reaches the planner exactly (a host that passes it through a double "
           "sends 2^53): refill rf_new, snapshot ttl",
           [bucket(P0, [TPM, WCU_LOW], rf=big - 5_000, approx=1704067195)], now=big)
    vector("now-s64-max", "now_ms is the largest s64 (a double rounds it to 2^63, which wraps or fails)",
           [bucket(P0, [TPM, WCU_LOW], rf=NOW, approx=1704067195),
            audit("ns/AUDIT#user-1", "01HQJ1", "not-a-date", approx=None)], now=2**63 - 1)
    vector("now-negative", "a negative now_ms (before 1970) is an s64 like any other",
           [bucket(P0, [TPM, WCU_LOW], rf=-1_704_067_260_000, approx=1704067195),
            audit("ns/AUDIT#user-1", "01HQJ2", "not-a-date", approx=None)], now=-1_704_067_200_000)
    odd = "t\u0000\u0001\u001b\u001f\"q\"\\/\u007f\u0080\u00a0\u2028\u2029\ufeff\t\n\r\b\f-é-限流-😀-𝄞"
    vector("unicode-strings", "strings the host renders itself (table name, bucket, expression names, outcome "
           "reasons) and passes in (invocation id) with control characters, escapes, U+007F, U+2028, U+FEFF and "
           "non-BMP characters: raw UTF-8 except the escapes the README lists",
           [bucket("ns/BUCKET#usér-😀#gpt-4ö#0", [("tökens-😀", 0, 9_000_000, 0, 10_000_000, 10_000_000, 60_000),
                                                 ("r\u2028m", 0, 2_000, 0, 10_000_000, 10_000_000, 60_000)],
                   entity="usér-😀", approx=1704067195),
            bucket("BUCKET#ünprefixed-😀#gpt-4#0", [RPM]),
            bucket("ns/BUCKET#u1#gpt-4#0", [RPM], seq="12é😀"),
            audit("ns/AUDIT#usér-😀", "01HQK1", "2024-01-15T10:00:00Z", details={"note": s(odd)})],
           config={"table_name": odd, "archive_bucket": "audit-✓-𝄞-" + odd}, invocation=odd)
    vector("unicode-leading-bom", "strings that start with U+FEFF keep it (table name, bucket, expression names, "
           "invocation id): a host whose UTF-8 decoder drops it as a byte-order mark would write to another table",
           [bucket(P0, [("\ufefftpm", 0, 20_000_000, 5_000_000, 100_000_000, 100_000_000, 60_000), WCU_LOW]),
            audit("ns/AUDIT#user-1", "01HQN1", "2024-01-15T10:00:00Z")],
           config={"table_name": "\ufeffrate-limits", "archive_bucket": "\ufeffaudit-archive"},
           invocation="\ufeffreq-1")
    vector("empty-strings", "empty strings everywhere a host passes or renders one: invocation id, a limit named "
           "'', an audit action and note ''",
           [bucket(P0, [("", 0, 5_000, 0, 0, 0, 0), RPM], approx=1704067195),
            audit("ns/AUDIT#user-1", "01HQL1", "2024-01-15T10:00:00Z", action="", details={"note": s("")})],
           invocation="")
    vector("error-empty-event", "an empty event body (zero bytes) is passed as the empty string", raw_event="")
    vector("error-event-bom", "the event is passed byte for byte: a leading UTF-8 byte-order mark is kept (and is "
           "not JSON); a host that strips it would plan an empty batch", raw_event="\ufeff{\"Records\": []}\n")
    vector("error-event-bare-cr", "the event is passed byte for byte: bare CRs stay CRs (JSON whitespace, not line "
           "breaks, in the error's line number); a host that reads it in a newline-translating text mode reports "
           "another line", raw_event='{\r"Records": [\r\n {"eventName": "MODIFY"},\r\r oops\r\n]}\r\n')
    vector("archive-large-gzip-body", "256 audit deletions of incompressible text: one gzip body of about 200 KiB "
           "holding every byte value, base64 over 256 KiB",
           [audit("ns/AUDIT#user-1", f"01HQM{i:04d}", "2024-01-15T10:00:00Z",
                  details={"blob": s(noise(f"blob-{i}", 1024)), "i": n(i)}) for i in range(256)])
    vector("replan-watermark-numbers", "observed items are compact JSON with numbers as written: a number above "
           "2^53, -0.0 and 1E+2 where a watermark string belongs are reported exactly (a host that re-formats "
           "numbers reports 9007199254740992, 0 or 100)",
           [r1, r2, r3], config={"windows": ["hourly", "daily", "monthly"]},
           observed=[{"write_id": ids[0], "item": {**hourly_key, "wm#0": {"S": RawNumber(str(big))}}},
                     {"write_id": ids[1], "item": {**daily_key, "wm#0": {"S": RawNumber("-0.0")}}},
                     {"write_id": ids[2],
                      "item": {"wm#0": {"N": RawNumber("1E+2")}, "PK": s("ns/ENTITY#u1")}}])


REAL = [
    ("real-batch-0003", "batch-100-0003.json", "100 bucket MODIFYs of real client traffic, before midnight", None, "fixture"),
    ("real-batch-0014", "batch-100-0014.json", "real traffic including the hot key's first doubling", None, "batch-end"),
    ("real-batch-0015", "batch-100-0015.json", "real traffic with the doubling's MODIFY: propagation", None, "batch-end"),
    ("real-batch-0018", "batch-100-0018.json", "real traffic: second doubling 2->4, monthly window",
     ["hourly", "daily", "monthly"], "batch-end"),
    ("real-batch-0023", "batch-100-0023.json", "real traffic after midnight (the baseline's 100-record batch)", None,
     "fixture"),
    ("real-batch-1000", "batch-1000.json", "the last 1,000 records: burst, doublings, audit deletions, "
     "deletions, config changes; hourly,daily,monthly", ["hourly", "daily", "monthly"], "fixture"),
    ("real-malformed", "malformed.json", "20 valid records plus every malformed kind of the oracle", None, "fixture"),
    ("real-malformed-skips", "malformed-skips.json", "the oracle's malformed batch minus the non-numeric records",
     None, "fixture"),
]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", default=str(HERE.parents[2] / "shared"), help="path of the shared/ directory")
    args = ap.parse_args()
    build()
    for v in VECTORS:
        d = HERE / v["name"]
        d.mkdir(exist_ok=True)
        inp = {"description": v["description"], "config": v["config"], "now_ms": v["now_ms"],
               "invocation_id": v["invocation_id"]}
        if v["observed"] is not None:
            inp["observed"] = v["observed"]
        if v["read_results"] is not None:
            inp["read_results"] = v["read_results"]
        (d / "input.json").write_text(dumps(inp, indent=1, ensure_ascii=False) + "\n")
        (d / "event.json").write_bytes(v["event"].encode("utf-8"))  # exact bytes: no newline translation
    src = Path(args.shared) / "oracle" / "vectors" / "1"
    meta = json.loads((src / "meta.json").read_text())
    for name, file, desc, windows, clock in REAL:
        d = HERE / name
        d.mkdir(exist_ok=True)
        now = meta["now_ms"] if clock == "fixture" else meta["now_ms_batch_end"][file]
        cfg = {**BASE_CONFIG, "table_name": "zae-limiter", "archive_bucket": "zae-limiter-audit-archive"}
        if windows:
            cfg["windows"] = windows
        inp = {"description": f"{desc} (shared/oracle/vectors/1/{file})", "config": cfg, "now_ms": str(now),
               "invocation_id": "00000000-0000-4000-8000-000000000000"}
        (d / "input.json").write_text(json.dumps(inp, indent=1) + "\n")
        shutil.copyfile(src / file, d / "event.json")
    print(f"{len(VECTORS) + len(REAL)} vectors written under {HERE}")


if __name__ == "__main__":
    main()
