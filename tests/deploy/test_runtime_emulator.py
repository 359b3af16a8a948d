"""The Lambda loop under cargo-lambda's implementation of the Lambda Runtime
API (not our own test stub): a stream batch in, the partial-batch response
out, against moto.

    CARGO_LAMBDA=.../cargo-lambda ZAE_BIN=target/debug/zae-aggregator python test_runtime_emulator.py

1. moto on a free 127.0.0.1 port: the zae-limiter table, holding the bucket
   of conformance vector golden-1-spec13 as its stream record's new image.
2. `cargo lambda watch --only-lambda-apis` (the emulator, on a free loopback
   port), and the zae-aggregator binary started as a Lambda custom runtime
   (no subcommand) with AWS_LAMBDA_RUNTIME_API pointing at it.
3. `cargo lambda invoke` sends a batch of two records: golden-1-spec13's, and
   limit-empty-namespace's (its snapshot key would be empty, so the planner
   marks it invalid; with DEAD_LETTER_BUCKET=none it is reported, not
   retried: retrying cannot fix it).
4. The response: no `batchItemFailures`, the invalid record with its
   sequence number in `body.errors`; the valid record's two snapshot items
   are in the table, equal to the vector's state.json (all but `ttl`, which
   counts from the clock); the same batch again changes nothing (exactly
   once).
5. A partial-batch failure: the snapshot items are replaced by an hourly
   item whose counter is a string, so DynamoDB refuses the `ADD` for good
   (`ValidationException`); without a dead-letter bucket the valid record
   comes back in `batchItemFailures`, and the function keeps serving.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import ROOT, Checks, Moto, aws_env, create_limiter_table, free_port  # noqa: E402

TABLE = "rate-limits"
VECTORS = ROOT / "tests" / "conformance"
c = Checks("runtime emulator")

cargo_lambda = os.environ.get("CARGO_LAMBDA", "cargo-lambda")
binary = Path(os.environ.get("ZAE_BIN", ROOT / "target" / "debug" / "zae-aggregator"))
if not binary.is_file():
    raise SystemExit(f"no zae-aggregator binary at {binary} (cargo build --bin zae-aggregator, or set ZAE_BIN)")

golden = json.loads((VECTORS / "golden-1-spec13" / "event.json").read_text())["Records"]
invalid = json.loads((VECTORS / "limit-empty-namespace" / "event.json").read_text())["Records"]
state = json.loads((VECTORS / "golden-1-spec13" / "state.json").read_text())
invalid_seq = invalid[0]["dynamodb"]["SequenceNumber"]
event = {"Records": golden + invalid}


def wait_port(port: int, proc: subprocess.Popen, what: str, log: Path) -> None:
    """Until something accepts connections on 127.0.0.1:port (an HTTP request
    would not do: the emulator holds any unknown path as an invocation)."""
    deadline = time.time() + 60
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited with {proc.returncode}; see {log}:\n{log.read_text()[-3000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"{what} did not listen on 127.0.0.1:{port} within 60 s:\n{log.read_text()[-3000:]}")


def usage_items(items: list[dict]) -> list[dict]:
    """The snapshot items among `items`, in key order."""
    return sorted((i for i in items if i["SK"]["S"].startswith("#USAGE#")), key=lambda i: (i["PK"]["S"], i["SK"]["S"]))


def table_usage(ddb) -> list[dict]:
    return usage_items(ddb.scan(TableName=TABLE)["Items"])


def without_ttl(items: list[dict]) -> list[dict]:
    return [{k: v for k, v in i.items() if k != "ttl"} for i in items]


with tempfile.TemporaryDirectory() as tmp, Moto(Path(tmp) / "moto.log") as moto:
    tmp = Path(tmp)
    ddb = moto.client("dynamodb")
    create_limiter_table(ddb, TABLE)
    ddb.put_item(TableName=TABLE, Item=golden[0]["dynamodb"]["NewImage"])

    port = free_port()
    emu_log = tmp / "emulator.log"
    emulator = subprocess.Popen(
        [cargo_lambda, "lambda", "watch", "--only-lambda-apis", "--invoke-address", "127.0.0.1",
         "--invoke-port", str(port)],
        cwd=ROOT, stdout=open(emu_log, "wb"), stderr=subprocess.STDOUT)
    fn_log = tmp / "function.log"
    function = None
    try:
        wait_port(port, emulator, "cargo lambda watch", emu_log)
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            **aws_env(moto.url),
            # What cargo-lambda's emulator asks the function to be started with.
            "AWS_LAMBDA_RUNTIME_API": f"http://127.0.0.1:{port}/.rt",
            "AWS_LAMBDA_FUNCTION_NAME": "_",
            "AWS_LAMBDA_FUNCTION_VERSION": "1",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
            "TABLE_NAME": TABLE,
            "SNAPSHOT_WINDOWS": "hourly,daily",
            "SNAPSHOT_TTL_DAYS": "90",
            "ENABLE_ARCHIVAL": "false",
            "DEAD_LETTER_BUCKET": "none",
            "ZAE_LIMITER_VERSION": "0.13",
        }
        function = subprocess.Popen([str(binary)], env=env, stdout=open(fn_log, "wb"), stderr=subprocess.STDOUT)
        event_file = tmp / "event.json"
        event_file.write_text(json.dumps(event))

        def invoke() -> dict:
            p = subprocess.run(
                [cargo_lambda, "lambda", "invoke", "_", "--invoke-address", "127.0.0.1", "--invoke-port", str(port),
                 "--data-file", str(event_file), "--output-format", "json"],
                cwd=ROOT, capture_output=True, text=True, timeout=120)
            if not c.eq(p.returncode, 0, f"cargo lambda invoke exit code ({p.stderr.strip()})"):
                return {}
            return json.loads(p.stdout)

        first = invoke()
        c.eq(first.get("batchItemFailures"), [], "no record to retry (an invalid record is reported, not retried)")
        c.eq(first.get("body", {}).get("processed"), 2, "both records were planned")
        errors = first.get("body", {}).get("errors", [])
        c.ok(any(e.startswith(f"Invalid record 1 (sequence {invalid_seq}): ") for e in errors),
             f"body.errors reports the invalid record: {errors}")
        want = without_ttl(usage_items(state["table"]))
        c.ok(len(want) == 2, "golden-1-spec13's state.json holds two snapshot items")
        after_first = table_usage(ddb)
        c.eq(without_ttl(after_first), want, "snapshot items equal state.json (ttl aside)")

        second = invoke()
        c.eq(second.get("batchItemFailures"), [], "second invocation: nothing to retry")
        c.eq(table_usage(ddb), after_first, "a repeated batch changes no snapshot (exactly once)")

        for item in after_first:
            ddb.delete_item(TableName=TABLE, Key={"PK": item["PK"], "SK": item["SK"]})
        hourly = next(i for i in after_first if not i["SK"]["S"].endswith("#daily"))
        ddb.put_item(TableName=TABLE, Item={"PK": hourly["PK"], "SK": hourly["SK"], "tpm": {"S": "not a number"}})
        third = invoke()
        c.eq(third.get("batchItemFailures"), [{"itemIdentifier": golden[0]["dynamodb"]["SequenceNumber"]}],
             "a write refused for good, without a dead-letter bucket: the record comes back to be retried")
        c.ok(any("ValidationException" in e for e in third.get("body", {}).get("errors", [])),
             f"body.errors names DynamoDB's refusal: {third.get('body', {}).get('errors')}")

        log = fn_log.read_text()
        c.ok(log.count("Lambda invocation started") == 3, "the function logged three invocations")
        c.ok(function.poll() is None, "the function keeps serving after the invocations")
    finally:
        for p in (function, emulator):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()
    if c.failed:
        print(f"--- function log\n{fn_log.read_text()[-4000:]}\n--- emulator log\n{emu_log.read_text()[-2000:]}",
              file=sys.stderr)
c.finish()
