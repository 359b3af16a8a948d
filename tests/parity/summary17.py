#!/usr/bin/env python3
"""Print the summary of a check17.py log (../shared/oracle17): unexplained differences by family,
and every tolerated (documented) difference kind with its count.

    python3 tests/parity/summary17.py target/parity17/check17.log
"""

import json
import sys


def main() -> int:
    text = open(sys.argv[1], encoding="utf-8").read()
    start = text.rfind('{\n "summary"')
    if start < 0:
        print("no summary in the check17 log: it did not finish", file=sys.stderr)
        return 1
    summary = json.loads(text[start:])["summary"]
    print(f"files {summary['files']}, unexplained {summary['unexplained']} "
          f"(in {summary['files_with_unexplained']} files) {summary['unexplained_by_family']}")
    for kind, n in sorted(summary["explained"].items()):
        print(f"  explained: {kind}: {n}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
