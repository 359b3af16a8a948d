"""The two templates are twins, and what they grant and watch matches the code.

* deploy/template.yaml (SAM) and deploy/cloudformation.yaml (plain) declare
  the same parameters (less the plain one's CodeS3Bucket/CodeS3Key), the same
  conditions and outputs, the same resources with the same properties; the
  one difference allowed is the function: AWS::Serverless::Function with
  CodeUri against AWS::Lambda::Function with Code from those two parameters.
* The role's DynamoDB actions are exactly the operations host/src calls
  (IAM names; TransactWriteItems is authorised per element), on the table
  ARN only.
* The dead-letter metric filter matches the completion line the host writes
  (message and field names taken from host/src/handler.rs), and only when it
  dead-lettered something.
* deploy/switch-over.py applies the template's mapping settings and filter.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import CFN_TEMPLATE, ROOT, SAM_TEMPLATE, Checks, load_template  # noqa: E402

c = Checks("templates")
cfn = load_template(CFN_TEMPLATE)
sam = load_template(SAM_TEMPLATE)

# ---------------------------------------------------------------- twins
c.eq(sam.get("Transform"), "AWS::Serverless-2016-10-31", "SAM template's Transform")
c.ok("Transform" not in cfn, "the plain template has no Transform")
plain_only = {"CodeS3Bucket", "CodeS3Key"}
c.eq(set(cfn["Parameters"]) - plain_only, set(sam["Parameters"]), "parameter names (plain less CodeS3*)")
for name in set(cfn["Parameters"]) & set(sam["Parameters"]):
    c.eq(sam["Parameters"][name], cfn["Parameters"][name], f"parameter {name}")
for name in plain_only:
    c.ok(name in cfn["Parameters"], f"plain template parameter {name}")
c.eq(sam.get("Conditions"), cfn.get("Conditions"), "conditions")
c.eq(sam.get("Outputs"), cfn.get("Outputs"), "outputs")
c.eq(set(sam["Resources"]), set(cfn["Resources"]), "resource logical ids")
for lid in set(sam["Resources"]) & set(cfn["Resources"]):
    s, p = dict(sam["Resources"][lid]), dict(cfn["Resources"][lid])
    if s.get("Type") == "AWS::Serverless::Function":
        c.eq(p.get("Type"), "AWS::Lambda::Function", f"{lid}: the plain twin's type")
        s["Type"] = p["Type"]
        sp, pp = dict(s["Properties"]), dict(p["Properties"])
        c.eq(sp.pop("CodeUri", None), "../target/lambda/zae-aggregator/bootstrap.zip", f"{lid}: SAM CodeUri")
        c.eq(pp.pop("Code", None), {"S3Bucket": {"Ref": "CodeS3Bucket"}, "S3Key": {"Ref": "CodeS3Key"}},
             f"{lid}: plain Code")
        s["Properties"], p["Properties"] = sp, pp
    c.eq(s, p, f"resource {lid}")

# ---------------------------------------------------------------- the function
fn = cfn["Resources"]["Function"]["Properties"]
c.eq(fn["Runtime"], "provided.al2023", "runtime")
c.eq(fn["Architectures"], ["arm64"], "architectures")
c.eq(fn["Handler"], "bootstrap", "handler")
c.ok(fn["FunctionName"] != {"Fn::Sub": "${TableName}-aggregator"},
     "the function is not named like upstream's {name}-aggregator (zae-limiter's auto-update target)")
# Every environment variable is one the host reads (docs/host.md Configuration).
host_md = (ROOT / "docs/host.md").read_text()
config = host_md.split("## Configuration", 1)[1].split("\n## ", 1)[0]
documented = set(re.findall(r"^\| `([A-Z_]+)` \|", config, re.M))
for var in fn["Environment"]["Variables"]:
    c.ok(var in documented, f"environment variable {var} is in docs/host.md Configuration")

# ---------------------------------------------------------------- the role
role = cfn["Resources"]["Role"]["Properties"]
statements = [s for pol in role["Policies"] for s in pol["PolicyDocument"]["Statement"]]
for lid, r in cfn["Resources"].items():
    if r["Type"] == "AWS::IAM::Policy":
        c.eq(r["Properties"]["Roles"], [{"Ref": "Role"}], f"{lid} belongs to the function's role")
        statements += r["Properties"]["PolicyDocument"]["Statement"]
c.eq({r["Type"] for r in cfn["Resources"].values() if r["Type"].startswith("AWS::IAM::")},
     {"AWS::IAM::Role", "AWS::IAM::Policy"}, "IAM resource types")
actions = {}
for s in statements:
    for a in [s["Action"]] if isinstance(s["Action"], str) else s["Action"]:
        actions.setdefault(a.split(":")[0], []).append((a, s["Resource"], s.get("Sid")))

# The DynamoDB operations the function makes, from the host's source. The
# commands that run outside Lambda with the operator's credentials (poll and
# replay: docs/poll.md; usage, reconcile, backfill: docs/reading.md#permissions)
# are not the function's: its role never needs their reads.
OUTSIDE_LAMBDA = {"poll.rs", "replay.rs", "stream.rs", "usage.rs", "reconcile.rs", "backfill.rs"}
c.ok(OUTSIDE_LAMBDA <= {p.name for p in (ROOT / "host/src").glob("*.rs")}, "the modules run outside Lambda exist")
src = "".join(p.read_text() for p in (ROOT / "host/src").glob("*.rs") if p.name not in OUTSIDE_LAMBDA)
called = set(re.findall(r"\.(get_item|put_item|update_item|delete_item|query|scan|batch_get_item|batch_write_item|"
                        r"transact_write_items|transact_get_items)\(\)", src))
c.ok(called, "found the host's DynamoDB calls")
iam_for = {"get_item": ["GetItem"], "put_item": ["PutItem"], "update_item": ["UpdateItem"],
           "delete_item": ["DeleteItem"], "query": ["Query"], "scan": ["Scan"], "batch_get_item": ["BatchGetItem"],
           "batch_write_item": ["BatchWriteItem"], "transact_get_items": ["GetItem"]}
want = set()
for call in called:
    if call == "transact_write_items":
        # Each element is authorised as its own action.
        for kind, action in (("Put", "PutItem"), ("Update", "UpdateItem"), ("ConditionCheck", "ConditionCheckItem"),
                             ("Delete", "DeleteItem")):
            if f"TransactItem::{kind}(" in src:
                want.add(f"dynamodb:{action}")
    else:
        want |= {f"dynamodb:{a}" for a in iam_for[call]}
table_arn = {"Fn::Sub": "arn:${AWS::Partition}:dynamodb:${AWS::Region}:${AWS::AccountId}:table/${TableName}"}
table_actions = {a for a, res, _ in actions["dynamodb"] if res == table_arn}
c.eq(table_actions, want, "DynamoDB actions on the table = the operations host/src makes")
# switch-over.sh grants the same actions to upstream's role.
switch_src = (ROOT / "deploy/switch-over.py").read_text()
table_actions_line = re.search(r"^TABLE_ACTIONS = (\[.*\])$", switch_src, re.M)
c.eq(set(json.loads(table_actions_line.group(1))) if table_actions_line else None, want,
     "switch-over.py's TABLE_ACTIONS = the operations host/src makes")
stream = {a for a, res, _ in actions["dynamodb"] if res == {"Ref": "TableStreamArn"}}
c.eq(stream, {"dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator"}, "stream actions")
c.eq({a for a, res, _ in actions["dynamodb"] if res == "*"}, {"dynamodb:ListStreams"}, "the only '*' grant")
c.ok(all("index" not in json.dumps(res) for _, res, _ in actions["dynamodb"]), "no index ARN is granted")
c.eq({a for a, _, _ in actions["s3"]}, {"s3:PutObject"}, "S3 actions")
for a, res, sid in actions["s3"]:
    prefixes = re.findall(r"/(audit|dead-letter)/\*", json.dumps(res))
    c.ok(prefixes and len(set(prefixes)) == 1, f"{sid}: s3:PutObject on one prefix only ({res})")
c.eq(sorted(s for _, _, s in actions["s3"]), ["ArchivePut", "DeadLetterPut"], "S3 statements")
c.eq({a for a, _, _ in actions["sqs"]}, {"sqs:SendMessage"}, "SQS actions")
c.eq(set(actions), {"dynamodb", "s3", "sqs", "logs"}, "services granted")

# ---------------------------------------------------------------- alarms
res = cfn["Resources"]
for lid, metric in (("IteratorAgeAlarm", "IteratorAge"), ("ErrorsAlarm", "Errors"), ("ThrottlesAlarm", "Throttles")):
    a = res[lid]["Properties"]
    c.eq((a["Namespace"], a["MetricName"]), ("AWS/Lambda", metric), f"{lid} metric")
    c.eq(a["Dimensions"], [{"Name": "FunctionName", "Value": {"Ref": "Function"}}], f"{lid} watches the function")
mf = res["DeadLetterMetricFilter"]["Properties"]
dla = res["DeadLetterAlarm"]["Properties"]
t = mf["MetricTransformations"][0]
c.eq((dla["Namespace"], dla["MetricName"]), (t["MetricNamespace"], t["MetricName"]), "dead-letter alarm's metric")
c.eq(mf["LogGroupName"], {"Ref": "LogGroup"}, "the metric filter reads the function's log group")
for lid in ("DeadLetterAlarm", "IteratorAgeAlarm", "ErrorsAlarm", "ThrottlesAlarm", "OnFailureQueueAlarm"):
    c.eq(res[lid]["Properties"].get("AlarmActions"),
         {"Fn::If": ["HasAlarmTopic", [{"Ref": "AlarmTopicArn"}], {"Ref": "AWS::NoValue"}]}, f"{lid} notifies the topic")

# The filter pattern, evaluated on completion lines shaped as the host writes
# them: a conjunction of ($.field op value) terms (CloudWatch's JSON syntax).
handler = (ROOT / "host/src/handler.rs").read_text()
completed = handler.split('"Lambda invocation completed"', 1)
c.ok(len(completed) == 2, "host/src/handler.rs writes 'Lambda invocation completed'")
fields = re.findall(r'\("([a-z_]+)", ', completed[1].split("None,", 1)[0])
c.ok("dead_letter_records" in fields, "the completion line carries dead_letter_records")
c.eq(t["MetricValue"], "$.dead_letter_records", "metric value")
terms = re.findall(r'\(\$\.([a-z_]+) (=|>|>=) ("[^"]*"|\d+)\)', mf["FilterPattern"])
c.ok(terms and mf["FilterPattern"].count("$.") == len(terms), f"pattern parsed: {mf['FilterPattern']}")


def matches(line: dict) -> bool:
    for field, op, value in terms:
        got = line.get(field)
        v = json.loads(value)
        if got is None or not {"=": got == v, ">": isinstance(got, int) and got > v,
                               ">=": isinstance(got, int) and got >= v}[op]:
            return False
    return True


for field, _, _ in terms:
    c.ok(field == "message" or field in fields, f"pattern field {field} is on the completion line")
line = {"timestamp": "2024-01-01T00:00:00.000000Z", "level": "INFO", "logger": "zae_aggregator.handler",
        "message": "Lambda invocation completed", **{f: 0 for f in fields}}
c.ok(not matches(line), "the pattern ignores a completion line with no dead letters")
c.ok(matches(dict(line, dead_letter_records=3)), "the pattern matches a completion line with dead letters")
c.ok(not matches(dict(line, message="Lambda invocation started", dead_letter_records=3)),
     "the pattern ignores other lines")

# ---------------------------------------------------------------- switch-over
spec = importlib.util.spec_from_file_location("switch_over", ROOT / "deploy/switch-over.py")
so = importlib.util.module_from_spec(spec)
spec.loader.exec_module(so)
esm = res["EventSourceMapping"]["Properties"]
for key, value in so.ESM_SETTINGS.items():
    c.eq(value, esm[key], f"switch-over's {key}")
c.eq([{"Pattern": p} for p in so.FILTER_PATTERNS], esm["FilterCriteria"]["Filters"], "switch-over's filter")
c.eq((so.RUNTIME, [so.ARCHITECTURE], so.HANDLER), (fn["Runtime"], fn["Architectures"], fn["Handler"]),
     "switch-over's runtime, architecture, handler")
c.finish()
