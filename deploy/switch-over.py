#!/usr/bin/env python3
"""Switch a zae-limiter stack's Python aggregator over to zae-aggregator, in
place, keeping the stream checkpoint; or roll it back. Runbook:
deploy/README.md. Run it through deploy/switch-over.sh.

  switch-over.sh --stack NAME [--code ZIP] [--apply]
  switch-over.sh --stack NAME --rollback --code PYTHON_ZIP [--apply]

Without --apply nothing is changed: the reads are made, and every write is
printed as the AWS CLI command it would be. With --apply each command is
printed, then made (with boto3, which zae-limiter users already have; the
printed command is its exact AWS CLI equivalent).

Switch-over, on upstream's function "{NAME}-aggregator" and its one DynamoDB
stream event source mapping:
  1. disable the mapping and wait until it is Disabled (its checkpoint stays);
  2. the function's role gets the inline policy "zae-aggregator": the
     DynamoDB actions zae-aggregator makes on the table (upstream 0.13.0's
     role lacks GetItem and ConditionCheckItem);
     runtime provided.al2023, handler bootstrap, the environment plus
     ZAE_LIMITER_VERSION (what the version record says once stamped: 0.17
     when there is a record, else 0.13);
  3. the code (bootstrap.zip) on arm64;
  4. the mapping's settings and filter: README.md "Required event source
     mapping settings" (the same values as deploy/cloudformation.yaml);
  5. tag the function zae-aggregator=switched-over;
  6. stamp the version record's lambda_version to 0.17.0 when it is older, so
     that zae-limiter's version check finds nothing to update (see
     deploy/README.md "What not to run afterwards");
  7. enable the mapping again.
The state before step 1 is saved to --state (default
switch-over-NAME.json) first; --rollback restores it from there.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import sys
import time
from pathlib import Path

# The required event source mapping settings (README.md, "Deploying" ->
# "Required event source mapping settings"); tests/deploy/ checks that they
# equal deploy/cloudformation.yaml's.
ESM_SETTINGS = {
    "FunctionResponseTypes": ["ReportBatchItemFailures"],
    "MaximumRetryAttempts": -1,
    "MaximumRecordAgeInSeconds": -1,
    "BisectBatchOnFunctionError": True,
}
# MODIFY of bucket items (SK #STATE); REMOVE of audit items by their sort key.
FILTER_PATTERNS = [
    '{"eventName":["MODIFY"],"dynamodb":{"NewImage":{"SK":{"S":["#STATE"]}}}}',
    '{"eventName":["REMOVE"],"dynamodb":{"Keys":{"SK":{"S":[{"prefix":"#AUDIT#"}]}}}}',
]
RUNTIME = "provided.al2023"
HANDLER = "bootstrap"
ARCHITECTURE = "arm64"
TAG_KEY = "zae-aggregator"
TAG_VALUE = "switched-over"
# zae-limiter's version record; lambda_version is what its version check
# compares the library's own version with before pushing Python code.
VERSION_KEY = {"PK": {"S": "_/SYSTEM#"}, "SK": {"S": "#VERSION"}}
STAMP = "0.17.0"
# The inline policy added to the function's role: every DynamoDB action
# zae-aggregator makes on the table (host/src/executor.rs, host/src/limiter.rs;
# the same list as the templates' role; tests/deploy/ checks both).
ROLE_POLICY_NAME = "zae-aggregator"
TABLE_ACTIONS = ["dynamodb:UpdateItem", "dynamodb:PutItem", "dynamodb:GetItem", "dynamodb:ConditionCheckItem"]
STAMPED_BY = "zae-aggregator switch-over"


def release(version: str | None) -> tuple[int, int, int] | None:
    m = re.match(r"v?(\d+)\.(\d+)(?:\.(\d+))?", version or "")
    return (int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)) if m else None


def semantics_for(lambda_version: str | None) -> str:
    """The semantics zae-aggregator would choose from this lambda_version
    (docs/specification.md#limiter-versions): 0.13 below 0.14, else 0.17."""
    r = release(lambda_version)
    return "0.13" if r is None or r < (0, 14, 0) else "0.17"


def cli_json(value) -> str:
    return json.dumps(value, separators=(",", ":"))


class Aws:
    """Prints each call as an AWS CLI command, then makes it with boto3;
    writes are only printed unless `apply`."""

    def __init__(self, apply: bool, region: str | None):
        import boto3

        session = boto3.session.Session(region_name=region)
        self.lam = session.client("lambda")
        self.ddb = session.client("dynamodb")
        self.iam = session.client("iam")
        self.apply = apply
        self.writes = 0

    def _print(self, argv: list[str], write: bool, comment: str = "") -> None:
        mark = "" if (self.apply or not write) else "[dry run, not made] "
        print(mark + " ".join(shlex.quote(a) for a in argv) + comment, flush=True)

    def read(self, argv: list[str], call):
        self._print(argv, write=False)
        return call()

    def write(self, argv: list[str], call):
        self._print(argv, write=True)
        self.writes += 1
        return call() if self.apply else None

    # -- waits (printed as `aws lambda wait ...` where the CLI has one)

    def wait_function_updated(self, name: str) -> None:
        self._print(["aws", "lambda", "wait", "function-updated", "--function-name", name], write=True)
        if self.apply:
            self.lam.get_waiter("function_updated").wait(FunctionName=name,
                                                         WaiterConfig={"Delay": 2, "MaxAttempts": 150})

    def wait_mapping(self, uuid: str, state: str) -> None:
        # The CLI has no waiter for this: poll get-event-source-mapping.
        self._print(["aws", "lambda", "get-event-source-mapping", "--uuid", uuid, "--query", "State"], write=True,
                    comment=f"  # until {state}")
        if not self.apply:
            return
        deadline = time.time() + 600
        while True:
            got = self.lam.get_event_source_mapping(UUID=uuid)["State"]
            if got == state:
                return
            if time.time() > deadline:
                raise SystemExit(f"mapping {uuid} is {got}, not {state}, after 10 minutes")
            time.sleep(2)


def discover(aws: Aws, function: str):
    fn = aws.read(["aws", "lambda", "get-function-configuration", "--function-name", function],
                  lambda: aws.lam.get_function_configuration(FunctionName=function))
    maps = aws.read(["aws", "lambda", "list-event-source-mappings", "--function-name", function],
                    lambda: aws.lam.list_event_source_mappings(FunctionName=function)["EventSourceMappings"])
    maps = [m for m in maps if ":dynamodb:" in m.get("EventSourceArn", "")]
    if len(maps) != 1:
        raise SystemExit(f"{function} has {len(maps)} DynamoDB stream event source mappings; expected exactly 1")
    return fn, maps[0]


def read_version(aws: Aws, table: str):
    item = aws.read(["aws", "dynamodb", "get-item", "--table-name", table, "--key", cli_json(VERSION_KEY),
                     "--consistent-read"],
                    lambda: aws.ddb.get_item(TableName=table, Key=VERSION_KEY, ConsistentRead=True).get("Item"))
    if item is None:
        return False, None
    lv = item.get("lambda_version", {}).get("S")
    return True, lv


def update_mapping(aws: Aws, uuid: str, settings: dict) -> None:
    argv = ["aws", "lambda", "update-event-source-mapping", "--uuid", uuid]
    for key, value in settings.items():
        flag = "--" + re.sub(r"(?<!^)(?=[A-Z])", "-", key).lower()
        if isinstance(value, bool):
            argv.append(flag if value else "--no-" + flag[2:])
        elif isinstance(value, list):
            argv += [flag, *[str(v) for v in value]] if value else [flag, "[]"]
        elif isinstance(value, dict):
            argv += [flag, cli_json(value)]
        else:
            argv += [flag, str(value)]
    aws.write(argv, lambda: aws.lam.update_event_source_mapping(UUID=uuid, **settings))


def set_enabled(aws: Aws, uuid: str, enabled: bool) -> None:
    update_mapping(aws, uuid, {"Enabled": enabled})
    aws.wait_mapping(uuid, "Enabled" if enabled else "Disabled")


def update_configuration(aws: Aws, function: str, runtime: str, handler: str, env: dict) -> None:
    aws.write(["aws", "lambda", "update-function-configuration", "--function-name", function, "--runtime", runtime,
               "--handler", handler, "--environment", cli_json({"Variables": env})],
              lambda: aws.lam.update_function_configuration(FunctionName=function, Runtime=runtime, Handler=handler,
                                                            Environment={"Variables": env}))
    aws.wait_function_updated(function)


def update_code(aws: Aws, function: str, zip_path: Path, arch: str) -> None:
    def call():
        return aws.lam.update_function_code(FunctionName=function, ZipFile=zip_path.read_bytes(),
                                            Architectures=[arch])

    aws.write(["aws", "lambda", "update-function-code", "--function-name", function, "--zip-file",
               f"fileb://{zip_path}", "--architectures", arch], call)
    aws.wait_function_updated(function)


def stamp_version(aws: Aws, table: str, expect: str | None, value: str, by: str) -> None:
    """Set lambda_version to `value` if it still is `expect` (a condition, so
    that a concurrent writer's change is not overwritten)."""
    names = {"#lv": "lambda_version", "#by": "updated_by"}
    values = {":v": {"S": value}, ":by": {"S": by}}
    if expect is None:
        cond = "attribute_exists(PK) AND (attribute_not_exists(#lv) OR attribute_type(#lv, :null))"
        values[":null"] = {"S": "NULL"}
    else:
        cond = "#lv = :old"
        values[":old"] = {"S": expect}
    args = dict(TableName=table, Key=VERSION_KEY, UpdateExpression="SET #lv = :v, #by = :by",
                ConditionExpression=cond, ExpressionAttributeNames=names, ExpressionAttributeValues=values)
    aws.write(["aws", "dynamodb", "update-item", "--table-name", table, "--key", cli_json(VERSION_KEY),
               "--update-expression", args["UpdateExpression"], "--condition-expression", cond,
               "--expression-attribute-names", cli_json(names), "--expression-attribute-values", cli_json(values)],
              lambda: aws.ddb.update_item(**args))


def table_arn(stream_arn: str) -> str:
    """arn:aws:dynamodb:R:A:table/NAME/stream/LABEL -> arn:aws:dynamodb:R:A:table/NAME"""
    return stream_arn.split("/stream/")[0]


def role_policy(table: str) -> dict:
    return {"Version": "2012-10-17",
            "Statement": [{"Sid": "ZaeAggregatorTable", "Effect": "Allow", "Action": TABLE_ACTIONS, "Resource": table}]}


def mapping_settings(m: dict) -> dict:
    """The settings of a mapping that switch-over changes, as the update call
    takes them (for the state file and rollback)."""
    return {
        "BatchSize": m.get("BatchSize"),
        "FunctionResponseTypes": m.get("FunctionResponseTypes", []),
        "MaximumRetryAttempts": m.get("MaximumRetryAttempts"),
        "MaximumRecordAgeInSeconds": m.get("MaximumRecordAgeInSeconds"),
        "BisectBatchOnFunctionError": m.get("BisectBatchOnFunctionError", False),
        "ParallelizationFactor": m.get("ParallelizationFactor", 1),
        "FilterCriteria": m.get("FilterCriteria", {"Filters": []}),
    }


def switch_over(aws: Aws, args) -> None:
    function = args.function or f"{args.stack}-aggregator"
    fn, m = discover(aws, function)
    # Lambda returns strings; str() only matters for emulators that keep a
    # template's numbers as numbers.
    env = {k: str(v) for k, v in fn.get("Environment", {}).get("Variables", {}).items()}
    table = env.get("TABLE_NAME") or args.stack
    has_record, lambda_version = read_version(aws, table)
    if fn.get("Runtime") == RUNTIME and fn.get("Handler") == HANDLER:
        raise SystemExit(f"{function} already runs {RUNTIME}/{HANDLER}: nothing to switch over "
                         f"(roll back with --rollback)")
    stamp = has_record and (release(lambda_version) is None or release(lambda_version) < release(STAMP))
    # Once stamped, the record says 0.17.0 and zae-limiter's client opens its
    # 0.17 features (its lambda_version gates): the function must then serve
    # the 0.17 semantics, which handle items written by older clients as
    # upstream's 0.17.0 aggregator does during a rolling upgrade.
    limiter = args.limiter_version or semantics_for(STAMP if stamp else lambda_version)
    role_name = fn["Role"].rsplit("/", 1)[-1]
    print(f"# function {function}, mapping {m['UUID']} ({m['State']}), table {table}, "
          f"lambda_version {lambda_version!r}: serving zae-limiter {limiter}", flush=True)

    state = {
        "function": function,
        "function_arn": fn["FunctionArn"],
        "runtime": fn.get("Runtime"),
        "handler": fn.get("Handler"),
        "architectures": fn.get("Architectures", ["x86_64"]),
        "environment": env,
        "code_sha256": fn.get("CodeSha256"),
        "mapping_uuid": m["UUID"],
        "mapping_enabled": m["State"] in ("Enabled", "Enabling", "Updating"),
        "mapping": mapping_settings(m),
        "table": table,
        "version_record": has_record,
        "lambda_version": lambda_version,
        "stamped": None,
        "role": role_name,
    }
    new_env = dict(env)
    new_env["ZAE_LIMITER_VERSION"] = limiter
    settings = dict(ESM_SETTINGS, BatchSize=args.batch_size, ParallelizationFactor=args.parallelization_factor,
                    FilterCriteria={"Filters": [{"Pattern": p} for p in FILTER_PATTERNS]})
    if stamp:
        state["stamped"] = STAMP
    if not has_record:
        print(f"# {table} has no version record: zae-limiter's version check has nothing to compare, "
              "no stamp is written", flush=True)
    if aws.apply:
        args.state.write_text(json.dumps(state, indent=2) + "\n")
        print(f"# state saved to {args.state} (needed by --rollback)", flush=True)

    set_enabled(aws, m["UUID"], False)
    document = cli_json(role_policy(table_arn(m["EventSourceArn"])))
    aws.write(["aws", "iam", "put-role-policy", "--role-name", role_name, "--policy-name", ROLE_POLICY_NAME,
               "--policy-document", document],
              lambda: aws.iam.put_role_policy(RoleName=role_name, PolicyName=ROLE_POLICY_NAME,
                                              PolicyDocument=document))
    update_configuration(aws, function, RUNTIME, HANDLER, new_env)
    update_code(aws, function, args.code, ARCHITECTURE)
    update_mapping(aws, m["UUID"], settings)
    aws.write(["aws", "lambda", "tag-resource", "--resource", fn["FunctionArn"], "--tags", f"{TAG_KEY}={TAG_VALUE}"],
              lambda: aws.lam.tag_resource(Resource=fn["FunctionArn"], Tags={TAG_KEY: TAG_VALUE}))
    if stamp:
        stamp_version(aws, table, lambda_version, STAMP, STAMPED_BY)
    set_enabled(aws, m["UUID"], True)


def rollback(aws: Aws, args) -> None:
    if not args.state.exists():
        raise SystemExit(f"{args.state}: no saved state; it is written by the switch-over with --apply")
    state = json.loads(args.state.read_text())
    function = state["function"]
    fn, m = discover(aws, function)
    if m["UUID"] != state["mapping_uuid"]:
        raise SystemExit(f"{function}'s mapping is {m['UUID']}, the saved state's {state['mapping_uuid']}")
    print(f"# rolling {function} back to {state['runtime']}/{state['handler']} on {state['architectures'][0]}, "
          f"mapping {m['UUID']}", flush=True)
    set_enabled(aws, m["UUID"], False)
    update_configuration(aws, function, state["runtime"], state["handler"], state["environment"])
    update_code(aws, function, args.code, state["architectures"][0])
    update_mapping(aws, m["UUID"], state["mapping"])
    aws.write(["aws", "lambda", "untag-resource", "--resource", fn["FunctionArn"], "--tag-keys", TAG_KEY],
              lambda: aws.lam.untag_resource(Resource=fn["FunctionArn"], TagKeys=[TAG_KEY]))
    if state.get("role"):
        aws.write(["aws", "iam", "delete-role-policy", "--role-name", state["role"], "--policy-name", ROLE_POLICY_NAME],
                  lambda: aws.iam.delete_role_policy(RoleName=state["role"], PolicyName=ROLE_POLICY_NAME))
    if state.get("stamped") and not state.get("lambda_version"):
        print(f"# lambda_version was unset before the stamp; set it back by hand if needed "
              f"(it is {state['stamped']!r} now)", flush=True)
    elif state.get("stamped"):
        _, now = read_version(aws, state["table"])
        if now == state["stamped"]:
            stamp_version(aws, state["table"], state["stamped"], state["lambda_version"], STAMPED_BY + " rollback")
        else:
            print(f"# lambda_version is {now!r}, not our stamp {state['stamped']!r}: left as it is", flush=True)
    if state["mapping_enabled"]:
        set_enabled(aws, m["UUID"], True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="switch-over.sh", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--stack", required=True, help="zae-limiter stack (and table) name; the function is NAME-aggregator")
    p.add_argument("--function", help="the function, when it is not NAME-aggregator")
    p.add_argument("--code", type=Path, help="the package to install: bootstrap.zip (default "
                   "target/lambda/zae-aggregator/bootstrap.zip); with --rollback, the Python aggregator's zip")
    p.add_argument("--apply", action="store_true", help="make the changes (default: print them only)")
    p.add_argument("--dry-run", action="store_true", help="print the changes only (the default)")
    p.add_argument("--rollback", action="store_true", help="restore the Python aggregator from --state")
    p.add_argument("--state", type=Path, help="state file (default switch-over-NAME.json)")
    p.add_argument("--limiter-version", choices=["0.13", "0.17"],
                   help="ZAE_LIMITER_VERSION to set (default: what the version record says once stamped: "
                   "0.17 when the table has one, else 0.13)")
    p.add_argument("--batch-size", type=int, default=1000, help="records per invocation (default 1000)")
    p.add_argument("--parallelization-factor", type=int, default=1, choices=range(1, 11), metavar="1-10",
                   help="concurrent batches per shard (default 1)")
    p.add_argument("--region", help="AWS region (default: the usual AWS configuration)")
    args = p.parse_args(argv)
    if args.apply and args.dry_run:
        p.error("--apply and --dry-run exclude each other")
    args.state = args.state or Path(f"switch-over-{args.stack}.json")
    if args.code is None:
        if args.rollback:
            p.error("--rollback needs --code: the Python aggregator's zip (deploy/README.md, Rollback)")
        args.code = Path(__file__).resolve().parent.parent / "target/lambda/zae-aggregator/bootstrap.zip"
    if not args.code.is_file() and (args.apply or not args.rollback):
        if args.apply:
            raise SystemExit(f"{args.code}: no such file")
        print(f"# note: {args.code} does not exist yet; --apply needs it", flush=True)
    aws = Aws(args.apply, args.region)
    print("# " + ("applying" if args.apply else "dry run: nothing is changed; --apply makes these calls"), flush=True)
    (rollback if args.rollback else switch_over)(aws, args)
    print(f"# {aws.writes} write calls {'made' if args.apply else 'printed, none made'}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
