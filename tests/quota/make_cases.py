"""Quota-clone cases computed by zae-limiter 0.17.0, replayed by component/tests/quota.rs.

Run with a Python that has zae-limiter 0.17.0, cronsim and tzdata installed:

    python3 -m venv /tmp/quotavenv
    /tmp/quotavenv/bin/pip install zae-limiter==0.17.0 cronsim tzdata
    /tmp/quotavenv/bin/python tests/quota/make_cases.py

It writes component/tests/quota-cases/{primitives,propagation}.json from a
fixed seed, so a rerun writes the same files. Every expected value is what
the library itself returns (or, for propagate_shard_count, the requests it
sends to a recording fake table); the inputs a Rust caller would get from
schedule evaluation (reset edges, effective capacities) are computed by the
library too and stored beside them.
"""

import json
import random
import sys
from decimal import Decimal
from pathlib import Path

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

import zae_limiter
import zae_limiter_aggregator.processor as proc
from zae_limiter import models, schema
from zae_limiter.models import QuotaDonorDebit, QuotaSibling, plan_quota_grant, quota_period_is_current
from zae_limiter.schedule import ScheduleEntry, effective_params, encode, encode_reset, prev_reset_edge

SEED = 20250917
OUT = Path(__file__).resolve().parents[2] / "component" / "tests" / "quota-cases"
SER = TypeSerializer()
DES = TypeDeserializer()

CRONS = ["0 0 * * *", "0 * * * *", "0 0 1 * *", "0 0 * * MON", "30 6 * * *"]
ZONES = ["UTC", "Europe/Paris", "America/New_York", "Asia/Kolkata"]
BASE_NOW = 1_735_689_600_000  # 2025-01-01T00:00:00Z


def wire(value):
    """A native value as compact-ready DynamoDB JSON."""
    return SER.serialize(value)


def wire_item(native):
    return {k: wire(v) for k, v in native.items()}


def pairs(d):
    return [[k, json.dumps(wire(v), separators=(",", ":"))] for k, v in d.items()]


def name_pairs(d):
    return [[k, v] for k, v in d.items()]


def rule_json(reset_sched, rsa, now):
    """The Rust ResetRule for a library reset rule at `now`."""
    if rsa is not None:
        return {"session": rsa}
    return {"calendar": prev_reset_edge(reset_sched, now)}


def random_rule(rng, now):
    """(reset_sched, rsa) of a random quota."""
    kind = rng.random()
    if kind < 0.35:
        return (), rng.choice([1, 60, 3600, 86400, rng.randint(1, 10**6)])
    if kind < 0.45:
        return (), None
    entries = tuple(
        ScheduleEntry.reset(rng.choice(CRONS), tz)
        for tz in [rng.choice(ZONES)]
        for _ in range(rng.choice([1, 1, 2]))
    )
    return entries, None


# --- primitives -------------------------------------------------------------


def grant_cases(rng, n):
    out = []
    for _ in range(n):
        count = rng.choice([2, 4, 8, 16, 32])
        siblings = []
        for _ in range(rng.randint(0, 6)):
            siblings.append(
                QuotaSibling(
                    shard_id=rng.randint(0, count - 1),
                    tokens_milli=rng.choice([0, -5, rng.randint(-10**6, 10**9), 2**62]),
                    grant_count=rng.choice([1, 2, 4, 8, 16, rng.randint(1, 40)]),
                    current=rng.random() < 0.75,
                )
            )
        shard = rng.randint(0, count - 1)
        share = rng.choice([0, rng.randint(1, 10**9), -3])
        g = plan_quota_grant(siblings, shard, count, share)
        out.append(
            {
                "siblings": [[s.shard_id, s.tokens_milli, s.grant_count, s.current] for s in siblings],
                "shard": shard,
                "count": count,
                "share": share,
                "expect": [g.donor_shard, g.tokens_milli, g.donor_grant_count],
            }
        )
    return out


def period_cases(rng, n):
    out = []
    for _ in range(n):
        now = BASE_NOW + rng.randint(-10**10, 10**10)
        reset_sched, rsa = random_rule(rng, now)
        rf = now - rng.choice([0, 1, 1000, rng.randint(0, 10**9), -5000])
        ws = None if rng.random() < 0.15 else now - rng.randint(-1000, 3 * 86_400_000)
        wa = None if rng.random() < 0.3 else (ws if ws is not None and rng.random() < 0.5 else rf - rng.randint(-10**6, 10**6))
        if ws is not None and rsa is not None and rng.random() < 0.2:
            ws = now - rsa * 1000 + rng.choice([-1, 0, 1])  # the window's end
        if rsa is None and reset_sched and rng.random() < 0.3:
            rf = prev_reset_edge(reset_sched, now) + rng.choice([-1, 0, 1])  # the edge
        got = quota_period_is_current(reset_sched, rsa, rf, ws, wa, now)
        out.append({"rule": rule_json(reset_sched, rsa, now), "rf": rf, "ws": ws, "wa": wa, "now": now, "expect": got})
    return out


def random_sibling_item(rng, name, count):
    item = {}
    if rng.random() < 0.9:
        item[schema.bucket_attr(name, "tk")] = Decimal(rng.choice([0, -7, rng.randint(0, 2 * 10**8)]))
    r = rng.random()
    if r < 0.4:
        item[schema.bucket_attr(name, "gc")] = Decimal(rng.choice([1, 2, 4, count]))
    elif r < 0.5:
        item[schema.bucket_attr(name, "gc")] = Decimal(rng.choice([0, -3]))  # corrupt
    elif r < 0.55:
        item[schema.bucket_attr(name, "gc")] = None  # NULL: reads as absent
    if rng.random() < 0.85:
        item["shard_count"] = Decimal(rng.choice([0, 1, count, count * 2, rng.randint(-2, 64)]))
    if rng.random() < 0.8:
        item["rf"] = Decimal(BASE_NOW - rng.randint(-10**6, 10**9))
    if rng.random() < 0.6:
        item[schema.bucket_attr(name, "ws")] = Decimal(BASE_NOW - rng.randint(-1000, 3 * 86_400_000))
    if rng.random() < 0.5:
        item[schema.bucket_attr(name, "wa")] = Decimal(BASE_NOW - rng.randint(-1000, 3 * 86_400_000))
    return item


def sibling_cases(rng, n):
    out = []
    for _ in range(n):
        now = BASE_NOW + rng.randint(-10**6, 10**6)
        name = rng.choice(["tpd", "q", "tokens_day"])
        count = rng.choice([1, 2, 4, 8, 16])
        item = random_sibling_item(rng, name, count)
        reset_sched, rsa = random_rule(rng, now)
        capacity = rng.choice([0, 1000, 10**8, rng.randint(-10, 10**9)])
        shard = rng.randint(0, 31)
        s = proc._quota_sibling_from_image(shard, item, name, (reset_sched, rsa), capacity, now)
        out.append(
            {
                "shard": shard,
                "item": wire_item(item),
                "limit": name,
                "rule": rule_json(reset_sched, rsa, now),
                "capacity": capacity,
                "now": now,
                "expect": None if s is None else [s.shard_id, s.tokens_milli, s.grant_count, s.current],
            }
        )
    return out


def debit_cases(rng, n):
    out = []
    for _ in range(n):
        now = BASE_NOW + rng.randint(-10**9, 10**9)
        name = rng.choice(["tpd", "q"])
        item = random_sibling_item(rng, name, rng.choice([2, 4, 8]))
        reset_sched, rsa = random_rule(rng, now)
        shard, gc, tokens = rng.randint(0, 15), rng.choice([1, 2, 4, 8]), rng.randint(1, 10**8)
        d = proc._donor_debit(shard, gc, tokens, name, item, (reset_sched, rsa), now)
        out.append(
            {
                "shard": shard,
                "grant_count": gc,
                "tokens": tokens,
                "limit": name,
                "item": wire_item(item),
                "rule": rule_json(reset_sched, rsa, now),
                "expect": debit_json(d),
            }
        )
    return out


def debit_json(d):
    return [d.shard_id, d.limit_name, d.tokens_milli, d.grant_count, d.guard_rf_ms, d.guard_wa_ms, d.legacy_shard_count]


def request_json(req, update=True):
    """`Update` / `ConditionCheck` / update_item kwargs as RequestParts fields."""
    return {
        "pk": req["Key"]["PK"],
        "sk": req["Key"]["SK"],
        "update": req.get("UpdateExpression") if update else None,
        "condition": req["ConditionExpression"],
        "names": name_pairs(req.get("ExpressionAttributeNames", {})),
        "values": pairs(req.get("ExpressionAttributeValues", {})),
    }


def donor_update_cases(rng, n):
    out = []
    for _ in range(n):
        debits = []
        for _ in range(rng.randint(0, 5)):
            guard = rng.random()
            debits.append(
                QuotaDonorDebit(
                    shard_id=rng.randint(0, 7),
                    limit_name=rng.choice(["tpd", "q", "x_y"]),
                    tokens_milli=rng.randint(1, 10**9),
                    grant_count=rng.choice([1, 2, 4, 8]),
                    guard_rf_ms=BASE_NOW - rng.randint(0, 10**8) if guard < 0.45 else None,
                    guard_wa_ms=BASE_NOW - rng.randint(0, 10**8) if 0.45 <= guard < 0.8 else None,
                    legacy_shard_count=rng.choice([1, 2, 4, 8]) if rng.random() < 0.35 else None,
                )
            )
        items = proc._donor_update_items("tbl", "ns1", "e#1", "gpt-4", debits)
        out.append({"debits": [debit_json(d) for d in debits], "expect": [request_json(i["Update"]) for i in items]})
    return out


def freeze_cases(rng, n):
    out = []
    for _ in range(n):
        key = {"PK": f"ns/BUCKET#e#r#{rng.randint(1, 31)}", "SK": "#STATE"}
        count = rng.choice([2, 4, 8, 16, 32])
        grants = [(rng.choice(["tpd", "q", "lq"]), rng.choice([1, 2, 4, 8])) for _ in range(rng.randint(0, 4))]
        req = proc._quota_count_freeze(key, count, grants)
        out.append({"pk": key["PK"], "count": count, "grants": grants, "expect": request_json(req)})
    return out


def owner_cases(rng, n):
    out = []
    for _ in range(n):
        exists = rng.choice([True, False, None])
        pgen = rng.choice([None, 0, 1, rng.randint(1, 10**13)])
        pinc = rng.choice([None, "-", "abc", 'q"uote', "2024-01-01T00:00:00Z"])
        expr, names, values = schema.owner_meta_condition(exists=exists, pgen=pgen, pinc=pinc)
        out.append(
            {
                "exists": exists,
                "pgen": pgen,
                "pinc": pinc,
                "expect": {"expression": expr, "names": name_pairs(names), "values": pairs(values)},
            }
        )
    return out


def is_quota_cases(rng, n):
    out = []
    for _ in range(n):
        name = rng.choice(["tpd", "rpm"])
        image = {}
        if rng.random() < 0.8:
            image[schema.bucket_attr(name, "ra")] = {"N": str(rng.choice([0, 0, 1000, -1]))}
        if rng.random() < 0.3:
            image[schema.bucket_attr(name, "rsa")] = rng.choice([{"N": "60"}, {"S": "x"}])
        if rng.random() < 0.5:
            image[schema.bucket_attr(name, "rsched")] = {"S": rng.choice(["-", "", "1m0h0"])}
        if rng.random() < 0.5:
            image["rsched"] = rng.choice([{"S": "1m0h0"}, {"S": ""}, {"N": "1"}])
        out.append({"limit": name, "image": image, "expect": proc._is_quota_limit(name, image)})
    return out


# --- propagate_shard_count end to end ---------------------------------------


class Recorder:
    """A boto3 Table double that records every request and lets each succeed."""

    name = "tbl"

    def __init__(self, items, later_count, read_fails):
        self.items = items
        self.later_count = later_count
        self.read_fails = read_fails
        self.updates = []
        self.repairs = []
        self.transactions = []
        self.repair_reads = 0
        recorder = self

        class Client:
            def transact_write_items(self, TransactItems):
                recorder.transactions.append(TransactItems)

        class Meta:
            client = Client()

        self.meta = Meta()

    def get_item(self, Key, ConsistentRead=False, ProjectionExpression=None):
        if ProjectionExpression is not None:
            self.repair_reads += 1
            if self.later_count is None:
                return {}
            return {"Item": {"shard_count": Decimal(self.later_count)}}
        if self.read_fails:
            raise ClientError({"Error": {"Code": "ProvisionedThroughputExceededException"}}, "GetItem")
        item = self.items.get(Key["PK"])
        return {"Item": item} if item is not None else {}

    def update_item(self, **kw):
        (self.repairs if self.repair_reads else self.updates).append(kw)


QUOTAS = ["tpd", "tps", "tpm_q"]


def make_image(rng, now, old_count, new_count):
    """(NewImage wire, OldImage wire) of a raising shard-0 record."""
    img = {
        "PK": {"S": "ns1/BUCKET#user-1#gpt-4#0"},
        "SK": {"S": "#STATE"},
        "entity_id": {"S": "user-1"},
        "resource": {"S": "gpt-4"},
        "GSI2PK": {"S": "ns1/RESOURCE#gpt-4"},
        "GSI2SK": {"S": "BUCKET#user-1#0"},
        "GSI3PK": {"S": "ns1/ENTITY#user-1"},
        "GSI3SK": {"S": "BUCKET#gpt-4#0"},
        "GSI4PK": {"S": "ns1"},
        "GSI4SK": {"S": "BUCKET#user-1#gpt-4#0"},
        "rf": {"N": str(now - rng.randint(0, 10**8))},
        "shard_count": {"N": str(new_count)},
    }
    tz = rng.choice(ZONES)
    if rng.random() < 0.5:
        img["sched_tz"] = {"S": tz}
    else:
        tz = "UTC"
    item_rsched = None
    if rng.random() < 0.6:
        item_rsched, _ = encode_reset((ScheduleEntry.reset(rng.choice(CRONS), tz),))
        img["rsched"] = {"S": item_rsched}
    if rng.random() < 0.2:
        compact, _ = encode((ScheduleEntry(rng.choice(["* * * * *", "0 0 1 1 *"]), tz, scale=0.5),))
        img["sched"] = {"S": compact}
    if rng.random() < 0.04:
        img["rsched"] = {"S": "garbage"}  # undecodable: no clone at all
    limits = ["wcu"]
    if rng.random() < 0.6:
        limits.append("rpm")
    for q in QUOTAS:
        if rng.random() < 0.55:
            limits.append(q)
    if rng.random() < 0.2:
        limits.append("tps")
    rng.shuffle(limits)
    for name in dict.fromkeys(limits):
        cp = 1_000_000 if name == "wcu" else rng.choice([100_000, 10**8, 7 * 10**7 + 3])
        a = lambda f: schema.bucket_attr(name, f)  # noqa: E731
        img[a("tk")] = {"N": str(rng.randint(0, cp))}
        img[a("cp")] = {"N": str(cp)}
        img[a("tc")] = {"N": str(rng.randint(0, 10**9))}
        if name in ("wcu", "rpm"):
            img[a("ra")] = {"N": str(cp)}
            img[a("rp")] = {"N": str(rng.choice([1000, 60_000]))}
            continue
        img[a("ra")] = {"N": "0"}
        img[a("rp")] = {"N": "1000"}
        session = name == "tps" or rng.random() < 0.2
        if session:
            rsa = rng.choice([60, 3600, 86400])
            img[a("rsa")] = {"N": str(rsa)}
            if item_rsched is not None:
                img[a("rsched")] = {"S": "-"}
            ws = now - rng.randint(-1000, rsa * 1500)
            img[a("ws")] = {"N": str(ws)}
            if rng.random() < 0.8:
                img[a("wa")] = {"N": str(ws if rng.random() < 0.8 else ws - 1)}
        elif item_rsched is None or rng.random() < 0.3:
            own, _ = encode_reset((ScheduleEntry.reset(rng.choice(CRONS), tz),))
            img[a("rsched")] = {"S": own}
        if rng.random() < 0.3:
            img[a("tu")] = {"N": str(rng.randint(1, 10**6))}
        if rng.random() < 0.3:
            img[a("wtc")] = {"N": str(rng.randint(0, 10**6))}
        if rng.random() < 0.5:
            img[a("gc")] = {"N": str(old_count)}
    if rng.random() < 0.5:
        img["rf"] = {"N": str(now - rng.randint(0, 3 * 86_400_000))}
    r = rng.random()
    if r < 0.3:
        img["pgen"] = {"N": str(rng.choice([0, 5, BASE_NOW]))}
    if r < 0.5 or rng.random() < 0.2:
        img["pinc"] = {"S": rng.choice(["-", "inc-1"])}
    if rng.random() < 0.3:
        img["cascade"] = {"BOOL": True}
        img["parent_id"] = {"S": "p-1"}
    return img


def make_old_items(rng, img, now, old_count, new_count):
    names = [k[2:-3] for k in img if k.startswith("b_") and k.endswith("_cp")]
    items = {}
    for shard in range(old_count):
        if rng.random() < 0.1:
            continue
        item = {k: DES.deserialize(v) for k, v in img.items()}
        item["PK"] = f"ns1/BUCKET#user-1#gpt-4#{shard}"
        stored = old_count
        r = rng.random()
        if r < 0.06:
            stored = new_count * 2  # a later doubling overtook the record
        elif r < 0.12:
            stored = new_count
        elif r < 0.16:
            stored = max(1, old_count // 2)
        item["shard_count"] = Decimal(stored)
        item["rf"] = Decimal(now - rng.randint(-1000, 3 * 86_400_000))
        for name in names:
            a = lambda f: schema.bucket_attr(name, f)  # noqa: E731
            cp = int(item[a("cp")])
            item[a("tk")] = Decimal(rng.choice([0, cp // max(1, old_count), rng.randint(-5, cp), cp]))
            if rng.random() < 0.08:
                del item[a("tk")]
            g = rng.random()
            if g < 0.45:
                item[a("gc")] = Decimal(rng.choice([old_count, max(1, old_count // 2), 1]))
            elif g < 0.5:
                item[a("gc")] = Decimal(0)
            else:
                item.pop(a("gc"), None)
            if a("ws") in item or rng.random() < 0.1:
                ws = now - rng.randint(-1000, 2 * 86_400_000)
                item[a("ws")] = Decimal(ws)
                if rng.random() < 0.7:
                    item[a("wa")] = Decimal(ws if rng.random() < 0.8 else ws - 10)
                else:
                    item.pop(a("wa"), None)
        if rng.random() < 0.2:  # a legacy quota shard 0's image does not carry
            item["b_lq_cp"] = Decimal(rng.choice([10**6, 10**8]))
            item["b_lq_tk"] = Decimal(rng.randint(0, 10**8))
            item["b_lq_ra"] = Decimal(0)
            item["b_lq_rp"] = Decimal(1000)
            item["b_lq_tc"] = Decimal(0)
            if "rsched" not in item or rng.random() < 0.5:
                item["b_lq_rsched"] = encode_reset((ScheduleEntry.reset("0 0 * * *", "UTC"),))[0]
            if rng.random() < 0.3:
                item["b_lq_sched"] = encode((ScheduleEntry("* * * * *", "UTC", scale=0.25),))[0]
            if rng.random() < 0.2:
                item["b_lq_gc"] = Decimal(1)
        items[shard] = item
    return items


def resolve_limits(img, now):
    """What a Rust caller resolves off the image with schedule code: per limit
    its base and effective capacity and quota rule, or the first schedule
    error -- the head of propagate_shard_count, step by step."""
    limit_attrs = proc._extract_limit_attrs(img)
    tz = img.get("sched_tz", {}).get("S", "UTC")
    item_sched, sched_error = proc._decode_schedule(img.get("sched", {}).get("S"), tz)
    out = []
    for name, info in limit_attrs.items():
        if name == "wcu":
            out.append({"name": name, "cp": info["cp_milli"], "effective_cp": info["cp_milli"], "quota": None})
            continue
        compact = img.get(f"b_{name}_sched", {}).get("S")
        none = compact == schema.BUCKET_SCHED_NONE
        limit_sched, limit_error = ((), None) if none else proc._decode_schedule(compact, tz)
        error = sched_error or limit_error
        quota = None
        if error is None and proc._is_quota_limit(name, img):
            reset_sched, rsa, error = proc._quota_reset_rule(name, img)
            quota = rule_json(reset_sched, rsa, now)
        if error is not None:
            return out, f"{name}: {error}"
        cp = effective_params(info["cp_milli"], info["ra_milli"], info["rp_ms"], () if none else (limit_sched or item_sched), now)[0]
        out.append({"name": name, "cp": info["cp_milli"], "effective_cp": cp, "quota": quota})
    return out, None


def legacy_capacities(items, now):
    """Effective capacity of every limit of every old item, as _legacy_quota_sizes computes it."""
    out = {}
    for shard, item in items.items():
        w = wire_item(item)
        tz = w.get("sched_tz", {}).get("S", "UTC")
        for name, info in proc._extract_limit_attrs(w).items():
            own = w.get(f"b_{name}_sched", {}).get("S")
            sched = ()
            if own != schema.BUCKET_SCHED_NONE:
                sched, error = proc._decode_schedule(own or w.get("sched", {}).get("S"), tz)
                if error is not None:
                    sched = ()
            out[f"{shard}:{name}"] = effective_params(info["cp_milli"], 0, info["rp_ms"], sched, now)[0]
    return out


LOGS = []
proc.logger._log = lambda level, message, **extra: LOGS.append((message, extra))

SKIPS = {
    "Undecodable stored schedule - not pre-creating shards": "schedule_error",
    "Sibling read failed - propagating without the quota freeze or clones": "read_failed",
    "Quota clones skipped - the record is overtaken by a later doubling": "overtaken",
}


def propagation_cases(rng, n):
    out = []
    for _ in range(n):
        now = BASE_NOW + rng.randint(0, 400 * 86_400_000)
        old_count = rng.choice([1, 1, 2, 2, 4, 4, 8])
        new_count = old_count * rng.choice([2, 2, 2, 4])
        img = make_image(rng, now, old_count, new_count)
        old_img = dict(img)
        old_img["shard_count"] = {"N": str(old_count)}
        items = make_old_items(rng, img, now, old_count, new_count)
        later = rng.choice([None, new_count, new_count, new_count * 2])
        read_fails = rng.random() < 0.04
        table = Recorder({i["PK"]: i for i in items.values()}, later, read_fails)
        record = {"eventName": "MODIFY", "dynamodb": {"NewImage": img, "OldImage": old_img}}
        LOGS.clear()
        proc.propagate_shard_count(table, record, now)
        skipped = [SKIPS[m] for m, _ in LOGS if m in SKIPS]
        stale = [e["shard_id"] for m, e in LOGS if m == "Clone skipped - a quota move onto a pending reset or roll"]
        limits, error = resolve_limits(img, now)
        out.append(
            {
                "now": now,
                "old_count": old_count,
                "new_count": new_count,
                "image": img,
                "limits": limits,
                "schedule_error": error,
                "read_failed": read_fails,
                "old_items": {str(s): wire_item(i) for s, i in items.items()},
                "legacy_capacity": legacy_capacities(items, now),
                "later_count": later,
                "expect": {
                    "skipped_all": skipped[0] if skipped else None,
                    "stale_moves": stale,
                    "path1": [
                        request_json(u) if "ExpressionAttributeNames" in u else {"pk": u["Key"]["PK"], "plain": True}
                        for u in table.updates
                    ],
                    "transactions": [transaction_json(t) for t in table.transactions],
                    "repair_read": table.repair_reads > 0,
                    "repair": [request_json(u) for u in table.repairs],
                },
            }
        )
    return out


def transaction_json(items):
    put = items[0]["Put"]
    assert put["ConditionExpression"] == "attribute_not_exists(PK)"
    check = items[-1]["ConditionCheck"]
    return {
        "put": [[k, json.dumps(wire(v), separators=(",", ":"))] for k, v in put["Item"].items()],
        "updates": [request_json(i["Update"]) for i in items[1:-1]],
        "check": request_json(check, update=False),
    }


def main():
    assert zae_limiter.__version__ == "0.17.0", zae_limiter.__version__
    rng = random.Random(SEED)
    primitives = {
        "plan_quota_grant": grant_cases(rng, 200),
        "quota_period_is_current": period_cases(rng, 200),
        "sibling_from_item": sibling_cases(rng, 200),
        "donor_debit": debit_cases(rng, 100),
        "donor_update_items": donor_update_cases(rng, 100),
        "quota_count_freeze": freeze_cases(rng, 60),
        "owner_meta_condition": owner_cases(rng, 60),
        "is_quota_limit": is_quota_cases(rng, 100),
    }
    propagation = propagation_cases(rng, 120)
    OUT.mkdir(parents=True, exist_ok=True)
    for name, data in [("primitives", primitives), ("propagation", propagation)]:
        text = json.dumps(data, indent=None, separators=(",", ":"), sort_keys=False)
        (OUT / f"{name}.json").write_text(text + "\n")
    total = sum(len(v) for v in primitives.values()) + len(propagation)
    print(f"{total} cases ({len(propagation)} propagations)", file=sys.stderr)


if __name__ == "__main__":
    main()
