#!/usr/bin/env python3
"""The local main job (run it through demo.sh, which builds the binary and
installs the pinned venv): real zae-limiter traffic on a table with a
DynamoDB stream, aggregated by `zae-aggregator poll` reading that stream,
against a moto server on 127.0.0.1, then a readable view of what it wrote.

Steps:
 1. start `moto_server` on a free loopback port (stopped by PID on exit);
 2. create a table shaped like zae-limiter's (PK/SK, GSI2/3/4, stream with new
    and old images) and an archive bucket;
 3. drive the zae-limiter 0.17.0 client library (from PyPI, pinned in
    requirements-demo.txt): stored limits for a few entities (which writes
    audit rows), then seeded `acquire` calls over two resources, some
    rejected: first on three days of each of the last three complete
    months (the demo's moto stamps those stream records on those days:
    tests/moto_server.py, ZAE_MOTO_CLOCK_FILE), then now; then delete the
    audit rows, as their TTL would (moto does not expire items);
 4. run `zae-aggregator poll --table zae-limiter --until-caught-up` with the
    Lambda's environment variables and the windows `hourly,daily`: it reads
    the stream, shard by shard, in Lambda-shaped batches (docs/poll.md);
 5. print today's usage snapshot items, the bucket items the run changed
    (refills, shard doublings, propagated shards) and the archive objects
    with their first NDJSON line;
 6. read the table back (docs/reading.md): `backfill --window monthly`
    builds the monthly window, switched on late, from the daily items of the
    settled months; `usage summary`; `usage average --months 3`, answered
    from those monthly items; `reconcile`;
 7. check that every window's counters add up to exactly what the client
    consumed in the months it covers (exit 1 if not).

`--event FILE` instead runs one bundled batch through `zae-aggregator invoke`
(the former main job). Only the zae-limiter client, boto3 and the standard
library are used.
"""

from __future__ import annotations

import argparse
import datetime
import gzip
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import boto3

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_VECTOR = ROOT / "tests" / "conformance" / "real-batch-1000"
REGION = "us-east-1"
TABLE = "zae-limiter"
BUCKET = "zae-limiter-audit-archive"
# The attributes zae-limiter's snapshot reader does not count (docs/specification.md#snapshot-reader).
SNAPSHOT_METADATA = {
    "PK", "SK", "entity_id", "resource", "window", "window_start", "total_events",
    "GSI2PK", "GSI2SK", "GSI4PK", "GSI4SK", "ttl",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_moto(log_path: Path, clock_file: Path | None = None) -> tuple[subprocess.Popen, str]:
    """moto on a free loopback port. With `clock_file`, the stream records' timestamps are
    moto's clock plus the seconds written in that file (tests/moto_server.py)."""
    exe = os.environ.get("ZAE_MOTO_SERVER") or str(Path(sys.executable).with_name("moto_server"))
    port = free_port()
    log = open(log_path, "wb")
    env = {**os.environ, "ZAE_MOTO_CLOCK_FILE": str(clock_file)} if clock_file else None
    proc = subprocess.Popen([exe, "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"moto_server exited with {proc.returncode}; see {log_path}")
        try:
            urllib.request.urlopen(url + "/moto-api/", timeout=1).read()
            return proc, url
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit(f"moto_server did not answer on {url} within 60 s; see {log_path}")


def aws_env(endpoint: str) -> dict[str, str]:
    return {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
    }


def create_table(ddb) -> None:
    """The key schema, indexes and stream zae-limiter's stack creates."""
    attrs = ["PK", "SK"] + [f"GSI{n}{k}" for n in (2, 3, 4) for k in ("PK", "SK")]
    ddb.create_table(
        TableName=TABLE,
        AttributeDefinitions=[{"AttributeName": a, "AttributeType": "S"} for a in attrs],
        KeySchema=[{"AttributeName": "PK", "KeyType": "HASH"}, {"AttributeName": "SK", "KeyType": "RANGE"}],
        GlobalSecondaryIndexes=[
            {
                "IndexName": f"GSI{n}",
                "KeySchema": [
                    {"AttributeName": f"GSI{n}PK", "KeyType": "HASH"},
                    {"AttributeName": f"GSI{n}SK", "KeyType": "RANGE"},
                ],
                # As zae-limiter creates them: GSI3 and GSI4 hold only the keys.
                "Projection": {"ProjectionType": "ALL" if n == 2 else "KEYS_ONLY"},
            }
            for n in (2, 3, 4)
        ],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )


def scan(ddb) -> dict[tuple[str, str], dict]:
    items = {}
    for page in ddb.get_paginator("scan").paginate(TableName=TABLE, ConsistentRead=True):
        for it in page["Items"]:
            items[(it["PK"]["S"], it["SK"]["S"])] = it
    return items


def value(av: dict) -> str:
    (kind, v), = av.items()
    return v if kind in ("S", "N") else json.dumps(av, separators=(",", ":"))


def table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = lambda r: "  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip()  # noqa: E731
    return "\n".join([line(header), line(["-" * w for w in widths]), *(line(r) for r in rows)])


WINDOW_ORDER = {"hourly": 0, "daily": 1, "monthly": 2}


def snapshot_rows(items: dict) -> list[list[str]]:
    """One row per snapshot item, as zae-limiter's reader sees it (docs/specification.md#snapshot-reader)."""
    rows = []
    for (pk, sk), it in items.items():
        if not sk.startswith("#USAGE#"):
            continue
        ns, _, entity = pk.rpartition("/ENTITY#")
        counters = {k: v["N"] for k, v in it.items() if "N" in v and k not in SNAPSHOT_METADATA}
        window = value(it.get("window", {"S": "?"}))
        rows.append([
            ns or "-",
            entity,
            value(it.get("resource", {"S": "?"})),
            window,
            value(it.get("window_start", {"S": "?"})),
            value(it.get("total_events", {"N": "0"})),
            " ".join(f"{k}={v}" for k, v in sorted(counters.items())),
        ])
    rows.sort(key=lambda r: (r[0], r[1], r[2], WINDOW_ORDER.get(r[3], 9), r[4]))
    return rows


def bucket_rows(before: dict, after: dict) -> list[list[str]]:
    rows = []
    for key in sorted(set(before) | set(after)):
        pk, sk = key
        if sk != "#STATE" or "/BUCKET#" not in pk:
            continue
        old, new = before.get(key), after.get(key)
        if old == new:
            continue
        if old is None:
            rows.append([pk, "created (shard clone)", f"shard_count={value(new.get('shard_count', {'N': '1'}))}"])
            continue
        if new is None:
            rows.append([pk, "deleted", ""])
            continue
        changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
        what = []
        if "shard_count" in changed:
            what.append(f"shard_count {value(old.get('shard_count', {'N': '1'}))} -> {value(new['shard_count'])}")
        tk = [k for k in changed if k.endswith("_tk")]
        if tk:
            what.append("refilled (millitokens) " + ", ".join(f"{k[2:-3]} {value(old[k])} -> {value(new[k])}" for k in tk))
        rest = [k for k in changed if k not in tk and k != "shard_count"]
        rows.append([pk, "; ".join(what) or "updated", " ".join(rest)])
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", required=True, help="the zae-aggregator executable")
    ap.add_argument("--event", help="run this Lambda event JSON file through invoke instead of live traffic")
    ap.add_argument("--acquires", type=int, default=400, help="acquire calls of the live traffic")
    ap.add_argument("--seed", type=int, default=16, help="seed of the live traffic")
    ap.add_argument("--history-months", type=int, default=3, help="complete months of earlier traffic")
    ap.add_argument("--history-acquires", type=int, default=30, help="acquire calls per earlier day (3 days a month)")
    ap.add_argument("--fixture", default=str(ROOT / "tests" / "local" / "fixture.json"), help="starting table items")
    ap.add_argument("--now-ms", type=int, help="frozen clock (default: the bundled vector's now_ms)")
    ap.add_argument("--windows", help="SNAPSHOT_WINDOWS (default: hourly,daily for poll, then backfill monthly; "
                    "hourly,daily,monthly for --event)")
    args = ap.parse_args()

    now_ms = args.now_ms
    if now_ms is None:
        now_ms = int(json.loads((DEFAULT_VECTOR / "input.json").read_text())["now_ms"])

    with tempfile.TemporaryDirectory(prefix="zae-demo-") as tmp:
        tmp = Path(tmp)
        proc, endpoint = start_moto(tmp / "moto.log", tmp / "clock")
        try:
            if args.event is None:
                return run_stream(args, endpoint, tmp)
            return run(args, now_ms, endpoint, tmp)
        finally:
            proc.kill()
            proc.wait()


MONTH = "%Y-%m"


def history_days(now: datetime.datetime, months: int) -> list[datetime.datetime]:
    """The 5th, 15th and 25th (10:00 UTC) of each of the `months` complete months before `now`."""
    first = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    out = []
    for _ in range(months):
        first = (first - datetime.timedelta(days=1)).replace(day=1)
        out = [first.replace(day=d, hour=10) for d in (5, 15, 25)] + out
    return out


def drive_traffic(endpoint: str, acquires: int, seed: int, days: list, per_day: int, clock: Path) -> dict:
    """Real client traffic: what the zae-limiter library writes for stored
    limits and `acquire` calls, first `per_day` calls on each earlier day of
    `days` (moto stamps their stream records on that day: `clock`), then
    `acquires` calls now. Returns the tokens consumed, by (month, entity,
    resource, limit), counting only acquires that went through."""
    import warnings

    from zae_limiter import Limit, RateLimitExceeded, SyncRateLimiter, SyncRepository

    warnings.simplefilter("ignore", DeprecationWarning)
    for k, v in aws_env(endpoint).items():
        os.environ[k] = v
    repo = SyncRepository.open(stack=TABLE, endpoint_url=endpoint, region=REGION, auto_update=False)
    limiter = SyncRateLimiter(repository=repo)
    rng = random.Random(seed)
    entities = [f"user-{i}" for i in range(6)]
    resources = ["gpt-4o", "claude-sonnet"]
    for e in entities[:3]:
        # Stored limits: written with an audit row each.
        limiter.set_limits(e, [Limit.per_minute("rpm", 120), Limit.per_minute("tpm", 40_000)], resource="gpt-4o")
    explicit = [Limit.per_minute("rpm", 60), Limit.per_minute("tpm", 20_000)]
    consumed: dict = {}
    created: set = set()
    rejected = 0
    now = datetime.datetime.now(datetime.timezone.utc)
    for day, n in [(d, per_day) for d in days] + [(None, acquires)]:
        clock.write_text(str((day - now).total_seconds() if day else 0))
        month = (day or now).strftime(MONTH)
        for _ in range(n):
            e, r = rng.choice(entities), rng.choice(resources)
            amounts = {"rpm": 1, "tpm": rng.randint(20, 900)}
            try:
                stored = r == "gpt-4o" and e in entities[:3]
                with limiter.acquire(e, r, amounts, limits=None if stored else explicit):
                    pass
            except RateLimitExceeded:
                rejected += 1
                continue
            if (e, r) not in created:
                # The acquire that creates the bucket writes an INSERT record: no old
                # image, so no consumption to count (docs/specification.md#stream-records).
                created.add((e, r))
                continue
            for name, amount in amounts.items():
                key = (month, e, r, name)
                consumed[key] = consumed.get(key, 0) + amount
    clock.write_text("0")
    total = acquires + per_day * len(days)
    print(
        f"zae-limiter client: {total} acquires, {total - rejected} granted, {rejected} rejected, "
        f"{len(created)} of them created their bucket (not usage: an INSERT record)"
    )
    if days:
        print(
            f"  {per_day * len(days)} of them on {len(days)} days of {days[0].strftime(MONTH)} to "
            f"{days[-1].strftime(MONTH)} (moto stamps their stream records on those days), {acquires} now"
        )
    return consumed


def expire_audit_rows(ddb) -> int:
    """Delete the audit rows, as DynamoDB's TTL would."""
    n = 0
    for (pk, sk), _ in scan(ddb).items():
        if sk.startswith("#AUDIT#"):
            ddb.delete_item(TableName=TABLE, Key={"PK": {"S": pk}, "SK": {"S": sk}})
            n += 1
    return n


def fresh_table(endpoint: str):
    """Clients for moto, the zae-limiter-shaped table with its stream, and the archive bucket."""
    session = boto3.session.Session(aws_access_key_id="local", aws_secret_access_key="local", region_name=REGION)
    ddb = session.client("dynamodb", endpoint_url=endpoint)
    s3 = session.client("s3", endpoint_url=endpoint)
    create_table(ddb)
    s3.create_bucket(Bucket=BUCKET)
    return ddb, s3


def lambda_env(windows: str) -> dict[str, str]:
    """The Lambda function's configuration (docs/host.md#configuration)."""
    return {
        "TABLE_NAME": TABLE,
        "SNAPSHOT_WINDOWS": windows,
        "SNAPSHOT_TTL_DAYS": "90",
        "ENABLE_ARCHIVAL": "true",
        "ARCHIVE_BUCKET_NAME": BUCKET,
        "LOG_LEVEL": "INFO",
    }


def print_results(ddb, s3, before: dict, since: str = "") -> tuple[dict, list]:
    """Print the snapshot items (those whose window starts at or after `since`), the
    changed bucket items and the archive objects; return the table and the archive rows."""
    after = scan(ddb)
    rows = snapshot_rows(after)
    if since:
        earlier = [r for r in rows if r[4] < since]
        by_window = {w: sum(1 for r in earlier if r[3] == w) for w in WINDOW_ORDER}
        print(
            f"\nUsage snapshots: {len(rows)} items; {len(earlier)} of them start before {since} "
            f"({', '.join(f'{n} {w}' for w, n in by_window.items() if n)}); the others:"
        )
        rows = [r for r in rows if r[4] >= since]
    else:
        print(f"\nUsage snapshots ({len(rows)} items)")
    print(table(rows, ["namespace", "entity", "resource", "window", "window_start", "events", "counters (tokens)"]))
    rows = bucket_rows(before, after)
    print(f"\nBucket items changed ({len(rows)})")
    print(table(rows, ["bucket", "change", "other attributes changed"]))
    rows = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
        for o in page.get("Contents", []):
            body = s3.get_object(Bucket=BUCKET, Key=o["Key"])["Body"].read()
            lines = gzip.decompress(body).decode().splitlines()
            first = json.loads(lines[0]) if lines else {}
            rows.append([o["Key"], str(o["Size"]), str(len(lines)), f"{first.get('action', '?')} {first.get('entity_id', '')}"])
    print(f"\nArchive objects in s3://{BUCKET} ({len(rows)})")
    print(table(rows, ["key", "bytes", "events", "first event"]))
    return after, rows


def check_totals(after: dict, consumed: dict, months: dict) -> list[str]:
    """Per window, the snapshot counters summed over its items must equal what the client
    consumed, by (entity, resource, limit), in the months that window covers (`months`:
    window -> set of "YYYY-MM")."""
    problems = []
    for window, covered in months.items():
        want: dict = {}
        for (month, *key), n in consumed.items():
            if month in covered:
                want[tuple(key)] = want.get(tuple(key), 0) + n
        got: dict = {}
        for (pk, sk), it in after.items():
            if not sk.startswith("#USAGE#") or value(it.get("window", {"S": ""})) != window:
                continue
            entity = pk.rpartition("/ENTITY#")[2]
            for k, v in it.items():
                if "N" in v and k not in SNAPSHOT_METADATA:
                    key = (entity, value(it["resource"]), k)
                    got[key] = got.get(key, 0) + int(v["N"])
        for key in sorted(set(got) | set(want)):
            if got.get(key, 0) != want.get(key, 0):
                problems.append(f"{window} {key}: snapshots {got.get(key, 0)}, client consumed {want.get(key, 0)}")
    return problems


def read_side(binary: str, env: dict, commands: list[list[str]]) -> int:
    """Run read-side commands on the table, printing each with its output; the first failing exit code."""
    code = 0
    for read in commands:
        print(f"\n$ zae-aggregator {' '.join(read)}")
        out = subprocess.run([binary, *read, "--table", TABLE], env={**os.environ, **env, "LOG_LEVEL": "WARNING"},
                             capture_output=True, text=True)
        lines = (out.stdout + out.stderr).rstrip().splitlines()
        held = [l for l in lines if l.startswith("zae-aggregator: held:")]
        # One held period per (entity, resource) of the current month: show the first.
        print("\n".join([l for l in lines if l not in held] + held[:1]))
        if len(held) > 1:
            print(f"zae-aggregator: ... {len(held) - 1} more held periods")
        if out.returncode != 0:
            print(f"exit code {out.returncode}")
            code = code or out.returncode
    return code


def run_stream(args, endpoint: str, tmp: Path) -> int:
    env = aws_env(endpoint)
    ddb, s3 = fresh_table(endpoint)
    print(f"moto on {endpoint}: table {TABLE} with a stream, bucket {BUCKET}")
    t0 = time.perf_counter()
    now = datetime.datetime.now(datetime.timezone.utc)
    days = history_days(now, args.history_months)
    consumed = drive_traffic(endpoint, args.acquires, args.seed, days, args.history_acquires, tmp / "clock")
    expired = expire_audit_rows(ddb)
    before = {k: v for k, v in scan(ddb).items()}
    print(f"  {len(before)} items, {expired} audit rows expired, in {time.perf_counter() - t0:.1f} s")

    windows = args.windows or "hourly,daily"
    logs = tmp / "poll.log"
    checkpoint = tmp / "checkpoint.json"
    cmd = [args.binary, "poll", "--table", TABLE, "--until-caught-up", "--checkpoint", str(checkpoint)]
    print(f"$ SNAPSHOT_WINDOWS={windows} {' '.join(cmd)}")
    t0 = time.perf_counter()
    with open(logs, "wb") as log:
        code = subprocess.run(cmd, env={**os.environ, **env, **lambda_env(windows)}, stdout=log, stderr=subprocess.STDOUT).returncode
    wall = time.perf_counter() - t0
    lines = [json.loads(l) for l in logs.read_text().splitlines() if l.startswith("{")]
    stopped = [l for l in lines if l.get("message") == "Poll stopped"]
    if not stopped:
        print("poll wrote no summary; its log follows:\n" + logs.read_text())
        return 1
    s = stopped[-1]
    invocations = [l for l in lines if l.get("message") == "Lambda invocation completed"]
    print(
        f"exit code {code} in {wall:.2f} s: {s['records']} stream records in {s['batches']} batches "
        f"({sum(l['requests'] for l in invocations)} AWS requests), {s['retried_batches']} retried; "
        f"checkpoint {json.loads(checkpoint.read_text())['shards'] if checkpoint.exists() else '-'}"
    )
    today = now.strftime("%Y-%m-%d")
    _, archive = print_results(ddb, s3, before, since=today)
    # The read side on the same table (docs/reading.md). The monthly window was off while poll
    # ran: backfill builds it from the daily items of the months that are settled (ended at
    # least 25 hours ago), then the average of the last complete months is answered from them.
    settled = {d.strftime(MONTH) for d in days if month_end(d) <= now - datetime.timedelta(hours=25)}
    reads = [["usage", "summary", "--entity", "user-0", "--format", "table", "--stats"]]
    if "monthly" not in windows.split(","):
        reads.insert(0, ["backfill", "--window", "monthly", "--checkpoint", str(tmp / "backfill.json")])
    if days:
        reads.append(["usage", "average", "--entity", "user-0", "--months", str(args.history_months), "--format", "table", "--stats"])
    reads.append(["reconcile", "--format", "table"])
    code = read_side(args.binary, env, reads) or code
    if days:
        compare_library(endpoint, days)
    after = scan(ddb)
    every = {month for month, *_ in consumed}
    problems = check_totals(after, consumed, {
        "hourly": every,
        "daily": every,
        "monthly": every if "monthly" in windows.split(",") else settled,
    })
    usage = sum(1 for (_, sk) in after if sk.startswith("#USAGE#"))
    monthly = sum(1 for (_, sk) in after if sk.startswith("#USAGE#") and sk.endswith("#monthly"))
    archived = sum(int(r[2]) for r in archive)
    print(
        f"\nsummary: records={s['records']} snapshots={usage} monthly={monthly} settled_months={len(settled)} "
        f"archive_objects={len(archive)} archived_events={archived} audit_rows_expired={expired} "
        f"totals={'equal' if not problems else 'DIFFERENT'}"
    )
    for p in problems:
        print("  " + p)
    return code if not problems else 1


def compare_library(endpoint: str, days: list) -> None:
    """The same question through zae-limiter's own reader: `get_usage_summary` of user-0 over
    the hourly items of the months `usage average` covered (tests/local/usage_summary.py)."""
    start = days[0].replace(day=1, hour=0).strftime("%Y-%m-%dT%H:%M:%SZ")
    end = (month_end(days[-1]) - datetime.timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    cmd = [sys.executable, str(ROOT / "tests" / "local" / "usage_summary.py"), "--endpoint", endpoint,
           "--table", TABLE, "--entity", "user-0", "--window", "hourly", "--start", start, "--end", end]
    out = subprocess.run(cmd, env={**os.environ, **aws_env(endpoint)}, capture_output=True, text=True)
    if out.returncode != 0:
        print(f"\nzae-limiter get_usage_summary failed:\n{out.stderr.strip()}")
        return
    s = json.loads(out.stdout)
    print(
        f"\nzae-limiter 0.17.0 get_usage_summary(user-0, hourly, {start[:10]} to {end[:10]}): "
        f"{s['snapshot_count']} hourly items summed, total {s['total']}; "
        f"items read: {s['items']}, read units: {s['read_units']:g}, requests: {s['requests']}"
    )


def month_end(day: datetime.datetime) -> datetime.datetime:
    """The first instant of the month after `day`'s."""
    return (day.replace(day=28) + datetime.timedelta(days=4)).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def run(args, now_ms: int, endpoint: str, tmp: Path) -> int:
    env = aws_env(endpoint)
    ddb, s3 = fresh_table(endpoint)
    fixture = json.loads(Path(args.fixture).read_text())["items"]
    for it in fixture:
        ddb.put_item(TableName=TABLE, Item=it)
    before = scan(ddb)
    n_records = len(json.loads(Path(args.event).read_text())["Records"])
    print(f"moto on {endpoint}: table {TABLE} ({len(before)} items), bucket {BUCKET}")

    result = tmp / "response.json"
    logs = tmp / "invoke.log"
    cmd = [
        args.binary, "invoke", args.event,
        "--now-ms", str(now_ms), "--request-id", "local-demo", "--output", str(result),
    ]
    print(f"$ {' '.join(cmd)}")
    t0 = time.perf_counter()
    with open(logs, "wb") as log:
        # With --output, the logs go to standard output (as on Lambda).
        code = subprocess.run(
            cmd, env={**os.environ, **env, **lambda_env(args.windows or "hourly,daily,monthly")}, stdout=log,
            stderr=subprocess.STDOUT
        ).returncode
    wall = time.perf_counter() - t0
    summary = [json.loads(l) for l in logs.read_text().splitlines() if '"Lambda invocation completed"' in l]
    print(f"exit code {code}, {n_records} records in {wall:.2f} s")
    if summary:
        s = summary[-1]
        print(
            f"  plan+execute {s['processing_time_ms']} ms, {s['requests']} AWS requests, "
            f"{s['writes_planned']} writes planned, {s['invalid_records']} invalid records"
        )
    if result.exists():
        response = json.loads(result.read_text())
        print("Lambda response:", json.dumps({**response, "body": {**response["body"], "errors": len(response["body"]["errors"])}}))
    else:
        print("no response written; the log follows:\n" + logs.read_text())

    print_results(ddb, s3, before)
    return code


if __name__ == "__main__":
    sys.exit(main())
