#!/usr/bin/env python3
"""`zae-aggregator poll` throughput against moto, next to `invoke` on the same
records (docs/poll.md#throughput). Run it through throughput.sh, which builds
the binary and installs moto.

1. start `moto_server` on 127.0.0.1 (stopped by PID on exit);
2. create two tables shaped like zae-limiter's, with streams;
3. write N consuming updates of B bucket items into the first one (each a
   MODIFY record that passes the template's filter);
4. `poll --until-caught-up --batch-size 100 --batching-window 0` on the first
   table: records/s from its `Poll stopped` line (records, elapsed_s);
5. the same records, read back from the stream, in events of 100 records,
   through one `invoke` process each against the second table: records/s
   over the summed wall time of those processes (start-up included, as each
   is a fresh process).

Only boto3 (installed with moto) and the standard library are used.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import boto3

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "local"))
from demo import start_moto  # noqa: E402  (one way to start moto on 127.0.0.1: the main job's)

REGION = "us-east-1"


def create_table(ddb, name: str) -> str:
    ddb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "PK", "KeyType": "HASH"}, {"AttributeName": "SK", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": "PK", "AttributeType": "S"},
                              {"AttributeName": "SK", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )
    return ddb.describe_table(TableName=name)["Table"]["LatestStreamArn"]


def bucket(i: int, tc: int, rf: int) -> dict:
    entity = f"user-{i}"
    return {
        "PK": {"S": f"ns1/BUCKET#{entity}#gpt-4#0"}, "SK": {"S": "#STATE"},
        "entity_id": {"S": entity}, "resource": {"S": "gpt-4"}, "rf": {"N": str(rf)},
        "shard_count": {"N": "1"},
        "b_tpm_tc": {"N": str(tc * 1000)}, "b_tpm_tk": {"N": "90000000"}, "b_tpm_cp": {"N": "100000000"},
        "b_tpm_ra": {"N": "100000000"}, "b_tpm_rp": {"N": "60000"},
    }


def stream_records(streams, arn: str) -> list[dict]:
    shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
    it = streams.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    out = []
    while it:
        page = streams.get_records(ShardIterator=it, Limit=1000)
        if not page["Records"]:
            break
        out += page["Records"]
        it = page.get("NextShardIterator")
    return out


def as_lambda(r: dict, arn: str) -> dict:
    d = dict(r["dynamodb"])
    d["ApproximateCreationDateTime"] = int(d["ApproximateCreationDateTime"].timestamp())
    return {"eventID": r["eventID"], "eventName": r["eventName"], "eventVersion": "1.1",
            "eventSource": "aws:dynamodb", "awsRegion": REGION, "eventSourceARN": arn, "dynamodb": d}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", required=True)
    ap.add_argument("--records", type=int, default=2000)
    ap.add_argument("--buckets", type=int, default=50)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="zae-poll-throughput-"))
    moto, url = start_moto(work / "moto.log")
    try:
        kw = dict(endpoint_url=url, region_name=REGION, aws_access_key_id="local", aws_secret_access_key="local")
        ddb = boto3.client("dynamodb", **kw)
        streams = boto3.client("dynamodbstreams", **kw)
        arn = create_table(ddb, "throughput-poll")
        create_table(ddb, "throughput-invoke")
        rf = int(time.time() * 1000)
        for i in range(args.buckets):
            ddb.put_item(TableName="throughput-poll", Item=bucket(i, 0, rf))
        for n in range(args.records):
            i = n % args.buckets
            ddb.put_item(TableName="throughput-poll", Item=bucket(i, n // args.buckets + 1, rf))
        env = dict(os.environ, AWS_ENDPOINT_URL=url, AWS_REGION=REGION, AWS_ACCESS_KEY_ID="local",
                   AWS_SECRET_ACCESS_KEY="local", SNAPSHOT_WINDOWS="hourly,daily", ZAE_LIMITER_VERSION="0.13",
                   LOG_LEVEL="INFO")
        started = time.monotonic()
        out = subprocess.run([args.binary, "poll", "--table", "throughput-poll", "--until-caught-up",
                              "--batch-size", "100", "--batching-window", "0",
                              "--checkpoint", str(work / "checkpoint.json")],
                             env=env, capture_output=True, text=True, check=True)
        poll_wall = time.monotonic() - started
        stopped = [json.loads(l) for l in out.stdout.splitlines() if '"Poll stopped"' in l][-1]
        records = [r for r in stream_records(streams, arn) if r["eventName"] == "MODIFY"][: args.records]
        invoke_env = dict(env, TABLE_NAME="throughput-invoke")
        invoke_wall = 0.0
        for k in range(0, len(records), 100):
            event = work / "event.json"
            event.write_text(json.dumps({"Records": [as_lambda(r, arn) for r in records[k:k + 100]]}))
            t0 = time.monotonic()
            subprocess.run([args.binary, "invoke", str(event), "-o", str(work / "out.json")], env=invoke_env,
                           capture_output=True, check=True)
            invoke_wall += time.monotonic() - t0
        result = {
            "records_written": args.records,
            "poll_records": stopped["records"],
            "poll_elapsed_s": stopped["elapsed_s"],
            "poll_process_wall_s": round(poll_wall, 2),
            "poll_records_per_s": round(stopped["records"] / max(stopped["elapsed_s"], 1e-9), 1),
            "invoke_records": len(records),
            "invoke_processes": (len(records) + 99) // 100,
            "invoke_wall_s": round(invoke_wall, 2),
            "invoke_records_per_s": round(len(records) / max(invoke_wall, 1e-9), 1),
        }
        print(json.dumps(result, indent=1))
        return 0
    finally:
        moto.kill()
        moto.wait()


if __name__ == "__main__":
    sys.exit(main())
