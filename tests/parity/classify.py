#!/usr/bin/env python3
"""Explain every difference between the Python aggregator's final state and ours.

    classify.py [--vectors DIR] DUMP_DIR [DUMP_DIR ...]
    classify.py --self-test

A DUMP_DIR holds `<event>.upstream.json` / `<event>.candidate.json` pairs written by the
oracle's `compare.py` (zae-limiter 0.13.0's aggregator vs `zae-aggregator invoke`, same events,
same starting table, same clock). `--vectors` is the directory with the event files and the
`fixture.json` the runs started from (default: the `vectors/1` directory of the oracle beside
the repository).

How a difference is explained. From the event file and the starting table this script computes,
independently of both programs, two predicted final states:

* **ours**, by the documented rules of `zae-aggregator`: snapshot items keyed by the record's
  `ApproximateCreationDateTime` window (docs/decisions.md#w5) with `#daily` / `#monthly` sort-key
  suffixes (docs/decisions.md#w4), one coalesced write per item carrying `wm#{source}` watermarks
  = the highest 40-digit zero-padded sequence number of that source's records in the item
  (docs/decisions.md#w1); refills that credit every limit its capped accrual, guarded by
  `tk <= cap - delta` (docs/decisions.md#w10, #w19); doubling and propagation decided from the
  record with the highest sequence number (docs/decisions.md#w11, #w17), bounded by
  `MAX_SHARD_COUNT` (docs/decisions.md#w12); one archive object per UTC day keyed by first/last
  sequence number and CRC-32 (docs/decisions.md#w13, #w14), every audit row kept
  (docs/decisions.md#w15);
* **upstream**, by 0.13.0's rules: windows from the bucket's `rf`, one shared item for hour 00 /
  day 1, one ADD per delta and window; refills of the limits below threshold only, on batches
  with consumption; doubling from the first record's `shard_count`; propagation per record; one
  archive object named after the request id; the invocation failing on a malformed number.

A differing attribute (or item, object, response field) is explained only when **both** dumps
hold exactly the value their model predicts, and the rule that makes the two models differ
there names the W-item it is counted under. Counts in the response are checked against counts
recomputed from the dumps (snapshot items written, `total_events` increments, refilled buckets,
archived NDJSON lines) and from the event (invalid records), never taken as reported. Anything
else is printed as UNEXPLAINED and makes the exit code 1.

`--self-test` builds small synthetic dump pairs, once as predicted and once with one value
wrong (a refilled `tk` off by one, a `shard_count` that is not the latest image's, a watermark
of a foreign record, a count that is not the recount ...), and checks that the correct pairs
give no UNEXPLAINED line and every wrong one at least one.
"""

from __future__ import annotations

import argparse
import binascii
import collections
import copy
import json
import tempfile
import sys
from datetime import UTC, datetime
from pathlib import Path

SNAPSHOT_METADATA = {
    "PK", "SK", "entity_id", "resource", "window", "window_start", "total_events",
    "GSI2PK", "GSI2SK", "GSI4PK", "GSI4SK", "ttl",
}
WINDOW_ORDER = ("hourly", "daily", "monthly")
MAX_SHARD_COUNT = 32
SEQ_WIDTH = 40


# ------------------------------------------------------------------ values


def canon(av):
    """A DynamoDB JSON value with integer numbers spelled canonically (as the dumps are)."""
    if isinstance(av, dict) and "N" in av:
        try:
            return {"N": str(int(av["N"]))}
        except ValueError:
            return av
    return av


def canon_item(item: dict) -> dict:
    return {k: canon(v) for k, v in item.items()}


def n(item: dict | None, attr: str, default: int = 0) -> int:
    av = (item or {}).get(attr)
    return int(av["N"]) if av and "N" in av else default


def s(img: dict | None, attr: str) -> str | None:
    av = (img or {}).get(attr)
    return av["S"] if isinstance(av, dict) and isinstance(av.get("S"), str) else None


def N(v: int) -> dict:
    return {"N": str(v)}


def S(v: str) -> dict:
    return {"S": v}


def key(item: dict) -> tuple[str, str]:
    return item["PK"]["S"], item["SK"]["S"]


def is_snapshot(k: tuple[str, str]) -> bool:
    return k[1].startswith("#USAGE#")


def pyint(text: str) -> int:
    return int(text)  # Python's int(): what both programs accept (" 2", "+3", "1_0")


# ------------------------------------------------------------------ records


class Bucket:
    """A MODIFY record both programs take as a bucket record (same parse, see docs/specification.md#bucket-records / bucket.rs)."""

    def __init__(self, **kw):
        self.__dict__.update(kw)


def parse_bucket(idx: int, rec: dict):
    """('bucket', Bucket) | ('skip', why) | ('invalid', why, upstream_raises)."""
    d = rec.get("dynamodb")
    if not isinstance(d, dict):
        return ("invalid", "no dynamodb", False)
    new = d.get("NewImage")
    if not isinstance(new, dict):
        return ("invalid", "no NewImage", False)
    old = d.get("OldImage") or {}
    pk, sk = s(new, "PK") or "", s(new, "SK") or ""
    if "/" not in pk:
        return ("skip", "unprefixed PK")
    ns, rest = pk.split("/", 1)
    if rest.startswith("BUCKET#"):
        try:
            left, shard_str = rest[len("BUCKET#"):].rsplit("#", 1)
            shard = pyint(shard_str)
            entity, resource = left.split("#", 1)
        except ValueError:
            return ("invalid", "bad bucket PK", False)
        fmt = "new"
    elif sk.startswith("#BUCKET#"):
        resource, entity, shard, shard_str, fmt = sk[len("#BUCKET#"):], s(new, "entity_id"), 0, None, "old"
        if not resource:
            return ("invalid", "old-format bucket without resource", False)
        if not entity:
            return ("skip", "no entity_id")
    else:
        return ("skip", "not a bucket")
    no_entity_id = not s(new, "entity_id")
    seq = d.get("SequenceNumber")
    if not isinstance(seq, str) or not seq.isdigit():
        return ("invalid", "no SequenceNumber", False)
    try:
        shard_count = pyint(new["shard_count"]["N"]) if "shard_count" in new else 1
        old_sc = pyint(old["shard_count"]["N"]) if "shard_count" in old else None
        rf = pyint(new["rf"]["N"]) if "rf" in new else None
        fields: dict[str, dict[str, int]] = {}
        order_tc, order_cp = [], []
        for attr, av in new.items():
            if not attr.startswith("b_") or "_" not in attr[2:]:
                continue
            name, field = attr[2:].rsplit("_", 1)
            if not name or field not in ("tc", "tk", "cp", "ra", "rp"):
                continue
            if "N" in av:
                fields.setdefault(name, {})[field] = pyint(av["N"])
            if field == "tc":
                order_tc.append(name)
            if field == "cp":
                order_cp.append(name)
        old_tc = {}
        for attr, av in old.items():
            if attr.startswith("b_") and "_" in attr[2:] and "N" in av:
                name, field = attr[2:].rsplit("_", 1)
                if field in ("tc", "tk", "cp", "ra", "rp"):
                    v = pyint(av["N"])
                    if field == "tc":
                        old_tc[name] = v
    except (ValueError, KeyError, TypeError):
        return ("invalid", "malformed number", True)
    if shard_count < 1:
        return ("invalid", "shard_count below 1", False)
    limits = []
    for name in order_tc:
        f = fields.get(name, {})
        if "tc" in f and name in old_tc:
            limits.append(dict(name=name, tc_delta=f["tc"] - old_tc[name], tk=f.get("tk", 0), cp=f.get("cp", 0),
                               ra=f.get("ra", 0), rp=f.get("rp", 0)))
    raises = fmt == "new" and shard == 0 and "shard_count" in new and old_sc is not None and shard_count > old_sc
    if no_entity_id:
        # Both programs skip it for usage, refill and doubling; a raised
        # shard_count still propagates from the key (docs/specification.md#bucket-records).
        if not raises:
            return ("skip", "no entity_id")
        limits, order_cp = [], []
    names = {l["name"] for l in limits}
    others = [dict(name=nm, tc_delta=0, **{k: fields[nm].get(k, 0) for k in ("tk", "cp", "ra", "rp")})
              for nm in order_cp if nm not in names]
    approx = d.get("ApproximateCreationDateTime")
    wm_attr = f"wm#{shard_str}" if fmt == "new" else f"wm#{rest}"
    return ("bucket", Bucket(
        idx=idx, seq=int(seq), seq_raw=seq, approx_s=None if approx is None else float(approx), ns=ns, entity=entity,
        resource=resource, pk=pk, sk=sk, fmt=fmt, shard=shard, shard_count=shard_count, old_sc=old_sc, rf=rf,
        limits=limits, others=others, new=new, wm_attr=wm_attr, raises=raises))


def event_records(event: dict):
    """(buckets, invalid MODIFYs, MODIFYs whose malformed number upstream raises on)."""
    buckets, invalid, raising = [], [], 0
    for i, rec in enumerate(event.get("Records", [])):
        if not isinstance(rec, dict) or rec.get("eventName") != "MODIFY":
            continue
        r = parse_bucket(i, rec)
        if r[0] == "bucket":
            buckets.append(r[1])
        elif r[0] == "invalid":
            invalid.append(i)
            raising += r[2]
    return buckets, invalid, raising


def deltas(b: Bucket):
    return [l for l in b.limits if l["name"] != "wcu" and l["tc_delta"] != 0]


# ------------------------------------------------------------------ windows


def window_key(window: str, ts_s: float) -> str:
    dt = datetime.fromtimestamp(int(ts_s // 1), UTC)
    if window == "hourly":
        return dt.strftime("%Y-%m-%dT%H:00:00Z")
    if window == "daily":
        return dt.strftime("%Y-%m-%dT00:00:00Z")
    return dt.strftime("%Y-%m-01T00:00:00Z")


def window_time(b: Bucket, source: str) -> float:
    """'approx': ApproximateCreationDateTime (W5), rf when absent; 'rf': the bucket's rf (upstream)."""
    if source == "approx" and b.approx_s is not None:
        return b.approx_s
    return (b.rf or 0) / 1000


def snapshot_sk(resource: str, window: str, wkey: str, split: bool) -> str:
    return f"#USAGE#{resource}#{wkey}" + (f"#{window}" if split and window != "hourly" else "")


def snapshot_model(buckets, windows, start, now_ms, ttl_days, source, split, watermarks):
    """Final snapshot items (only those written) and the number of writes.

    Upstream (source 'rf', shared keys): one write per delta and window, first writer sets the
    if_not_exists metadata. Ours (source 'approx', split keys, watermarks): one write per item."""
    items: dict[tuple[str, str], dict] = {}
    writes = 0
    ttl = now_ms // 1000 + ttl_days * 86400
    for b in buckets:
        for l in deltas(b):
            for w in windows:
                wkey = window_key(w, window_time(b, source))
                k = (f"{b.ns}/ENTITY#{b.entity}", snapshot_sk(b.resource, w, wkey, split))
                it = items.get(k)
                if it is None:
                    it = copy.deepcopy(start.get(k)) or {"PK": S(k[0]), "SK": S(k[1])}
                    items[k] = it
                for a, v in (("resource", S(b.resource)), ("window", S(w)), ("window_start", S(wkey)),
                             ("GSI4PK", S(b.ns)), ("GSI4SK", S(f"{b.ns}/ENTITY#{b.entity}")), ("ttl", N(ttl))):
                    it.setdefault(a, v)
                it["entity_id"] = S(b.entity)
                it["GSI2PK"] = S(f"{b.ns}/RESOURCE#{b.resource}")
                it["GSI2SK"] = S(f"USAGE#{wkey}#{b.entity}")
                it[l["name"]] = N(n(it, l["name"]) + l["tc_delta"] // 1000)
                it["total_events"] = N(n(it, "total_events") + 1)
                if watermarks:
                    cur = s(it, b.wm_attr)
                    padded = b.seq_raw.zfill(SEQ_WIDTH)
                    if cur is None or int(cur) < b.seq:
                        it[b.wm_attr] = S(padded)
                writes += 1
    if watermarks:
        writes = len(items)
    return items, writes


# ------------------------------------------------------------------ buckets


def refill(tk, last, now, cap, amt, period):
    elapsed = now - last
    if elapsed <= 0:
        return tk
    add = elapsed * amt // period
    if add == 0:
        return tk
    return min(cap, tk + add)


class BucketModel:
    """Final non-snapshot items plus, per item, the steps that changed it."""

    def __init__(self, start: dict):
        self.items = {k: copy.deepcopy(v) for k, v in start.items() if not is_snapshot(k)}
        self.tags: dict[tuple[str, str], set[str]] = collections.defaultdict(set)
        self.refills = 0

    def update(self, k, tag, cond, changes):
        it = self.items.get(k)
        if it is None or not cond(it):
            return False
        it.update(changes)
        self.tags[k].add(tag)
        return True

    def put(self, k, tag, item):
        if k in self.items:
            return False
        self.items[k] = item
        self.tags[k].add(tag)
        return True


def clone(src: Bucket, t: int, new: int) -> dict:
    item = {a: canon(v) for a, v in src.new.items()}
    e, r = src.entity, src.resource
    item["PK"] = S(f"{src.ns}/BUCKET#{e}#{r}#{t}")
    item["GSI2SK"] = S(f"BUCKET#{e}#{t}")
    item["GSI3SK"] = S(f"BUCKET#{r}#{t}")
    item["GSI4SK"] = S(f"BUCKET#{e}#{r}#{t}")
    item["shard_count"] = N(new)
    for a, av in src.new.items():
        if a.startswith("b_") and a.endswith("_cp") and len(a) > 5 and "N" in av:
            name, cp = a[2:-3], int(av["N"])
            item[f"b_{name}_tk"] = N(cp if name == "wcu" else cp // new)
            item[f"b_{name}_tc"] = N(0)
    return item


def ours_buckets(buckets, start, now_ms) -> BucketModel:
    m = BucketModel(start)
    states: dict[tuple[str, str], dict] = {}
    for b in buckets:
        st = states.setdefault((b.pk, b.sk), {"latest": b, "limits": {}, "seq": {}})
        if b.seq > st["latest"].seq:
            st["latest"] = b
        for l in b.limits:
            cur = st["limits"].get(l["name"])
            if cur is None:
                st["limits"][l["name"]] = dict(l)
                st["seq"][l["name"]] = b.seq
            else:
                cur["tc_delta"] += l["tc_delta"]
                if b.seq > st["seq"][l["name"]]:
                    st["seq"][l["name"]] = b.seq
                    cur.update({f: l[f] for f in ("tk", "cp", "ra", "rp")})
    for k, st in states.items():
        lt = st["latest"]
        if lt.rf is None:
            continue
        sc = lt.shard_count
        out, needed = [], False
        for l, trig in [(l, True) for l in st["limits"].values()] + [
                (o, False) for o in lt.others if o["name"] not in st["limits"]]:
            if l["rp"] <= 0 or l["ra"] <= 0:
                continue
            cap, amt = l["cp"] // sc, l["ra"] // sc
            new_tk = refill(l["tk"], lt.rf, now_ms, cap, amt, l["rp"])
            if new_tk - l["tk"] <= 0:
                continue
            out.append((l["name"], new_tk - l["tk"], cap))
            needed |= trig and new_tk < max(0, l["tc_delta"])
        if not needed:
            continue

        def cond(it, out=out, rf=lt.rf):
            return ("rf" in it and n(it, "rf") == rf
                    and all(f"b_{nm}_tk" in it and n(it, f"b_{nm}_tk") <= cap - d for nm, d, cap in out))

        it = m.items.get(k)
        changes = {"rf": N(now_ms)}
        for nm, d, _ in out:
            changes[f"b_{nm}_tk"] = N(n(it, f"b_{nm}_tk") + d)
        if m.update(k, "refill", cond, changes):
            m.refills += 1
        elif it is not None and "rf" in it and n(it, "rf") == lt.rf:
            m.tags[k].add("refill-guarded")
        # doubling (shard 0 of a new-format bucket, stored wcu below 20%)
    for k, st in states.items():
        lt, wcu = st["latest"], st["limits"].get("wcu")
        if lt.fmt != "new" or lt.shard != 0 or not wcu or wcu["cp"] <= 0 or not wcu["tk"] / wcu["cp"] < 0.2:
            continue
        old, new = lt.shard_count, lt.shard_count * 2
        if new <= MAX_SHARD_COUNT:
            m.update(k, "bump", lambda it, old=old: n(it, "shard_count", None) == old, {"shard_count": N(new)})
    groups: dict[str, list[Bucket]] = {}
    for b in buckets:
        if b.raises:
            groups.setdefault(b.pk, []).append(b)
    for pk, group in groups.items():
        latest = max(group, key=lambda b: b.seq)
        first_old = min(b.old_sc for b in group)
        new = latest.shard_count
        limit = min(new, MAX_SHARD_COUNT)
        base = f"{latest.ns}/BUCKET#{latest.entity}#{latest.resource}#"
        for t in range(1, min(latest.old_sc, limit)):
            m.update((base + str(t), latest.sk), "propagate",
                     lambda it, new=new: "shard_count" in it and n(it, "shard_count") < new, {"shard_count": N(new)})
        for t in range(max(first_old, 1), limit):
            m.put((base + str(t), latest.sk), "clone", clone(latest, t, new))  # attribute_not_exists(PK)
    return m


def upstream_buckets(buckets, start, now_ms) -> BucketModel:
    m = BucketModel(start)
    states: dict[tuple, dict] = {}
    for b in buckets:
        k = (b.ns, b.entity, b.resource, b.shard)
        if k not in states:
            states[k] = {"rf": b.rf or 0, "sc": b.shard_count, "limits": {}}
        else:
            states[k]["rf"] = b.rf or 0
        for l in b.limits:
            cur = states[k]["limits"].get(l["name"])
            if cur is None:
                states[k]["limits"][l["name"]] = dict(l)
            else:
                cur["tc_delta"] += l["tc_delta"]
                cur.update({f: l[f] for f in ("tk", "cp", "ra", "rp")})
    for (ns, e, r, shard), st in states.items():
        k = (f"{ns}/BUCKET#{e}#{r}#{shard}", "#STATE")
        changes = {}
        it = m.items.get(k)
        for nm, l in st["limits"].items():
            if l["rp"] <= 0 or l["ra"] <= 0:
                continue
            new_tk = refill(l["tk"], st["rf"], now_ms, l["cp"] // st["sc"], l["ra"] // st["sc"], l["rp"])
            if new_tk - l["tk"] > 0 and new_tk < max(0, l["tc_delta"]):
                changes[f"b_{nm}_tk"] = N(n(it, f"b_{nm}_tk") + new_tk - l["tk"])
        if changes:
            changes["rf"] = N(now_ms)
            if m.update(k, "refill", lambda it, rf=st["rf"]: "rf" in it and n(it, "rf") == rf, changes):
                m.refills += 1
    for (ns, e, r, shard), st in states.items():
        wcu = st["limits"].get("wcu")
        if not wcu or shard != 0 or wcu["cp"] <= 0 or not wcu["tk"] / wcu["cp"] < 0.2:
            continue
        m.update((f"{ns}/BUCKET#{e}#{r}#0", "#STATE"), "bump",
                 lambda it, old=st["sc"]: n(it, "shard_count", None) == old, {"shard_count": N(st["sc"] * 2)})
    for b in buckets:
        if not b.raises or b.fmt != "new":
            continue
        base = f"{b.ns}/BUCKET#{b.entity}#{b.resource}#"
        for t in range(1, b.old_sc):
            m.update((base + str(t), "#STATE"), "propagate",
                     lambda it, new=b.shard_count: "shard_count" in it and n(it, "shard_count") < new,
                     {"shard_count": N(b.shard_count)})
        for t in range(b.old_sc, b.shard_count):
            m.put((base + str(t), "#STATE"), "clone", clone(b, t, b.shard_count))
    return m


# ------------------------------------------------------------------ audit


def audit_events(event: dict, ours: bool):
    """Audit REMOVE records each program archives: (index, seq, timestamp, pk) + errors it reports."""
    out, errors = [], 0
    for i, rec in enumerate(event.get("Records", [])):
        if not isinstance(rec, dict) or rec.get("eventName") != "REMOVE":
            continue
        d = rec.get("dynamodb") if isinstance(rec.get("dynamodb"), dict) else {}
        old = d.get("OldImage")
        pk = s(old, "PK") or s(d.get("Keys"), "PK") or ""
        rest = pk.split("/", 1)[1] if "/" in pk else pk
        if ours:
            if not rest.startswith("AUDIT#"):
                if old is None and not pk:
                    errors += 1
                continue
            if old is None or not str(d.get("SequenceNumber", "")).isdigit():
                errors += 1
                continue
            out.append((i, int(d["SequenceNumber"]), d["SequenceNumber"], s(old, "timestamp"), d))
        else:
            if "/" not in (s(old, "PK") or ""):
                errors += 1  # parse_namespace raises on every REMOVE without a namespaced OldImage PK
                continue
            if not rest.startswith("AUDIT#") or "S" not in (old or {}).get("action", {}):
                continue
            if not py_numbers_ok([old.get(k) for k in ("event_id", "entity_id", "action", "timestamp", "principal",
                                                        "resource", "details")]):
                errors += 1  # _deserialize_value: int(), then float(), raises
                continue
            out.append((i, None, None, s(old, "timestamp"), d))
    return out, errors


def py_numbers_ok(values) -> bool:
    for v in values:
        if not isinstance(v, dict):
            continue
        if "N" in v:
            try:
                int(v["N"])
            except ValueError:
                try:
                    float(v["N"])
                except ValueError:
                    return False
        for inner in (v.get("M") or {}).values() if isinstance(v.get("M"), dict) else ():
            if not py_numbers_ok([inner]):
                return False
        if isinstance(v.get("L"), list) and not py_numbers_ok(v["L"]):
            return False
    return True


def utc_day(ts: str | None, approx, now_ms):
    try:
        dt = datetime.fromisoformat((ts or "").replace("Z", "+00:00"))
        if dt.tzinfo is not None:
            dt = dt.astimezone(UTC)
        return dt.year, dt.month, dt.day
    except ValueError:
        t = datetime.fromtimestamp(int(float(approx)) if approx is not None else now_ms // 1000, UTC)
        return t.year, t.month, t.day


# ------------------------------------------------------------------ report


class Report:
    def __init__(self) -> None:
        self.kinds: collections.Counter[str] = collections.Counter()
        self.unexplained: list[str] = []

    def add(self, kind: str, k: int = 1) -> None:
        self.kinds[kind] += k

    def fail(self, where: str, what: str) -> None:
        self.unexplained.append(f"{where}: {what}")


def short(v) -> str:
    t = json.dumps(v, sort_keys=True)
    return t if len(t) < 300 else t[:300] + "..."


def classify_pair(up: dict, ours: dict, event: dict, start_items: list[dict], where: str, r: Report) -> None:
    now_ms = ours["now_ms"]
    env = ours.get("lambda_env") or {}
    windows = [w for w in env.get("SNAPSHOT_WINDOWS", "hourly,daily").split(",")]
    ttl_days = int(env.get("SNAPSHOT_TTL_DAYS", "90"))
    start = {key(i): canon_item(i) for i in start_items}
    buckets, invalid_modify, raising = event_records(event)
    has_deltas = any(deltas(b) for b in buckets)
    upstream_fails = bool(raising) and has_deltas

    # Models.
    o_snap, o_writes = snapshot_model(buckets, windows, start, now_ms, ttl_days, "approx", True, True)
    u_snap, u_writes = snapshot_model(buckets, windows, start, now_ms, ttl_days, "rf", False, False)
    o_bkt = ours_buckets(buckets, start, now_ms)
    u_bkt = upstream_buckets(buckets, start, now_ms) if has_deltas and not upstream_fails else BucketModel(start)
    o_pred = {**o_bkt.items, **{k: v for k, v in start.items() if is_snapshot(k)}, **o_snap}
    u_pred = {**u_bkt.items, **{k: v for k, v in start.items() if is_snapshot(k)}, **u_snap}

    ut = {key(i): i for i in up["table"]}
    ct = {key(i): i for i in ours["table"]}

    # W5 / W4 attribution: rf-vs-approx moves usage between (folded) items; splitting only relabels.
    mid, _ = snapshot_model(buckets, windows, start, now_ms, ttl_days, "approx", False, False)

    def folded(items):
        f = collections.defaultdict(collections.Counter)
        for (pk, sk), it in items.items():
            for suffix in ("#daily", "#monthly"):
                if sk.endswith(suffix):
                    sk = sk[: -len(suffix)]
            for a, v in it.items():
                if "N" in v and a not in SNAPSHOT_METADATA - {"total_events"}:
                    f[(pk, sk)][a] += int(v["N"])
        return f

    f_up, f_mid = folded(u_snap), folded(mid)

    for k in sorted(set(ut) | set(ct)):
        x, y = ut.get(k), ct.get(k)
        if x == y:
            continue
        if is_snapshot(k):
            ok_o = y == o_pred.get(k)
            ok_u = x == u_pred.get(k)
            if not ok_o:
                r.fail(where, f"{k}: ours {short(y)}, predicted (W1/W4/W5 rules) {short(o_pred.get(k))}")
                continue
            if not ok_u:
                r.fail(where, f"{k}: upstream {short(x)}, predicted (0.13.0 rules) {short(u_pred.get(k))}")
                continue
            xs = {a: v for a, v in (x or {}).items() if not a.startswith("wm#")}
            ys = {a: v for a, v in (y or {}).items() if not a.startswith("wm#")}
            if xs == ys:
                continue  # only the watermarks differ: counted below, per item
            fk = (k[0], k[1].removesuffix("#daily").removesuffix("#monthly"))
            if f_up.get(fk, collections.Counter()) != f_mid.get(fk, collections.Counter()):
                r.add("W5 usage filed under the record's ApproximateCreationDateTime window, not rf's (items)")
            else:
                r.add("W4 daily/monthly items split from the shared hour-00/day-1 item (items)")
            continue
        # Bucket and other items.
        po, pu = o_pred.get(k), u_pred.get(k)
        if y != po:
            r.fail(where, f"{k}: ours {short(y)}, predicted {short(po)}")
            continue
        if x != pu:
            r.fail(where, f"{k}: upstream {short(x)}, predicted {short(pu)}")
            continue
        to, tu = o_bkt.tags.get(k, set()), u_bkt.tags.get(k, set())
        if x is None or y is None:
            side = y if x is None else x
            if "clone" in to | tu and side is not None:
                r.add("W11 shard item cloned from a different doubling/propagation decision (items)")
            else:
                r.fail(where, f"{k} only {'upstream' if y is None else 'ours'}, no model step created it")
            continue
        for attr in sorted(set(x) | set(y)):
            if x.get(attr) == y.get(attr):
                continue
            if attr == "rf" or attr.endswith("_tk"):
                if "refill" in to and "refill" in tu:
                    r.add("W10 refill credits every limit its capped accrual (attributes)")
                elif "refill" in to:
                    r.add("W10/W8 refill upstream does not make: every batch, every limit (attributes)")
                elif "refill" in tu and "refill-guarded" in to:
                    r.add("W19 refill withheld: an ADD would lift tokens above capacity (attributes)")
                elif "clone" in to | tu:
                    r.add("W11 shard item cloned from a different doubling/propagation decision (attributes)")
                else:
                    r.fail(where, f"{k}.{attr}: upstream {x.get(attr)} ours {y.get(attr)}, no refill predicted")
            elif attr == "shard_count" and ({"bump", "propagate", "clone"} & (to | tu)):
                r.add("W11 shard_count from the latest image (attributes)")
            elif "clone" in to | tu:
                r.add("W11 shard item cloned from a different doubling/propagation decision (attributes)")
            else:
                r.fail(where, f"{k}.{attr}: upstream {x.get(attr)} ours {y.get(attr)}")

    # W1: every watermark of ours is predicted (checked above for differing items; here per item).
    for k, it in ct.items():
        if is_snapshot(k) and any(a.startswith("wm#") for a in it):
            if it != o_pred.get(k):
                r.fail(where, f"{k}: watermarks {short({a: v for a, v in it.items() if a.startswith('wm#')})} "
                              f"not the predicted {short({a: v for a, v in (o_pred.get(k) or {}).items() if a.startswith('wm#')})}")
            else:
                r.add("W1 wm# watermark attributes on our snapshot items (items)")

    # Archives, and our dead letter (same bucket by default, its own prefix).
    o_events, o_audit_errors = audit_events(event, True)
    u_events, u_audit_errors = audit_events(event, False)
    dead = [o for o in ours["s3"] if o["key"].startswith("dead-letter/")]
    ours = {**ours, "s3": [o for o in ours["s3"] if not o["key"].startswith("dead-letter/")]}
    dead_letters(dead, event, invalid_modify, len(invalid_modify) + o_audit_errors, now_ms, where, r)
    archives(up, ours, o_events, u_events, now_ms, upstream_fails, where, r)

    # Responses, against recounts.
    recount_o = {
        "snapshots_updated": sum(1 for k, i in ct.items() if is_snapshot(k) and i != start.get(k)),
        "refills_written": sum(1 for k, i in ct.items() if not is_snapshot(k) and k in start
                               and n(i, "rf", None) == now_ms != n(start[k], "rf", None)),
        "events_archived": sum(len(o.get("body_lines") or []) for o in ours["s3"]),
        "errors": len(invalid_modify) + o_audit_errors,
        "processed": len(event.get("Records", [])),
    }
    recount_u = {
        "snapshots_updated": sum(n(i, "total_events") - n(start.get(k), "total_events")
                                 for k, i in ut.items() if is_snapshot(k)),
        "refills_written": sum(1 for k, i in ut.items() if not is_snapshot(k) and k in start
                               and n(i, "rf", None) == now_ms != n(start[k], "rf", None)),
        "events_archived": sum(len(o.get("body_lines") or []) for o in up["s3"]),
        "processed": len(event.get("Records", [])),
    }
    # the models agree with the recounts
    for name, pred in (("snapshots_updated", o_writes), ("refills_written", o_bkt.refills),
                       ("events_archived", len(o_events))):
        if recount_o[name] != pred:
            r.fail(where, f"ours: {name} recounted from the dump {recount_o[name]}, predicted {pred}")
    recount_u["errors"] = raising + u_audit_errors
    results(up["result"], ours["result"], recount_u, recount_o, u_writes, u_bkt.refills, len(u_events),
            upstream_fails, where, r)


def results(up, ours, rc_u, rc_o, u_writes, u_refills, u_archived, upstream_fails, where, r) -> None:
    if not isinstance(ours, dict) or ours.get("statusCode") != 200 or not isinstance(ours.get("body"), dict):
        r.fail(where, f"result: ours {short(ours)}")
        return
    bc = ours["body"]
    for name in ("processed", "snapshots_updated", "refills_written", "events_archived"):
        if bc.get(name) != rc_o[name]:
            r.fail(where, f"ours reports {name} {bc.get(name)}, the dump shows {rc_o[name]}")
    if len(bc.get("errors", [])) != rc_o["errors"]:
        r.fail(where, f"ours reports {len(bc.get('errors', []))} errors, the event has {rc_o['errors']} invalid records")
    if ours.get("batchItemFailures"):
        r.fail(where, f"batchItemFailures {ours['batchItemFailures']}")
    if isinstance(up, dict) and "errorType" in up:
        if upstream_fails:
            r.add("W3 upstream invocation fails on a malformed number; ours reports the record (responses)")
        else:
            r.fail(where, f"upstream failed without a malformed number in a batch with deltas: {short(up)}")
        return
    if upstream_fails:
        r.fail(where, f"upstream was predicted to fail: {short(up)}")
        return
    bu = up["body"]
    for name, pred in (("snapshots_updated", u_writes), ("refills_written", u_refills),
                       ("events_archived", u_archived)):
        if bu.get(name) != rc_u[name] or rc_u[name] != pred:
            r.fail(where, f"upstream reports {name} {bu.get(name)}, the dump shows {rc_u[name]}, predicted {pred}")
    if len(bu.get("errors", [])) != rc_u["errors"]:
        r.fail(where, f"upstream reports {len(bu.get('errors', []))} errors, predicted {rc_u['errors']}")
    if bu.get("processed") != bc.get("processed"):
        r.fail(where, f"processed: upstream {bu.get('processed')} ours {bc.get('processed')}")
    if bu["snapshots_updated"] != bc["snapshots_updated"]:
        r.add("W6 snapshots_updated counts items written, not deltas x windows (responses)")
    if bu["refills_written"] != bc["refills_written"]:
        r.add("W10/W8 refills_written: refill decisions (responses)")
    if bu["events_archived"] != bc["events_archived"]:
        r.add("W15 events_archived: audit rows upstream drops (responses)")
    if len(bu["errors"]) != len(bc["errors"]):
        r.add("W3/W15 errors: one line per invalid record (responses)")


def dead_letters(objects, event, invalid_modify, invalid_count, now_ms, where, r) -> None:
    """Ours only (docs/specification.md#dead-letters): every record we find invalid, and nothing
    else, is stored once, whole, with a reason, in one object under the batch's UTC day."""
    records = event.get("Records", [])
    if invalid_count == 0:
        if objects:
            r.fail(where, f"ours: dead-letter objects {[o['key'] for o in objects]} for a batch without invalid records")
        return
    if len(objects) != 1:
        r.fail(where, f"ours: {len(objects)} dead-letter objects for {invalid_count} invalid records")
        return
    (o,) = objects
    lines = o.get("body_lines") or []
    y, mo, d = utc_day(None, None, now_ms)
    if not o["key"].startswith(f"dead-letter/year={y:04d}/month={mo:02d}/day={d:02d}/dead-letter-"):
        r.fail(where, f"ours: dead-letter key {o['key']} is not under the batch's day")
    indices = [l.get("record_index") for l in lines]
    if len(lines) != invalid_count or len(set(indices)) != len(indices) or not set(invalid_modify) <= set(indices):
        r.fail(where, f"ours: dead letter holds records {indices}, predicted {invalid_count} incl. {invalid_modify}")
        return
    for l in lines:
        i = l["record_index"]
        if not isinstance(i, int) or not 0 <= i < len(records) or l.get("record") != records[i]:
            r.fail(where, f"ours: dead-letter line for record {i} does not hold the record as delivered")
        elif not l.get("reason"):
            r.fail(where, f"ours: dead-letter line for record {i} has no reason")
    r.add("dead letter: invalid records stored with their reasons (lines)", len(lines))


def archives(up, ours, o_events, u_events, now_ms, upstream_fails, where, r) -> None:
    # Ours: one object per UTC day, key from first/last sequence number and CRC-32 of the body.
    by_day = collections.defaultdict(list)
    for i, seq, raw, ts, d in o_events:
        by_day[utc_day(ts, d.get("ApproximateCreationDateTime"), now_ms)].append((seq, raw))
    seen_keys = set()
    for o in ours["s3"]:
        body = o["body"].encode()
        lines = o.get("body_lines") or []
        if (o["content_type"], o["content_encoding"], o["gzip"]) != ("application/x-ndjson", "gzip", True):
            r.fail(where, f"ours: object {o['key']} metadata {o['content_type']} {o['content_encoding']} {o['gzip']}")
        days = {utc_day(l.get("timestamp"), None, now_ms) for l in lines}
        if len(days) != 1:
            r.fail(where, f"ours: object {o['key']} holds events of days {sorted(days)}")
            continue
        (day,) = days
        seqs = by_day.get(day, [])
        if not seqs or len(seqs) != len(lines):
            r.fail(where, f"ours: object {o['key']} holds {len(lines)} lines, the event {len(seqs)} audit rows of {day}")
            continue
        first, last = min(seqs)[1], max(seqs)[1]
        want = (f"audit/year={day[0]:04d}/month={day[1]:02d}/day={day[2]:02d}/"
                f"audit-{first}-{last}-{binascii.crc32(body):08x}.jsonl.gz")
        if o["key"] != want:
            r.fail(where, f"ours: object key {o['key']}, predicted {want}")
        seen_keys.add(day)
    if seen_keys != set(by_day):
        r.fail(where, f"ours: objects for days {sorted(seen_keys)}, audit rows of days {sorted(by_day)}")
    # Upstream: one object under the earliest timestamp, named after the request id.
    if upstream_fails or not u_events:
        if up["s3"]:
            r.fail(where, f"upstream wrote {len(up['s3'])} objects where none was predicted")
    else:
        earliest = min(ts or "" for *_, ts, _ in u_events)
        y, mo, dd = utc_day(earliest, None, now_ms)
        dt = datetime.fromisoformat(earliest.replace("Z", "+00:00"))
        want = (f"audit/year={dt.year}/month={dt.month:02d}/day={dt.day:02d}/"
                f"audit-{up['request_id']}-{earliest.replace(':', '-').replace('+', '')}.jsonl.gz")
        if [o["key"] for o in up["s3"]] != [want]:
            r.fail(where, f"upstream objects {[o['key'] for o in up['s3']]}, predicted [{want}]")
    ku, kc = {o["key"] for o in up["s3"]}, {o["key"] for o in ours["s3"]}
    if ku != kc:
        r.add("W13/W14 archive object keys (per UTC day, from sequence numbers) (objects)", len(ku ^ kc))
    lu = collections.Counter(json.dumps(v, sort_keys=True) for o in up["s3"] for v in o.get("body_lines") or [])
    lc = collections.Counter(json.dumps(v, sort_keys=True) for o in ours["s3"] for v in o.get("body_lines") or [])
    for line in lu - lc:
        r.fail(where, f"audit line archived upstream but not by us: {line[:200]}")
    extra = lc - lu
    if extra:
        # W15: each extra line is an audit row upstream skips (legacy key, no action) or cannot reach.
        u_idx = {i for i, *_ in u_events}
        dropped = sum(1 for i, *_ in o_events if i not in u_idx)
        if sum(extra.values()) != dropped + (len(o_events) - dropped if upstream_fails else 0):
            r.fail(where, f"{sum(extra.values())} lines only ours, but {dropped} audit rows upstream drops")
        else:
            r.add("W15 audit rows archived that upstream drops (NDJSON lines)", sum(extra.values()))


# ------------------------------------------------------------------ self-test

ST_NS, ST_RF = "ns1", 1_700_002_790_000  # 2023-11-14T22:59:50Z
ST_NOW = ST_RF + 30_000


def _bucket_image(entity, shard, shard_count, rf, limits):
    img = {
        "PK": S(f"{ST_NS}/BUCKET#{entity}#r#{shard}"), "SK": S("#STATE"), "entity_id": S(entity), "resource": S("r"),
        "GSI2SK": S(f"BUCKET#{entity}#{shard}"), "GSI3SK": S(f"BUCKET#r#{shard}"),
        "GSI4SK": S(f"BUCKET#{entity}#r#{shard}"), "rf": N(rf), "shard_count": N(shard_count),
    }
    for name, (tk, cp, ra, rp, tc) in limits.items():
        img.update({f"b_{name}_tk": N(tk), f"b_{name}_cp": N(cp), f"b_{name}_ra": N(ra), f"b_{name}_rp": N(rp),
                    f"b_{name}_tc": N(tc)})
    return img


def _modify(seq, approx_s, old, new):
    return {"eventName": "MODIFY", "dynamodb": {"SequenceNumber": str(seq), "ApproximateCreationDateTime": approx_s,
                                                "Keys": {"PK": new["PK"], "SK": new["SK"]},
                                                "OldImage": old, "NewImage": new}}


def _audit(seq, pk, ts, event_id):
    old = {"PK": S(pk), "SK": S(f"#AUDIT#{event_id}"), "event_id": S(event_id), "entity_id": S("e"),
           "action": S("entity_created"), "timestamp": S(ts), "principal": {"NULL": True}, "resource": {"NULL": True}}
    return {"eventName": "REMOVE", "dynamodb": {"SequenceNumber": str(seq), "ApproximateCreationDateTime": 1_700_002_800,
                                                "Keys": {"PK": old["PK"], "SK": old["SK"]}, "OldImage": old}}


def _line(rec) -> dict:
    o = rec["dynamodb"]["OldImage"]
    return {"event_id": o["event_id"]["S"], "entity_id": "e", "action": "entity_created",
            "timestamp": o["timestamp"]["S"], "principal": None, "resource": None, "details": {}}


def _object(k, lines):
    body = "".join(json.dumps(l, separators=(",", ":")) + "\n" for l in lines)
    return {"bucket": "archive", "key": k, "content_type": "application/x-ndjson", "content_encoding": "gzip",
            "gzip": True, "body": body, "body_lines": lines}


def _scenario():
    """Event, fixture and the two dumps as each program, by its documented rules, leaves them.

    Bucket `e` (rf 22:59:50, record at 23:00:10, refill 30 s later): tpm consumed 80 tokens and
    has 60 stored, so the refill triggers: tpm accrues 30 s x 100/min = 50 tokens -> 60 (hand
    computed: 10_000 + 50_000 = 60_000 millitokens, under the cap); rpm accrues 50 tokens on 90
    stored, capped at 100 -> 100_000 (upstream leaves rpm at 90_000: W10). Bucket `h`: two records;
    the first says shard_count 1, the latest (and the stored item) 2, with wcu at 10%: upstream
    doubles from the first (condition fails, stays 2), ours from the latest -> 4 (W11); both clone
    shard 1 from the raising record. Two audit rows, one under a legacy key (W15)."""
    e_new = _bucket_image("e", 0, 1, ST_RF, {"tpm": (10_000, 100_000, 100_000, 60_000, 80_000),
                                             "rpm": (90_000, 100_000, 100_000, 60_000, 7_000),
                                             "wcu": (1_000_000, 1_000_000, 1_000_000, 1000, 0)})
    e_old = {**e_new, "b_tpm_tc": N(0), "b_tpm_tk": N(90_000), "b_rpm_tc": N(6_000)}
    h1_new = _bucket_image("h", 0, 1, ST_NOW, {"tpm": (5_000, 100_000, 100_000, 60_000, 3_000),
                                               "wcu": (100_000, 1_000_000, 1_000_000, 1000, 900_000)})
    h1_old = {**h1_new, "b_tpm_tc": N(1_000), "b_wcu_tc": N(899_000)}
    h2_new = {**h1_new, "shard_count": N(2)}
    records = [
        _modify(1000, 1_700_002_810, e_old, e_new),
        _modify(1100, 1_700_002_811, h1_old, h1_new),
        _modify(1200, 1_700_002_812, h1_new, h2_new),
        _audit(1300, f"{ST_NS}/AUDIT#e", "2023-11-14T23:00:00+00:00", "01A"),
        _audit(1400, "AUDIT#e", "2023-11-14T23:00:01+00:00", "01B"),
    ]
    event = {"Records": records}
    fixture = [canon_item(e_new), canon_item(h2_new)]
    start = {key(i): i for i in fixture}
    env = {"SNAPSHOT_WINDOWS": "hourly,daily", "SNAPSHOT_TTL_DAYS": "90"}
    buckets, _, _ = event_records(event)
    o_snap, o_writes = snapshot_model(buckets, ["hourly", "daily"], start, ST_NOW, 90, "approx", True, True)
    u_snap, u_writes = snapshot_model(buckets, ["hourly", "daily"], start, ST_NOW, 90, "rf", False, False)
    o_b, u_b = ours_buckets(buckets, start, ST_NOW), upstream_buckets(buckets, start, ST_NOW)
    # Hand-computed values the models must reproduce.
    ek, hk = key(e_new), key(h2_new)
    assert (n(o_b.items[ek], "b_tpm_tk"), n(o_b.items[ek], "b_rpm_tk"), n(o_b.items[ek], "rf")) == (60_000, 100_000, ST_NOW)
    assert (n(u_b.items[ek], "b_tpm_tk"), n(u_b.items[ek], "b_rpm_tk")) == (60_000, 90_000)
    assert (n(o_b.items[hk], "shard_count"), n(u_b.items[hk], "shard_count")) == (4, 2)
    assert (o_writes, u_writes) == (4, 6), (o_writes, u_writes)
    ours_table = sorted([*o_b.items.values(), *o_snap.values()], key=key)
    up_table = sorted([*u_b.items.values(), *u_snap.values()], key=key)
    a, b = _line(records[3]), _line(records[4])
    body_o = _object("", [a, b])["body"].encode()
    ours_s3 = [_object(f"audit/year=2023/month=11/day=14/audit-1300-1400-{binascii.crc32(body_o):08x}.jsonl.gz", [a, b])]
    up_s3 = [_object("audit/year=2023/month=11/day=14/audit-rid-2023-11-14T23-00-0000-00.jsonl.gz", [a])]
    base = {"event": "event.json", "now_ms": ST_NOW, "lambda_env": env, "request_id": "rid", "start_state": "final"}
    ours = {**base, "table": ours_table, "s3": ours_s3, "result": {"statusCode": 200, "batchItemFailures": [], "body": {
        "processed": 5, "snapshots_updated": o_writes, "refills_written": 1, "events_archived": 2, "errors": []}}}
    up = {**base, "table": up_table, "s3": up_s3, "result": {"statusCode": 200, "body": {
        "processed": 5, "snapshots_updated": u_writes, "refills_written": 1, "events_archived": 1,
        "errors": ["Error extracting audit event from record 4: ..."]}}}
    return event, fixture, up, ours


def _item(dump, pk_part, sk):
    return next(i for i in dump["table"] if pk_part in i["PK"]["S"] and i["SK"]["S"] == sk)


def _snap(dump, suffix):
    return next(i for i in dump["table"] if i["SK"]["S"].endswith(suffix) and "#USAGE#" in i["SK"]["S"])


def _set(item, attr, value):
    item[attr] = value


SELF_TEST_CASES = [
    ("W10: refilled tk off by one", lambda up, o: _set(_item(o, "BUCKET#e#", "#STATE"), "b_rpm_tk", N(100_001))),
    ("W10: refilled tk not capped", lambda up, o: _set(_item(o, "BUCKET#e#", "#STATE"), "b_rpm_tk", N(140_000))),
    ("W10: rf not the refill time", lambda up, o: _set(_item(o, "BUCKET#e#", "#STATE"), "rf", N(ST_NOW - 1))),
    ("W10: upstream tk off by one", lambda up, o: _set(_item(up, "BUCKET#e#", "#STATE"), "b_rpm_tk", N(90_001))),
    ("W11: shard_count not the latest image's doubled", lambda up, o: _set(_item(o, "BUCKET#h#r#0", "#STATE"),
                                                                           "shard_count", N(8))),
    ("W11: shard_count 3", lambda up, o: _set(_item(o, "BUCKET#h#r#0", "#STATE"), "shard_count", N(3))),
    ("W11: clone tk not cp // new", lambda up, o: _set(_item(o, "BUCKET#h#r#1", "#STATE"), "b_tpm_tk", N(100_000))),
    ("W1: watermark of a foreign record", lambda up, o: _set(_snap(o, "T23:00:00Z"), "wm#0", S("1100".zfill(40)))),
    ("W1: watermark not 40 digits", lambda up, o: _set(_snap(o, "T23:00:00Z"), "wm#0", S("1000"))),
    ("W5: counter off by one", lambda up, o: _set(_snap(o, "T23:00:00Z"), "tpm", N(n(_snap(o, "T23:00:00Z"), "tpm") + 1))),
    ("W4: daily total_events", lambda up, o: _set(_snap(o, "#daily"), "total_events", N(99))),
    ("W6: snapshots_updated not the recount", lambda up, o: o["result"]["body"].__setitem__("snapshots_updated", 7)),
    ("W15: events_archived not the recount", lambda up, o: o["result"]["body"].__setitem__("events_archived", 1)),
    ("upstream count not the recount", lambda up, o: up["result"]["body"].__setitem__("snapshots_updated", 5)),
    ("W14: key CRC", lambda up, o: o["s3"][0].__setitem__("key", o["s3"][0]["key"].replace("-1300-", "-1299-"))),
    ("W13: object holds two days", lambda up, o: o["s3"][0]["body_lines"][1].__setitem__(
        "timestamp", "2023-11-15T00:00:01+00:00")),
    ("errors: an invalid record not reported", lambda up, o: o["result"]["body"]["errors"].append("x")),
]


def self_test() -> int:
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        vec, dumps = Path(tmp) / "vectors", Path(tmp) / "dumps"
        vec.mkdir()
        dumps.mkdir()

        def check(mutate):
            event, fixture, up, ours = _scenario()
            if mutate:
                mutate(up, ours)
            (vec / "event.json").write_text(json.dumps(event))
            (vec / "fixture.json").write_text(json.dumps({"items": fixture}))
            (dumps / "event.upstream.json").write_text(json.dumps(up))
            (dumps / "event.candidate.json").write_text(json.dumps(ours))
            return run([dumps], vec)

        good = check(None)
        if good.unexplained:
            failures.append(f"correct pair: {good.unexplained}")
        for w in ("W1 ", "W4 ", "W5 ", "W6 ", "W10 ", "W11 ", "W13/W14 ", "W15 "):
            if not any(k.startswith(w) for k in good.kinds):
                failures.append(f"correct pair: no {w.strip()} difference found ({dict(good.kinds)})")
        for name, mutate in SELF_TEST_CASES:
            rep = check(mutate)
            status = "UNEXPLAINED as it must be" if rep.unexplained else "NOT CAUGHT"
            print(f"self-test: {name}: {status}")
            if not rep.unexplained:
                failures.append(name)
    for f in failures:
        print(f"SELF-TEST FAILED: {f}")
    print(f"self-test: {len(SELF_TEST_CASES)} wrong values, {len(failures)} failure(s)")
    return 1 if failures else 0


# ------------------------------------------------------------------ main


def default_vectors() -> Path:
    return Path(__file__).resolve().parents[3] / "shared" / "oracle" / "vectors" / "1"


def run(dirs: list[Path], vectors: Path) -> Report:
    report = Report()
    fixture = json.loads((vectors / "fixture.json").read_text())["items"]
    pairs = 0
    for d in dirs:
        for up_path in sorted(d.glob("*.upstream.json")):
            cand_path = up_path.with_name(up_path.name.replace(".upstream.", ".candidate."))
            up, ours = json.loads(up_path.read_text()), json.loads(cand_path.read_text())
            where = f"{d.name}/{up_path.name.split('.')[0]}"
            if ours.get("start_state", "final") != "final":
                report.fail(where, "only runs from the final fixture can be predicted")
                continue
            event = json.loads((vectors / ours["event"]).read_text())
            classify_pair(up, ours, event, fixture, where, report)
            pairs += 1
    report.pairs = pairs
    return report


def print_report(report: Report) -> int:
    print(f"{report.pairs} event files compared")
    for kind, k in sorted(report.kinds.items()):
        print(f"{k:6d}  {kind}")
    for line in report.unexplained:
        print(f"UNEXPLAINED {line}")
    print(f"{len(report.unexplained)} unexplained difference(s)")
    return 1 if report.unexplained or report.pairs == 0 else 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dirs", nargs="*", type=Path)
    ap.add_argument("--vectors", type=Path, default=None)
    ap.add_argument("--self-test", action="store_true")
    args = ap.parse_args()
    if args.self_test:
        return self_test()
    if not args.dirs:
        ap.error("DUMP_DIR required")
    return print_report(run(args.dirs, args.vectors or default_vectors()))


if __name__ == "__main__":
    sys.exit(main())
