#!/usr/bin/env python3
"""Where the moto server spends its time on each aggregator's requests (cProfile).

    $ORACLE_SCRATCH/venv/bin/python tests/bench/profile_moto.py --bin target/bench/zae-aggregator \
        [--batch 100|1000] [--top 25]

Runs moto's WSGI application single-threaded in this process (werkzeug, a background thread)
with cProfile enabled around each request of the measured run only (not around the table
reset and fixture restore), then runs the Python aggregator (in-process, as the side-by-side
harness does) and `zae-aggregator invoke` on the same batch from the same state, and prints,
per aggregator, the server time per request and the functions with the most cumulative time.

    ... profile_moto.py --item-cost [--reps 3]

Instead: the moto server's CPU time per UpdateItem of the snapshot shape, creating a new item
vs updating an existing one, with the Python aggregator's expression (one counter) and ours
(four counters, the watermark SET and its condition), 60 requests each, sequential.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import side_by_side as sbs  # noqa: E402  (puts the oracle on sys.path)
import oracle_lib as ol  # noqa: E402
import run_upstream  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin")
    ap.add_argument("--item-cost", action="store_true")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--batch", type=int, default=100, choices=[100, 1000])
    ap.add_argument("--top", type=int, default=25)
    args = ap.parse_args()
    if args.item_cost:
        return item_cost(args.reps)
    if not args.bin:
        ap.error("--bin is required")

    from moto.moto_server.threaded_moto_server import DomainDispatcherApplication, create_backend_app
    from werkzeug.serving import make_server

    inner = DomainDispatcherApplication(create_backend_app)
    state = {"prof": None, "requests": 0}

    def app(environ, start_response):
        prof = state["prof"]
        if prof is None:
            return inner(environ, start_response)
        state["requests"] += 1
        prof.enable()
        try:
            return list(inner(environ, start_response))
        finally:
            prof.disable()

    import logging

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no request log lines
    server = make_server("127.0.0.1", 0, app, threaded=False)
    url = f"http://127.0.0.1:{server.server_port}"
    threading.Thread(target=server.serve_forever, daemon=True).start()

    scratch = Path(sbs.ROOT / "target" / "bench")
    paths = sbs.prepare_batches(scratch / "batches")
    path = paths[args.batch]
    event = json.loads(path.read_text())
    now_ms = int(json.loads((sbs.VECTORS / "meta.json").read_text())["now_ms"])
    start = ol.starting_items(path, scratch / "batches" / "fixture.json")

    for who in ("python", "ours"):
        ol.prepare_state(url, start, sbs.LAMBDA_ENV)
        run_upstream.load_handler(url, sbs.LAMBDA_ENV)
        state["prof"], state["requests"] = cProfile.Profile(), 0
        t0 = time.perf_counter()
        if who == "python":
            run_upstream.invoke(event, url, sbs.LAMBDA_ENV, now_ms, sbs.REQUEST_ID)
        else:
            subprocess.run(
                [args.bin, "invoke", str(path), "--now-ms", str(now_ms), "--output", str(scratch / "profile-result.json")],
                env=sbs.aws_child_env(url),
                stdout=subprocess.DEVNULL,
                check=True,
            )
        wall = time.perf_counter() - t0
        prof, n = state["prof"], state["requests"]
        state["prof"] = None
        st = pstats.Stats(prof)
        total = st.total_tt
        print(f"\n=== {who}: {n} requests, wall {wall * 1000:.0f} ms, server (profiled) {total * 1000:.0f} ms "
              f"= {total * 1000 / max(n, 1):.2f} ms per request")
        buf = io.StringIO()
        pstats.Stats(prof, stream=buf).sort_stats("cumulative").print_stats(args.top)
        print(buf.getvalue())
    server.shutdown()


SNAPSHOT_SET = (
    "SET #eid = :eid, #res = if_not_exists(#res, :res), #win = if_not_exists(#win, :win), "
    "#ws = if_not_exists(#ws, :ws), #g2pk = :g2pk, #g2sk = :g2sk, #g4pk = if_not_exists(#g4pk, :g4pk), "
    "#g4sk = if_not_exists(#g4sk, :g4sk), #ttl = if_not_exists(#ttl, :ttl)"
)


def snapshot_update(counters: int, watermark: bool) -> dict:
    names = {"#eid": "entity_id", "#res": "resource", "#win": "window", "#ws": "window_start", "#g2pk": "GSI2PK",
             "#g2sk": "GSI2SK", "#g4pk": "GSI4PK", "#g4sk": "GSI4SK", "#ttl": "ttl", "#te": "total_events"}
    values = {":eid": {"S": "key-x1"}, ":res": {"S": "gpt-4"}, ":win": {"S": "hourly"},
              ":ws": {"S": "2026-02-01T00:00:00Z"}, ":g2pk": {"S": "ns/RESOURCE#gpt-4"},
              ":g2sk": {"S": "USAGE#2026-02-01T00:00:00Z#key-x1"}, ":g4pk": {"S": "ns"},
              ":g4sk": {"S": "ns/ENTITY#key-x1"}, ":ttl": {"N": "1777680163"}, ":te": {"N": "1"}}
    adds = []
    for i in range(counters):
        names[f"#l{i}"], values[f":l{i}"] = f"limit{i}", {"N": "5"}
        adds.append(f"#l{i} :l{i}")
    expr = SNAPSHOT_SET
    kw: dict = {}
    if watermark:
        expr += ", #w0 = :w0"
        names["#w0"] = "wm#0"
        values[":w0"] = {"S": "%040d" % 7}
        # the condition holds on a new item; on an existing one, the stored watermark is below :f0
        kw = {"ConditionExpression": "(attribute_not_exists(#w0) OR #w0 <= :f0)",
              "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}
        values[":f0"] = {"S": "%040d" % 7}
    expr += " ADD " + ", ".join(adds + ["#te :te"])
    return {"UpdateExpression": expr, "ExpressionAttributeNames": names, "ExpressionAttributeValues": values, **kw}


def item_cost(reps: int, n: int = 60) -> None:
    import statistics

    moto = sbs.Moto(sbs.ROOT / "target" / "bench")
    try:
        ol.prepare_state(moto.url, [], sbs.LAMBDA_ENV)
        ddb, _ = ol.clients(moto.url)
        shapes = {"Python's (1 counter)": snapshot_update(1, False), "ours (4 counters + watermark + condition)":
                  snapshot_update(4, True)}
        out: dict = {}
        for rep in range(reps):
            for label, kw in shapes.items():
                for mode in ("create", "update"):
                    c0 = moto.cpu_s()
                    for i in range(n):
                        sk = f"#USAGE#gpt-4#{rep}-{i}" if mode == "create" else f"#USAGE#gpt-4#{rep}-0"
                        ddb.update_item(TableName=sbs.LAMBDA_ENV["TABLE_NAME"],
                                        Key={"PK": {"S": f"ns/ENTITY#{label}"}, "SK": {"S": sk}}, **kw)
                    out.setdefault((label, mode), []).append((moto.cpu_s() - c0) * 1000 / n)
        print("moto server CPU per UpdateItem, ms (median of", reps, "x", n, "requests; min-max)")
        for (label, mode), v in out.items():
            print(f"  {mode:6s} {label:45s} {statistics.median(v):5.1f} ({min(v):.1f}-{max(v):.1f})")
    finally:
        moto.stop()


if __name__ == "__main__":
    main()
