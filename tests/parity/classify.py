#!/usr/bin/env python3
"""Explain every difference between the Python aggregator's final state and ours.

    classify.py DUMP_DIR [DUMP_DIR ...]

A DUMP_DIR holds `<event>.upstream.json` / `<event>.candidate.json` pairs written by the
oracle's `compare.py` (zae-limiter 0.13.0's aggregator vs `zae-aggregator invoke`, same events,
same seeded table, same clock). Each difference is assigned to one of the deliberate changes the
docs/decisions.md lists (W1, W3, W4, W5, W6, W10, W11, W13/W14, W15 ...) by a rule that checks what that
change predicts, not by its text; anything no rule explains is printed as UNEXPLAINED and makes
the exit code 1.

Rules, in order:
* snapshot items (SK `#USAGE#...`):
  - `wm#...` attributes exist only on ours (W1: exactly-once watermarks, S values);
  - conservation first: per (PK, resource, counter) the sum over all snapshot items must be
    equal on both sides, and so must the number of windows times deltas behind `total_events`;
  - folding our `#daily` / `#monthly` items back into upstream's shared keys (adding
    counters), an item that then equals upstream's is a W4 split; what still differs (with
    conservation holding) moved between windows because the window time is the record's
    ApproximateCreationDateTime, not the bucket's `rf` (W5);
* bucket items (`#STATE`):
  - token balances (`b_*_tk`) of a bucket both sides refilled (both set `rf` to now) where
    ours is >= upstream's: W10 (every limit gets the refill it accrued);
  - a refill only one side made, on a bucket with a consumption in the batch: W10 (upstream
    decides on the limits below threshold only, and only in batches with deltas: W8);
  - `shard_count` doubled from the latest image where upstream used the first record's
    stale value (its condition then failed): W11;
* the result body: `snapshots_updated` counts items, not deltas (W6); `errors` and
  `events_archived` by the per-record policies (W3, W15); a function error upstream on a
  malformed number that we report per record (W3);
* archive objects: keys differ (W13 per-day objects, W14 keys from sequence numbers); the
  NDJSON lines are compared as a multiset across objects: every upstream line must be in
  ours; lines only in ours are audit rows upstream drops (W15).
"""

from __future__ import annotations

import collections
import json
import sys
from pathlib import Path

SNAPSHOT_METADATA = {
    "PK", "SK", "entity_id", "resource", "window", "window_start", "total_events",
    "GSI2PK", "GSI2SK", "GSI4PK", "GSI4SK", "ttl",
}


def num(av: dict | None) -> int:
    return int(av["N"]) if av and "N" in av else 0


def canon(av):
    if isinstance(av, dict) and "N" in av:
        return {"N": str(int(av["N"])) if av["N"].lstrip("-").isdigit() else av["N"]}
    return av


def key(item: dict) -> tuple[str, str]:
    return item["PK"]["S"], item["SK"]["S"]


def counters(item: dict) -> dict[str, int]:
    return {k: num(v) for k, v in item.items() if "N" in v and k not in SNAPSHOT_METADATA}


def folded_sk(sk: str) -> str:
    for suffix in ("#daily", "#monthly"):
        if sk.endswith(suffix):
            return sk[: -len(suffix)]
    return sk


class Report:
    def __init__(self) -> None:
        self.kinds: collections.Counter[str] = collections.Counter()
        self.unexplained: list[str] = []

    def add(self, kind: str, n: int = 1) -> None:
        self.kinds[kind] += n

    def fail(self, where: str, what: str) -> None:
        self.unexplained.append(f"{where}: {what}")


def shifted_windows(event: dict) -> set[tuple[str, str]]:
    """(snapshot PK, resource) pairs with a record whose `rf` hour differs from its
    ApproximateCreationDateTime hour: the only items W5 can change."""
    out = set()
    for rec in event.get("Records", []):
        d = rec.get("dynamodb", {})
        new = d.get("NewImage") or {}
        pk, approx = new.get("PK", {}).get("S", ""), d.get("ApproximateCreationDateTime")
        if "BUCKET#" not in pk or approx is None or "rf" not in new:
            continue
        ns = pk.split("/BUCKET#")[0] + "/" if "/BUCKET#" in pk else ""
        entity, resource = new.get("entity_id", {}).get("S"), new.get("resource", {}).get("S")
        if entity is None or resource is None:
            continue
        try:
            rf_hour, approx_hour = int(new["rf"]["N"]) // 3_600_000, int(approx) // 3600
        except (KeyError, ValueError):  # malformed records: planned as invalid
            continue
        if rf_hour != approx_hour:
            out.add((f"{ns}ENTITY#{entity}", resource))
    return out


def snapshots(up: list[dict], ours: list[dict], shifted: set, where: str, r: Report) -> None:
    u = {key(i): i for i in up if i["SK"]["S"].startswith("#USAGE#")}
    c = {key(i): i for i in ours if i["SK"]["S"].startswith("#USAGE#")}
    for k, item in c.items():
        wm = [a for a in item if a.startswith("wm#")]
        for a in wm:
            if "S" not in item[a] or len(item[a]["S"]) != 40:
                r.fail(where, f"{k} {a} is not a 40-digit string: {item[a]}")
        if wm:
            r.add("W1 wm# watermark attributes on our snapshot items (per item)")

    # Conservation per (PK, resource, counter).
    def totals(items: dict) -> collections.Counter:
        t: collections.Counter = collections.Counter()
        for (pk, _), i in items.items():
            res = i.get("resource", {}).get("S", "?")
            for name, v in counters(i).items():
                t[(pk, res, name)] += v
            t[(pk, res, "total_events")] += num(i.get("total_events"))
        return t

    tu, tc = totals(u), totals(c)
    for k in set(tu) | set(tc):
        if tu[k] != tc[k]:
            r.fail(where, f"usage not conserved for {k}: upstream {tu[k]}, ours {tc[k]}")

    # Fold ours into upstream's keys.
    folded: dict[tuple[str, str], collections.Counter] = collections.defaultdict(collections.Counter)
    split_keys = set()
    for (pk, sk), i in c.items():
        fk = (pk, folded_sk(sk))
        if fk[1] != sk:
            split_keys.add(fk)
        folded[fk].update(counters(i))
        folded[fk]["total_events"] += num(i.get("total_events"))
    upstream_view = {k: collections.Counter({**counters(i), "total_events": num(i.get("total_events"))}) for k, i in u.items()}
    for k in set(upstream_view) | set(folded):
        a, b = upstream_view.get(k, collections.Counter()), folded.get(k, collections.Counter())
        a = collections.Counter({n: v for n, v in a.items() if v})
        b = collections.Counter({n: v for n, v in b.items() if v})
        if a == b:
            if k in split_keys:
                r.add("W4 daily/monthly items split from the shared hour-00/day-1 item")
        else:
            item = u.get(k) or next(i for (pk, sk), i in c.items() if (pk, folded_sk(sk)) == k)
            if (k[0], item.get("resource", {}).get("S")) in shifted:
                r.add("W5 usage filed under the record's ApproximateCreationDateTime window, not rf's")
            else:
                r.fail(where, f"{k}: upstream {dict(a)} ours {dict(b)}, and no record of it has rf in another hour")

    # Metadata of items present on both sides under the same key.
    for k in set(u) & set(c):
        for attr in SNAPSHOT_METADATA - {"total_events"}:
            x, y = u[k].get(attr), c[k].get(attr)
            if canon(x) != canon(y):
                if attr == "window" and k in split_keys:
                    r.add("W4 window label of a formerly shared item")
                elif attr in ("window", "window_start", "resource") and x is None:
                    pass
                else:
                    r.fail(where, f"{k}.{attr}: upstream {x} ours {y}")


def buckets(up: list[dict], ours: list[dict], fixture: dict, now_ms: int, consumed: set, where: str, r: Report) -> None:
    u = {key(i): i for i in up if not i["SK"]["S"].startswith("#USAGE#")}
    c = {key(i): i for i in ours if not i["SK"]["S"].startswith("#USAGE#")}
    for k in set(u) | set(c):
        x, y = u.get(k), c.get(k)
        if x is None or y is None:
            if "/BUCKET#" in k[0] and k[1] == "#STATE":
                r.add("W11 shard items cloned from a different doubling decision")
            else:
                r.fail(where, f"{k} only {'upstream' if y is None else 'ours'}")
            continue
        for attr in sorted(set(x) | set(y)):
            a, b = canon(x.get(attr)), canon(y.get(attr))
            if a == b:
                continue
            urf, crf = num(x.get("rf")), num(y.get("rf"))
            if attr.endswith("_tk") or attr == "rf":
                if urf == now_ms and crf == now_ms and (attr == "rf" or num(b) >= num(a)):
                    r.add("W10 refill credits every limit its accrued tokens")
                elif (crf == now_ms) != (urf == now_ms) and k[0] in consumed:
                    r.add("W10/W8 refill decided on every limit (upstream: limits below threshold only)")
                else:
                    r.fail(where, f"{k}.{attr}: upstream {a} ours {b}")
            elif attr == "shard_count":
                before = num(fixture.get(k, {}).get("shard_count"))
                if num(a) == before and num(b) == 2 * before:
                    r.add("W11 doubling decided from the latest image (upstream's stale first image fails its condition)")
                elif num(b) > num(a):
                    r.add("W11 shard_count propagated from the latest image")
                else:
                    r.fail(where, f"{k}.shard_count: upstream {a} ours {b} (before {before})")
            else:
                r.fail(where, f"{k}.{attr}: upstream {a} ours {b}")


def results(up, ours, where: str, r: Report) -> None:
    if isinstance(up, dict) and "errorType" in up:
        if isinstance(ours, dict) and ours.get("statusCode") == 200:
            r.add("W3 upstream invocation fails on a malformed number; ours reports the record")
        else:
            r.fail(where, f"result: upstream {up} ours {ours}")
        return
    if not isinstance(ours, dict) or ours.get("statusCode") != up.get("statusCode"):
        r.fail(where, f"result: upstream {up} ours {ours}")
        return
    bu, bc = up["body"], ours["body"]
    if bu["processed"] != bc["processed"]:
        r.fail(where, f"processed {bu['processed']} != {bc['processed']}")
    if bu["snapshots_updated"] != bc["snapshots_updated"]:
        r.add("W6 snapshots_updated counts items written, not deltas")
    if len(bu["errors"]) != len(bc["errors"]):
        r.add("W3/W15 errors: one line per invalid record")
    if bu["events_archived"] != bc["events_archived"]:
        if bc["events_archived"] > bu["events_archived"]:
            r.add("W15 more audit rows archived")
        else:
            r.fail(where, f"events_archived {bu['events_archived']} > ours {bc['events_archived']}")
    if bu["refills_written"] != bc["refills_written"]:
        r.add("W10/W8 refill decisions")
    if ours.get("batchItemFailures"):
        r.fail(where, f"batchItemFailures {ours['batchItemFailures']}")


def archives(up: list[dict], ours: list[dict], where: str, r: Report) -> None:
    ku, kc = {o["key"] for o in up}, {o["key"] for o in ours}
    if ku != kc:
        r.add("W13/W14 archive object keys (per UTC day, from sequence numbers)")
    for o in ours:
        if (o["content_type"], o["content_encoding"], o["gzip"]) != ("application/x-ndjson", "gzip", True):
            r.fail(where, f"object {o['key']} metadata {o['content_type']} {o['content_encoding']} {o['gzip']}")
    lu = collections.Counter(json.dumps(v, sort_keys=True) for o in up for v in o.get("body_lines") or [])
    lc = collections.Counter(json.dumps(v, sort_keys=True) for o in ours for v in o.get("body_lines") or [])
    missing = lu - lc
    for line in missing:
        r.fail(where, f"audit line archived upstream but not by us: {line[:200]}")
    if lc - lu:
        r.add("W15 audit rows archived that upstream drops", sum((lc - lu).values()))


def consumed_buckets(event: dict) -> set[str]:
    """PKs of buckets with a consumption (tc change) in the batch."""
    out = set()
    for rec in event.get("Records", []):
        d = rec.get("dynamodb", {})
        new, old = d.get("NewImage") or {}, d.get("OldImage") or {}
        pk = new.get("PK", {}).get("S", "")
        if any(k.endswith("_tc") and new.get(k) != old.get(k) for k in new):
            out.add(pk)
    return out


def main() -> int:
    report = Report()
    pairs = 0
    for d in map(Path, sys.argv[1:]):
        for up_path in sorted(d.glob("*.upstream.json")):
            cand_path = up_path.with_name(up_path.name.replace(".upstream.", ".candidate."))
            up, ours = json.loads(up_path.read_text()), json.loads(cand_path.read_text())
            where = f"{d.name}/{up_path.name.split('.')[0]}"
            event_file = Path(ours.get("event_file") or "")
            event = {}
            for guess in (event_file, Path(__file__).resolve().parents[3] / "shared/oracle/vectors/1" / ours["event"]):
                if guess.is_file():
                    event = json.loads(guess.read_text())
                    break
            fixture_path = Path(__file__).resolve().parents[1] / "local" / "fixture.json"
            fixture = {key(i): i for i in json.loads(fixture_path.read_text())["items"]}
            results(up["result"], ours["result"], where, report)
            snapshots(up["table"], ours["table"], shifted_windows(event), where, report)
            buckets(up["table"], ours["table"], fixture, ours["now_ms"], consumed_buckets(event), where, report)
            archives(up["s3"], ours["s3"], where, report)
            pairs += 1
    print(f"{pairs} event files compared")
    for kind, n in sorted(report.kinds.items()):
        print(f"{n:6d}  {kind}")
    for line in report.unexplained:
        print(f"UNEXPLAINED {line}")
    print(f"{len(report.unexplained)} unexplained difference(s)")
    return 1 if report.unexplained or pairs == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
