#!/usr/bin/env python3
"""Proves that a Lambda package runs: `bootstrap plan` on every conformance
vector gives byte for byte the plan of a reference x86_64 build (and the
vector's plan.json), and the binary loads the component code precompiled for
its own CPU instead of compiling it at start-up.

    python3 deploy/verify_package.py [--arch arm64|x86_64] [--reference BIN] BOOTSTRAP

An arm64 package runs under qemu-aarch64 (Debian: `apt-get install qemu-user
libc6-arm64-cross`; the glibc of the cross package is found through
QEMU_LD_PREFIX, default /usr/aarch64-linux-gnu). The reference defaults to
target/debug/zae-aggregator, then target/release/zae-aggregator.

The vectors checked are those `zae-aggregator plan` can express (the same
selection as host/tests/cli.rs): not the re-plan and after-reads vectors, not
a configuration without windows or with a NUL character. Standard library
only. Exits 1 on any difference, 2 on bad usage.
"""

import argparse
import concurrent.futures
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VECTORS = ROOT / "tests" / "conformance"
PRECOMPILED_LINE = "Planner loaded from the code precompiled at build time"
RECOMPILE_LINE = "Precompiled planner unusable here"
TRIPLES = {"arm64": "aarch64-unknown-linux-gnu", "x86_64": "x86_64-unknown-linux-gnu"}
MACHINES = {"arm64": ("aarch64", "arm64"), "x86_64": ("x86_64", "amd64")}


def fail_usage(message):
    print(f"verify_package.py: {message}", file=sys.stderr)
    sys.exit(2)


def runner_for(arch):
    """The command prefix that runs a binary of `arch` on this machine."""
    if platform.machine().lower() in MACHINES[arch]:
        return []
    if arch != "arm64":
        fail_usage(f"cannot run an {arch} binary on {platform.machine()}")
    qemu = shutil.which("qemu-aarch64")
    if qemu is None:
        fail_usage("qemu-aarch64 not found: apt-get install qemu-user libc6-arm64-cross")
    sysroot = os.environ.get("QEMU_LD_PREFIX", "/usr/aarch64-linux-gnu")
    if not Path(sysroot, "lib", "ld-linux-aarch64.so.1").exists():
        fail_usage(f"no aarch64 glibc under {sysroot}: apt-get install libc6-arm64-cross")
    return [qemu, "-L", sysroot]


def planable_vectors():
    """(name, dir, input) of every vector `plan` can express."""
    out = []
    for d in sorted(VECTORS.iterdir()):
        f = d / "input.json"
        if not f.is_file():
            continue
        inp = json.loads(f.read_text())
        c = inp["config"]
        has_nul = "\0" in c["table_name"] or "\0" in (c.get("archive_bucket") or "")
        if "observed" in inp or "read_results" in inp or not c["windows"] or has_nul:
            continue
        out.append((d.name, d, inp))
    return out


def config_env(inp, log_level):
    """The environment that gives `plan` the vector's configuration."""
    c = inp["config"]
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LOG_LEVEL": log_level,
        "TABLE_NAME": c["table_name"],
        "SNAPSHOT_WINDOWS": ",".join(c["windows"]),
        "SNAPSHOT_TTL_DAYS": str(c["snapshot_ttl_days"]),
        "MAX_SHARD_COUNT": str(c["max_shard_count"]),
        "DEAD_LETTER_BUCKET": c.get("dead_letter_bucket") or "none",
    }
    if c.get("archive_bucket") is not None:
        env["ENABLE_ARCHIVAL"] = "true"
        env["ARCHIVE_BUCKET_NAME"] = c["archive_bucket"]
    else:
        env["ENABLE_ARCHIVAL"] = "false"
    if c.get("limiter"):
        env["ZAE_LIMITER_VERSION"] = c["limiter"]
    return env


def plan(prefix, binary, d, inp, log_level="ERROR"):
    args = [*prefix, str(binary), "plan", str(d / "event.json"),
            "--now-ms", str(inp["now_ms"]), "--request-id", inp["invocation_id"]]
    p = subprocess.run(args, env=config_env(inp, log_level), capture_output=True, timeout=600)
    return p.returncode, p.stdout, p.stderr.decode("utf-8", "replace")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("bootstrap", type=Path)
    ap.add_argument("--arch", choices=sorted(TRIPLES), default="arm64")
    ap.add_argument("--reference", type=Path)
    a = ap.parse_args()

    if not a.bootstrap.is_file():
        fail_usage(f"{a.bootstrap}: no such file")
    reference = a.reference
    if reference is None:
        for cand in (ROOT / "target/debug/zae-aggregator", ROOT / "target/release/zae-aggregator"):
            if cand.is_file():
                reference = cand
                break
        else:
            fail_usage("no x86_64 reference build: run `cargo build --bin zae-aggregator` or pass --reference")
    prefix = runner_for(a.arch)
    vectors = planable_vectors()
    failures = []

    # 1. The precompiled code is what runs.
    name, d, inp = next(v for v in vectors if v[0] == "golden-1-spec13")
    t0 = time.monotonic()
    code, _, log = plan(prefix, a.bootstrap, d, inp, log_level="DEBUG")
    start_s = time.monotonic() - t0
    loaded = [json.loads(line) for line in log.splitlines() if PRECOMPILED_LINE in line]
    if code != 0 or RECOMPILE_LINE in log or not loaded:
        failures.append(f"{name}: the precompiled component was not used (exit {code}):\n{log}")
    elif loaded[0].get("engine_target") != TRIPLES[a.arch]:
        failures.append(f"precompiled for {loaded[0].get('engine_target')}, not {TRIPLES[a.arch]}")
    else:
        print(f"== precompiled code for {loaded[0]['engine_target']} loaded in {loaded[0].get('load_ms')} ms "
              f"(whole `plan` {start_s:.2f} s{' under qemu' if prefix else ''})")

    # 2. Every vector: same bytes as the reference build and as plan.json.
    def check(v):
        name, d, inp = v
        got = plan(prefix, a.bootstrap, d, inp)
        ref = plan([], reference, d, inp)
        expected = (d / "plan.json").read_bytes()
        if got[:2] != ref[:2]:
            return f"{name}: differs from {reference} (exit {got[0]} vs {ref[0]})"
        if got[1] != expected:
            return f"{name}: differs from plan.json"
        return None

    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        results = list(pool.map(check, vectors))
    failures += [r for r in results if r]
    identical = sum(1 for r in results if r is None)
    print(f"== {identical} of {len(vectors)} vectors planned byte for byte like {reference} and plan.json "
          f"({time.monotonic() - t0:.1f} s)")
    for f in failures:
        print(f"FAILED: {f}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
