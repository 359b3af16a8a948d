"""deploy/switch-over.sh against upstream's own stack on a moto server.

The stack is zae-limiter 0.13.0's zae_limiter/infra/cfn_template.yaml, taken
from the wheel (pip download, into target/deploy-upstream/), created on moto
with its defaults, so the aggregator function, its role, its DLQ and its
event source mapping exist as upstream makes them. Two moto 5.2.5 gaps are
worked around here, not in the product:
  * moto's YAML loader reads the short form `!Condition X` as
    {"Fn::Condition": X}, which its condition evaluator does not know, so
    every aggregator resource would be skipped: the test gives moto the long
    form {Condition: X}, which CloudFormation reads identically;
  * moto's AWS::IAM::Role fails on an `AWS::NoValue` entry in Policies
    (upstream's XRay policy when tracing is off): the stack is created with
    EnableTracing=true, which only adds that policy.
Then the table gets a version record as zae-limiter 0.13.0 writes it.

1. The dry run (the default) prints the reads and the write calls in order,
   and changes nothing: function, mapping, tags and version record are the
   same before and after.
2. --apply: the function ends on provided.al2023 / arm64 / bootstrap with the
   code given, its environment plus ZAE_LIMITER_VERSION=0.13, the mapping
   has the same UUID, is Enabled, and has the required settings and filter;
   lambda_version is stamped 0.17.0; the tag is set.
3. --rollback --apply restores runtime, handler, architecture, environment,
   code, mapping settings and lambda_version.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import ROOT, Checks, Moto, bootstrap_zip, load_template  # noqa: E402

STACK = "rate-limits"
FUNCTION = f"{STACK}-aggregator"
UPSTREAM = ROOT / "target/deploy-upstream"
c = Checks("switch-over")


def upstream_template() -> str:
    wheel = UPSTREAM / "zae_limiter-0.13.0-py3-none-any.whl"
    if not wheel.exists():
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--no-deps",
                        "zae-limiter==0.13.0", "-d", str(UPSTREAM)], check=True)
    with zipfile.ZipFile(wheel) as z:
        text = z.read("zae_limiter/infra/cfn_template.yaml").decode()
    return re.sub(r"!Condition ([A-Za-z0-9]+)", r"{Condition: \1}", text)


def run(moto: Moto, *args: str, expect_failure: bool = False) -> subprocess.CompletedProcess:
    p = subprocess.run(["bash", str(ROOT / "deploy/switch-over.sh"), "--stack", STACK, *args], env=moto.env(),
                       capture_output=True, text=True)
    if (p.returncode != 0) != expect_failure:
        print(p.stdout, p.stderr, file=sys.stderr)
    return p


def snapshot(lam, ddb, iam) -> dict:
    fn = lam.get_function_configuration(FunctionName=FUNCTION)
    for k in ("ResponseMetadata", "LastModified", "RevisionId"):
        fn.pop(k, None)
    m = lam.list_event_source_mappings(FunctionName=FUNCTION)["EventSourceMappings"]
    for x in m:
        x.pop("LastModified", None)
    tags = lam.list_tags(Resource=fn["FunctionArn"])["Tags"]
    rec = ddb.get_item(TableName=STACK, Key={"PK": {"S": "_/SYSTEM#"}, "SK": {"S": "#VERSION"}})["Item"]
    role = fn["Role"].rsplit("/", 1)[-1]
    policies = {name: iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"]
                for name in iam.list_role_policies(RoleName=role)["PolicyNames"]}
    return {"function": fn, "mappings": m, "tags": tags, "version": rec, "role_policies": policies}


def writes(out: str) -> list[str]:
    """The calls a run printed after its discovery reads, as `service operation`."""
    discovery = {"lambda get-function-configuration", "lambda list-event-source-mappings", "dynamodb get-item"}
    calls = [" ".join(line.removeprefix("[dry run, not made] ").split()[1:3]) for line in out.splitlines()
             if line.startswith(("aws ", "[dry run, not made] aws "))]
    return [call for call in calls if call not in discovery]


with tempfile.TemporaryDirectory() as tmp, Moto(Path(tmp) / "moto.log") as moto:
    tmp = Path(tmp)
    cfn, lam, ddb = moto.client("cloudformation"), moto.client("lambda"), moto.client("dynamodb")
    iam = moto.client("iam")
    cfn.create_stack(StackName=STACK, TemplateBody=upstream_template(), Capabilities=["CAPABILITY_NAMED_IAM"],
                     Parameters=[{"ParameterKey": "EnableTracing", "ParameterValue": "true"}])
    c.eq(cfn.describe_stacks(StackName=STACK)["Stacks"][0]["StackStatus"], "CREATE_COMPLETE", "upstream stack")
    # The version record as zae-limiter 0.13.0's deploy writes it.
    ddb.put_item(TableName=STACK, Item={"PK": {"S": "_/SYSTEM#"}, "SK": {"S": "#VERSION"},
                                        "schema_version": {"S": "0.10.0"}, "lambda_version": {"S": "0.13.0"},
                                        "client_min_version": {"S": "0.0.0"}, "updated_by": {"S": "cli:0.13.0"}})
    before = snapshot(lam, ddb, iam)
    uuid = before["mappings"][0]["UUID"]
    c.eq(before["function"]["Runtime"], "python3.12", "upstream runtime")
    c.eq(before["mappings"][0]["MaximumRetryAttempts"], 3, "upstream mapping retries")

    # The package: a real zip with an executable bootstrap. Its content is
    # never run (moto stores code); the test checks it is the one installed.
    code = tmp / "bootstrap.zip"
    code.write_bytes(bootstrap_zip(b"#!/bin/sh\necho zae-aggregator stand-in\n"))
    python_zip = tmp / "aggregator.zip"
    with zipfile.ZipFile(python_zip, "w") as z:
        z.writestr("zae_limiter_aggregator/handler.py", "def handler(event, context):\n    raise RuntimeError\n")

    # 1. dry run
    dry = run(moto, "--code", str(code), "--state", str(tmp / "state.json"))
    c.eq(dry.returncode, 0, "dry run exit status")
    if os.environ.get("ZAE_DEPLOY_VERBOSE") == "1":
        print(dry.stdout)
    order = ["lambda update-event-source-mapping", "lambda get-event-source-mapping", "iam put-role-policy",
             "lambda update-function-configuration",
             "lambda wait", "lambda update-function-code", "lambda wait", "lambda update-event-source-mapping",
             "lambda tag-resource", "dynamodb update-item", "lambda update-event-source-mapping",
             "lambda get-event-source-mapping"]
    c.eq(writes(dry.stdout), order, "dry run prints the write calls in order")
    c.ok(all(line.startswith(("#", "aws ", "[dry run, not made] aws ")) for line in dry.stdout.splitlines()),
         "every line is a comment or an AWS CLI call")
    c.ok("--no-enabled" in dry.stdout and "--enabled" in dry.stdout, "disable and re-enable printed")
    c.ok("--architectures arm64" in dry.stdout and "--runtime provided.al2023 --handler bootstrap" in dry.stdout,
         "runtime, handler and architecture printed")
    c.eq(snapshot(lam, ddb, iam), before, "the dry run changed nothing")
    c.ok(not (tmp / "state.json").exists(), "the dry run wrote no state file")

    # 2. apply
    done = run(moto, "--code", str(code), "--state", str(tmp / "state.json"), "--apply")
    c.eq(done.returncode, 0, "apply exit status")
    c.eq(writes(done.stdout), order, "apply makes the same calls in the same order")
    after = snapshot(lam, ddb, iam)
    fn = after["function"]
    c.eq((fn["Runtime"], fn["Architectures"], fn["Handler"]), ("provided.al2023", ["arm64"], "bootstrap"),
         "runtime, architecture, handler")
    got_code = lam.get_function(FunctionName=FUNCTION)["Configuration"]["CodeSha256"]
    c.eq(got_code, base64.b64encode(hashlib.sha256(code.read_bytes()).digest()).decode(), "the code installed")
    # moto keeps the upstream template's Number parameter as a number in
    # Variables (real Lambda has strings): compare as strings.
    env_before = {k: str(v) for k, v in before["function"]["Environment"]["Variables"].items()}
    # The record is stamped 0.17.0, which opens the 0.17 client's features:
    # the function serves the 0.17 semantics from now on.
    want_env = dict(env_before, ZAE_LIMITER_VERSION="0.17")
    c.eq(fn["Environment"]["Variables"], want_env, "environment kept, ZAE_LIMITER_VERSION as the stamped record says")
    added = after["role_policies"].get("zae-aggregator")
    if isinstance(added, str):
        added = json.loads(added)
    table_arn = lam.list_event_source_mappings(FunctionName=FUNCTION)["EventSourceMappings"][0]["EventSourceArn"]
    table_arn = table_arn.split("/stream/")[0]
    c.eq(added and added["Statement"], [{"Sid": "ZaeAggregatorTable", "Effect": "Allow",
                                         "Action": ["dynamodb:UpdateItem", "dynamodb:PutItem", "dynamodb:GetItem",
                                                    "dynamodb:ConditionCheckItem"], "Resource": table_arn}],
         "the role gets zae-aggregator's table actions, on the table only")
    c.eq({k: v for k, v in after["role_policies"].items() if k != "zae-aggregator"}, before["role_policies"],
         "upstream's own role policies untouched")
    c.eq([m["UUID"] for m in after["mappings"]], [uuid], "same mapping UUID")
    m = after["mappings"][0]
    esm = load_template(ROOT / "deploy/cloudformation.yaml")["Resources"]["EventSourceMapping"]["Properties"]
    for key in ("FunctionResponseTypes", "MaximumRetryAttempts", "MaximumRecordAgeInSeconds",
                "BisectBatchOnFunctionError", "FilterCriteria"):
        c.eq(m.get(key), esm[key], f"mapping {key} as the template's")
    c.eq((m.get("State"), m.get("BatchSize"), m.get("ParallelizationFactor")), ("Enabled", 1000, 1),
         "mapping state and sizes")
    c.eq(m["DestinationConfig"], before["mappings"][0]["DestinationConfig"], "upstream's DLQ kept")
    c.eq(after["version"]["lambda_version"], {"S": "0.17.0"}, "lambda_version stamped")
    c.eq(after["version"]["schema_version"], before["version"]["schema_version"], "schema_version untouched")
    c.eq(after["tags"].get("zae-aggregator"), "switched-over", "tag")
    state = json.loads((tmp / "state.json").read_text())
    c.eq((state["runtime"], state["mapping_uuid"], state["lambda_version"]), ("python3.12", uuid, "0.13.0"), "state")

    again = run(moto, "--code", str(code), "--state", str(tmp / "state.json"), "--apply", expect_failure=True)
    c.ok(again.returncode != 0 and "already runs" in again.stderr, "a second switch-over refuses")

    # 3. rollback
    back = run(moto, "--rollback", "--code", str(python_zip), "--state", str(tmp / "state.json"), "--apply")
    c.eq(back.returncode, 0, "rollback exit status")
    restored = snapshot(lam, ddb, iam)
    for k in ("Runtime", "Handler", "Architectures"):
        c.eq(restored["function"][k], before["function"][k], f"rolled back {k}")
    c.eq(restored["function"]["Environment"]["Variables"], env_before, "rolled back environment")
    got_code = lam.get_function(FunctionName=FUNCTION)["Configuration"]["CodeSha256"]
    c.eq(got_code, base64.b64encode(hashlib.sha256(python_zip.read_bytes()).digest()).decode(), "rolled back code")
    c.eq(restored["mappings"][0]["UUID"], uuid, "rollback keeps the mapping UUID")
    for k in ("FunctionResponseTypes", "MaximumRetryAttempts", "MaximumRecordAgeInSeconds", "BatchSize",
              "BisectBatchOnFunctionError", "ParallelizationFactor", "FilterCriteria", "State"):
        # Lambda's defaults where moto leaves a setting out of upstream's mapping.
        default = {"ParallelizationFactor": 1, "FunctionResponseTypes": []}.get(k)
        c.eq(restored["mappings"][0].get(k, default), before["mappings"][0].get(k, default), f"rolled back mapping {k}")
    c.eq(restored["version"]["lambda_version"], {"S": "0.13.0"}, "rolled back lambda_version")
    c.ok("zae-aggregator" not in restored["tags"], "tag removed")
    c.eq(restored["role_policies"], before["role_policies"], "rollback removes the added role policy")
    c.eq(os.path.exists(tmp / "state.json"), True, "state file kept")
c.finish()
