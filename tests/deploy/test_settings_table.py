"""README.md's "Required event source mapping settings" table, the table of
docs/delivery-guarantees.md and both templates say the same thing.

Every README row is read and compared with the event source mapping the
templates declare (and the table's stream, for StreamViewType); every
setting the mapping sets that the guarantees depend on must have a row; and
each row of docs/delivery-guarantees.md must admit the template's value.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import CFN_TEMPLATE, ROOT, SAM_TEMPLATE, Checks, load_template  # noqa: E402

c = Checks("settings table")


def table(path: Path, heading: str) -> dict[str, str]:
    """setting -> value column of the first table under `heading`."""
    text = path.read_text()
    c.ok(heading in text, f"{path.name} has '{heading}'")
    section = text.split(heading, 1)[-1]
    rows = {}
    for line in section.splitlines():
        if line.startswith("|") and not line.startswith("|---") and not line.startswith("| setting"):
            cells = [x.strip() for x in line.strip("|").split("|")]
            rows[cells[0].strip("`").split("`")[0]] = cells[1]
        elif rows and not line.startswith("|"):
            break
    return rows


def describe_filter(filters: list[dict]) -> str:
    """A filter in the README's words: `MODIFY` with `NewImage.SK` = `#STATE`."""
    parts = []
    for f in filters:
        p = json.loads(f["Pattern"])
        (name,) = p["eventName"]
        (image, attrs), = p["dynamodb"].items()
        (attr, typed), = attrs.items()
        (value,) = typed["S"]
        cond = f"prefix `{value['prefix']}`" if isinstance(value, dict) else f"= `{value}`"
        parts.append(f"`{name}` with `{image}.{attr}` {cond}")
    return "; ".join(parts)


readme = table(ROOT / "README.md", "### Required event source mapping settings")
guarantees = table(ROOT / "docs/delivery-guarantees.md", "## Required event source mapping settings")
c.ok(len(readme) >= 8, f"README table read ({len(readme)} rows)")

for path in (CFN_TEMPLATE, SAM_TEMPLATE):
    tpl = load_template(path)
    esm = tpl["Resources"]["EventSourceMapping"]["Properties"]
    params = tpl["Parameters"]
    who = path.name

    def value(v):
        """The template's value as the README writes it."""
        if isinstance(v, list):
            return ", ".join(f"`{x}`" for x in v)
        if isinstance(v, bool):
            return f"`{str(v).lower()}`"
        if isinstance(v, dict) and "Ref" in v:
            p = params[v["Ref"]]
            return f"{p['MinValue']} to {p['MaxValue']}"
        return f"`{v}`"

    for key in ("FunctionResponseTypes", "MaximumRetryAttempts", "MaximumRecordAgeInSeconds",
                "BisectBatchOnFunctionError", "ParallelizationFactor", "StartingPosition"):
        c.eq(readme.get(key), value(esm.get(key)), f"{who}: README {key}")
    c.eq(readme.get("FilterCriteria"), describe_filter(esm["FilterCriteria"]["Filters"]), f"{who}: README filter")
    dest = esm["DestinationConfig"]["OnFailure"]["Destination"]
    c.ok(readme.get("DestinationConfig.OnFailure") == "an SQS queue" and "Fn::GetAtt" in dest
         and tpl["Resources"][dest["Fn::GetAtt"][0]]["Type"] == "AWS::SQS::Queue", f"{who}: on-failure SQS queue")
    # The stream is the table's, made elsewhere: the parameter asks for the
    # view type the README requires.
    view = readme.get("StreamViewType", "").strip("`")
    c.ok(view and view in params["TableStreamArn"]["Description"], f"{who}: TableStreamArn asks for {view}")

    # docs/delivery-guarantees.md: each row admits the template's value.
    for key, text in guarantees.items():
        if key == "StreamViewType":
            c.eq(text.strip("`"), view, f"{who}: delivery-guarantees {key}")
            continue
        v = esm.get(key)
        if isinstance(v, dict):  # a parameter: its range
            p = params[v["Ref"]]
            m = re.fullmatch(r"(\d+)[–-](\d+)", text)
            c.ok(bool(m) and (int(m.group(1)), int(m.group(2))) == (p["MinValue"], p["MaxValue"]),
                 f"{who}: delivery-guarantees {key} {text!r} is the parameter's range")
        else:
            want = json.dumps(v) if not isinstance(v, list) else v[0]
            c.ok(want in text, f"{who}: delivery-guarantees {key} {text!r} admits {want}")
    c.ok(set(guarantees) - {"StreamViewType"} <= set(esm), f"{who}: every delivery-guarantees setting is set")
c.finish()
