#!/usr/bin/env python3
"""Check the local main job's output (tests/local/check.sh) by counts.

Reads the lines demo.py prints: the client line, the poll line, today's usage
table, the read-side commands' output and the summary line, and fails (exit 1,
with the reason) unless
  * the client made acquires, and poll read stream records in batches and exited 0;
  * every (entity, resource) in today's table has an hourly and a daily item;
  * backfill wrote the monthly items, one or more per settled month;
  * `usage average` answered every resource of its entity, and when the three
    months are settled, from 3 monthly items each;
  * reconcile found 0 drifting items and no hourly counter above its buckets' consumption;
  * every window's totals equal what the client consumed (demo.py compares them);
  * every expired audit row is in an archive object.
"""

import re
import sys


def main(path: str) -> int:
    text = open(path, encoding="utf-8").read()
    problems = []
    client = re.search(r"zae-limiter client: (\d+) acquires, (\d+) granted", text)
    poll = re.search(r"exit code (\d+) in [\d.]+ s: (\d+) stream records in (\d+) batches", text)
    summary = re.search(r"^summary: (.*)$", text, re.M)
    if not (client and poll and summary):
        print("check_demo: the demo's output lacks its client, poll or summary line", file=sys.stderr)
        return 1
    s = dict(kv.split("=", 1) for kv in summary.group(1).split())
    granted = int(client.group(2))
    code, records, batches = (int(g) for g in poll.groups())
    if granted == 0:
        problems.append("the client made no granted acquire")
    if code != 0 or records == 0 or batches == 0:
        problems.append(f"poll: exit code {code}, {records} records, {batches} batches")
    if s.get("totals") != "equal":
        problems.append("snapshot totals differ from what the client consumed")
    if int(s["audit_rows_expired"]) == 0 or s["archived_events"] != s["audit_rows_expired"]:
        problems.append(f"{s['audit_rows_expired']} audit rows expired, {s['archived_events']} archived")
    # backfill: "backfill monthly: N/N items: W written, ..."
    backfill = re.search(r"^backfill monthly: (\d+)/(\d+) items: (\d+) written", text, re.M)
    settled, monthly = int(s["settled_months"]), int(s["monthly"])
    if not backfill:
        problems.append("no backfill line")
    elif int(backfill.group(3)) != monthly or monthly < settled:
        problems.append(f"backfill wrote {backfill.group(3)} items; {monthly} monthly items for {settled} settled months")
    # usage average rows: namespace entity resource window complete items ...
    average = re.findall(r"^\S+\s+user-0\s+(\S+)\s+(monthly|daily|hourly)\s+(true|false)\s+(\d+)\s", text, re.M)
    if not average:
        problems.append("usage average printed no row")
    for resource, window, complete, items in average:
        if settled == 3 and (window, complete, items) != ("monthly", "true", "3"):
            problems.append(f"usage average {resource}: {window}, complete {complete}, {items} items (want monthly, true, 3)")
    drift = re.search(r"^checked (\d+) periods, (\d+) drifting", text, re.M)
    if not drift or int(drift.group(1)) == 0 or int(drift.group(2)) != 0:
        problems.append(f"reconcile: {drift.group(0) if drift else 'no summary line'}")
    bound = re.search(r"^checked (\d+) hourly counters against their buckets' consumption, (\d+) above it", text, re.M)
    if not bound or int(bound.group(1)) == 0 or int(bound.group(2)) != 0:
        problems.append(f"reconcile: {bound.group(0) if bound else 'no consumption line'}")
    # Today's usage table rows: namespace entity resource window window_start events counters
    windows: dict = {}
    for m in re.finditer(r"^\S+\s+(user-\d+)\s+(\S+)\s+(hourly|daily|monthly)\s+\S+Z\s+\d+\s+\S+=", text, re.M):
        windows.setdefault((m.group(1), m.group(2)), set()).add(m.group(3))
    if not windows:
        problems.append("no usage snapshot rows")
    for pair, got in sorted(windows.items()):
        if not {"hourly", "daily"} <= got:
            problems.append(f"{pair}: windows {sorted(got)}")
    if int(s["snapshots"]) < 2 * len(windows):
        problems.append(f"{s['snapshots']} snapshot items for {len(windows)} (entity, resource) pairs")
    for p in problems:
        print(f"check_demo: {p}", file=sys.stderr)
    if not problems:
        print(
            f"check_demo: ok: {granted} acquires, {records} records in {batches} batches, "
            f"{s['snapshots']} snapshot items ({monthly} monthly, backfilled) for {len(windows)} pairs today, "
            f"{len(average)} resources averaged, {drift.group(1)} periods reconciled, "
            f"{bound.group(1)} hourly counters within their buckets' consumption, "
            f"{s['archived_events']} audit events archived"
        )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
