"""deploy/cloudformation.yaml creates its stack on a moto server.

The test starts moto on a free 127.0.0.1 port, creates a zae-limiter table
with a NEW_AND_OLD_IMAGES stream first (as zae-limiter's own stack would),
uploads a function package, creates the stack with the table's name and
stream ARN, and checks each resource against the template: the function
(runtime, architecture, handler, memory, timeout, role, environment), the
mapping (every setting and the filter), the role and its policies, the queue,
the log group and its retention, the bucket.

The package is a real zip holding an executable `bootstrap`, but a one-line
shell script: moto stores the code and never runs it, and no check here
depends on what the binary does (the Lambda loop is tested in host/tests).

moto 5.2.5's CloudFormation does not implement AWS::Logs::MetricFilter or
AWS::CloudWatch::Alarm (it skips them with a warning); those resources are
checked from the template in test_templates.py instead.
"""

from __future__ import annotations

import ast
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import CFN_TEMPLATE, Checks, Moto, bootstrap_zip, create_limiter_table, load_template  # noqa: E402

TABLE = "rate-limits"
STACK = "rate-limits-zae"
c = Checks("stack")
tpl = load_template(CFN_TEMPLATE)
declared = tpl["Resources"]

with tempfile.TemporaryDirectory() as tmp, Moto(Path(tmp) / "moto.log") as moto:
    ddb, s3, cfn = moto.client("dynamodb"), moto.client("s3"), moto.client("cloudformation")
    lam, iam, sqs, logs = moto.client("lambda"), moto.client("iam"), moto.client("sqs"), moto.client("logs")
    stream_arn = create_limiter_table(ddb, TABLE)
    s3.create_bucket(Bucket="code")
    s3.put_object(Bucket="code", Key="zae/bootstrap.zip", Body=bootstrap_zip(b"#!/bin/sh\nexit 1\n"))
    params = {"TableName": TABLE, "TableStreamArn": stream_arn, "CodeS3Bucket": "code",
              "CodeS3Key": "zae/bootstrap.zip", "ZaeLimiterVersion": "0.17", "SnapshotWindows": "hourly,monthly",
              "MemorySize": "512", "LogRetentionDays": "14", "ParallelizationFactor": "4"}
    cfn.create_stack(StackName=STACK, TemplateBody=CFN_TEMPLATE.read_text(), Capabilities=["CAPABILITY_IAM"],
                     Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in params.items()])
    stack = cfn.describe_stacks(StackName=STACK)["Stacks"][0]
    c.eq(stack["StackStatus"], "CREATE_COMPLETE", "stack status")
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    physical = {r["LogicalResourceId"]: r["PhysicalResourceId"]
                for r in cfn.list_stack_resources(StackName=STACK)["StackResourceSummaries"]
                if "LogicalResourceId" in r}
    moto_skips = {"AWS::Logs::MetricFilter", "AWS::CloudWatch::Alarm"}
    for lid, r in declared.items():
        if r["Type"] not in moto_skips:
            c.ok(lid in physical, f"resource {lid} ({r['Type']}) created")

    # The table is the test's, untouched by the stack.
    c.eq(ddb.describe_table(TableName=TABLE)["Table"]["StreamSpecification"],
         {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}, "table stream")

    # The function.
    fname = f"{TABLE}-zae-aggregator"
    c.eq(physical.get("Function"), fname, "function name")
    fn = lam.get_function_configuration(FunctionName=fname)
    c.eq(fn["Runtime"], "provided.al2023", "runtime")
    c.eq(fn["Architectures"], ["arm64"], "architectures")
    c.eq(fn["Handler"], "bootstrap", "handler")
    c.eq(fn["MemorySize"], 512, "memory")
    c.eq(fn["Timeout"], 60, "timeout")
    bucket = physical.get("ArchiveBucket")
    c.ok(bucket and s3.head_bucket(Bucket=bucket), "archive bucket exists")
    want_env = {"TABLE_NAME": TABLE, "SNAPSHOT_WINDOWS": "hourly,monthly", "SNAPSHOT_TTL_DAYS": "90",
                "MAX_SHARD_COUNT": "32", "ENABLE_ARCHIVAL": "true", "ARCHIVE_BUCKET_NAME": bucket,
                "DEAD_LETTER_BUCKET": bucket, "ZAE_LIMITER_VERSION": "0.17", "LOG_LEVEL": "INFO"}
    # moto keeps Number parameters as numbers inside Variables; Lambda has strings.
    env = {k: str(v) for k, v in fn["Environment"]["Variables"].items()}
    c.eq(env, want_env, "environment")
    role_name = physical.get("Role")
    c.eq(fn["Role"], iam.get_role(RoleName=role_name)["Role"]["Arn"], "the function's role")

    # The mapping: every required setting and the filter, as declared.
    esm_decl = declared["EventSourceMapping"]["Properties"]
    maps = lam.list_event_source_mappings(FunctionName=fname)["EventSourceMappings"]
    c.eq(len(maps), 1, "one event source mapping")
    m = maps[0] if maps else {}
    c.eq(m.get("UUID"), physical.get("EventSourceMapping"), "mapping UUID is the stack's")
    c.eq(m.get("UUID"), outputs.get("EventSourceMappingId"), "mapping UUID output")
    c.eq(m.get("EventSourceArn"), stream_arn, "mapping reads the table's stream")
    for key in ("StartingPosition", "FunctionResponseTypes", "MaximumRetryAttempts", "MaximumRecordAgeInSeconds",
                "BisectBatchOnFunctionError", "MaximumBatchingWindowInSeconds", "FilterCriteria"):
        c.eq(m.get(key), esm_decl[key], f"mapping {key}")
    c.eq(m.get("ParallelizationFactor"), 4, "mapping ParallelizationFactor (parameter)")
    c.eq(m.get("BatchSize"), 1000, "mapping BatchSize (default)")
    queue_url = physical.get("OnFailureQueue", "")
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url.replace("https://sqs.us-east-1.amazonaws.com", moto.url),
                                         AttributeNames=["QueueArn", "MessageRetentionPeriod"])["Attributes"]
    c.eq(m.get("DestinationConfig"), {"OnFailure": {"Destination": queue_arn["QueueArn"]}}, "on-failure destination")
    c.eq(queue_arn["MessageRetentionPeriod"], "1209600", "queue retention")
    for p in m.get("FilterCriteria", {}).get("Filters", []):
        json.loads(p["Pattern"])  # each pattern is JSON

    # The role: trust, and each inline policy as the template declares it.
    role = iam.get_role(RoleName=role_name)["Role"]
    c.eq(role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"], {"Service": "lambda.amazonaws.com"},
         "trust policy")
    names = set(iam.list_role_policies(RoleName=role_name)["PolicyNames"])
    c.eq(names, {"table", "on-failure", "logs", "archive", "dead-letter"}, "role policies")
    c.eq(iam.list_attached_role_policies(RoleName=role_name)["AttachedPolicies"], [], "no managed policies")
    docs = {n: iam.get_role_policy(RoleName=role_name, PolicyName=n)["PolicyDocument"] for n in names}
    # moto returns a CloudFormation-made inline policy as the Python repr of
    # the document, not JSON: read either.
    docs = {n: d if isinstance(d, dict) else ast.literal_eval(d) if d.startswith("{'") else json.loads(d)
            for n, d in docs.items()}
    account = role["Arn"].split(":")[4]
    table_arn = f"arn:aws:dynamodb:us-east-1:{account}:table/{TABLE}"
    stmts = {s["Sid"]: s for d in docs.values() for s in d["Statement"]}
    c.eq(sorted(stmts["TableWrites"]["Action"]), sorted(["dynamodb:UpdateItem", "dynamodb:PutItem",
                                                         "dynamodb:GetItem", "dynamodb:ConditionCheckItem"]),
         "table actions")
    c.eq(stmts["TableWrites"]["Resource"], table_arn, "table actions on the table ARN")
    c.eq(stmts["StreamRead"]["Resource"], stream_arn, "stream actions on the stream ARN")
    c.eq(stmts["ArchivePut"]["Resource"], f"arn:aws:s3:::{bucket}/audit/*", "archive prefix")
    c.eq(stmts["DeadLetterPut"]["Resource"], f"arn:aws:s3:::{bucket}/dead-letter/*", "dead-letter prefix")
    c.eq(stmts["OnFailureDestination"]["Resource"], queue_arn["QueueArn"], "SendMessage on the queue")

    # The log group: the function's, with the chosen retention.
    groups = logs.describe_log_groups(logGroupNamePrefix=f"/aws/lambda/{fname}")["logGroups"]
    c.eq([(g["logGroupName"], g.get("retentionInDays")) for g in groups], [(f"/aws/lambda/{fname}", 14)],
         "log group and retention")
    c.eq(outputs.get("FunctionName"), fname, "FunctionName output")
    c.eq(outputs.get("BucketName"), bucket, "BucketName output")

    # An existing bucket, dead letters off, archival off: no bucket created,
    # no S3 grant at all.
    s3.create_bucket(Bucket="existing-archive")
    stream2 = create_limiter_table(ddb, "other-table")
    p2 = dict(params, TableName="other-table", TableStreamArn=stream2, ArchiveBucketName="existing-archive",
              EnableArchival="false", DeadLetterBucket="none")
    cfn.create_stack(StackName="other", TemplateBody=CFN_TEMPLATE.read_text(), Capabilities=["CAPABILITY_IAM"],
                     Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in p2.items()])
    c.eq(cfn.describe_stacks(StackName="other")["Stacks"][0]["StackStatus"], "CREATE_COMPLETE", "second stack")
    phys2 = {r["LogicalResourceId"]: r["PhysicalResourceId"]
             for r in cfn.list_stack_resources(StackName="other")["StackResourceSummaries"] if "LogicalResourceId" in r}
    c.ok("ArchiveBucket" not in phys2, "no bucket created when one is given")
    env2 = lam.get_function_configuration(FunctionName="other-table-zae-aggregator")["Environment"]["Variables"]
    c.eq((env2["ARCHIVE_BUCKET_NAME"], env2["DEAD_LETTER_BUCKET"], env2["ENABLE_ARCHIVAL"]),
         ("existing-archive", "none", "false"), "second stack's bucket variables")
    c.eq(set(iam.list_role_policies(RoleName=phys2["Role"])["PolicyNames"]), {"table", "on-failure", "logs"},
         "no S3 policy when archival and dead letters are off")
c.finish()
