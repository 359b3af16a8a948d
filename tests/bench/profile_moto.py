#!/usr/bin/env python3
"""Where the moto server spends its time on each aggregator's requests (cProfile).

    $ORACLE_SCRATCH/venv/bin/python tests/bench/profile_moto.py --bin target/bench/zae-aggregator \
        [--batch 100|1000] [--top 25]

Runs moto's WSGI application single-threaded in this process (werkzeug, a background thread)
with cProfile enabled around each request of the measured run only (not around the table
reset and fixture restore), then runs the Python aggregator (in-process, as the side-by-side
harness does) and `zae-aggregator invoke` on the same batch from the same state, and prints,
per aggregator, the server time per request and the functions with the most cumulative time.
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
    ap.add_argument("--bin", required=True)
    ap.add_argument("--batch", type=int, default=100, choices=[100, 1000])
    ap.add_argument("--top", type=int, default=25)
    args = ap.parse_args()

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


if __name__ == "__main__":
    main()
