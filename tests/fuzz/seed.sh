#!/usr/bin/env bash
# Seed the cargo-fuzz corpora from the conformance vectors
# (docs/testing.md#fuzzing): every `event.json` and `input.json` into
# component/fuzz/corpus/<target>/, named by content hash. Idempotent.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
corpus="$root/component/fuzz/corpus"
for target in event_text structured_event replan config dynamo_json; do
  mkdir -p "$corpus/$target"
done
for f in "$root"/tests/conformance/*/event.json "$root"/tests/conformance/*/input.json; do
  [ -f "$f" ] || continue
  sum="$(sha1sum "$f" | cut -c1-16)"
  # Event text as is; the structured targets read any bytes, so the same
  # files give them varied starting points.
  for target in event_text structured_event replan config; do
    cp "$f" "$corpus/$target/seed-$sum"
  done
done
# dynamo_json: each attribute value and observed item of the vectors, one per file.
python3 - "$root" "$corpus/dynamo_json" <<'PY'
import glob, hashlib, json, os, sys
root, out = sys.argv[1], sys.argv[2]
def values(v):
    if isinstance(v, dict):
        if len(v) == 1 and next(iter(v)) in ("S", "N", "B", "BOOL", "NULL", "M", "L", "SS", "NS", "BS"):
            yield v
        for x in v.values():
            yield from values(x)
    elif isinstance(v, list):
        for x in v:
            yield from values(x)
n = 0
for f in sorted(glob.glob(os.path.join(root, "tests/conformance/*/*.json"))):
    try:
        doc = json.load(open(f, encoding="utf-8"))
    except ValueError:
        continue
    for v in values(doc):
        text = json.dumps(v, separators=(",", ":"), ensure_ascii=False)
        if len(text) > 4096:
            continue
        name = hashlib.sha1(text.encode()).hexdigest()[:16]
        open(os.path.join(out, "seed-" + name), "w", encoding="utf-8").write(text)
        n += 1
        if n >= 2000:
            break
PY
for target in event_text structured_event replan config dynamo_json; do
  echo "$target: $(ls "$corpus/$target" | wc -l) inputs"
done
