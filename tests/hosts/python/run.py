#!/usr/bin/env python3
"""Python host of the zae-planner component (`zae:aggregator@0.7.0`, world
`aggregator`, interfaces `planner` and `reader`): runs every conformance vector through the
component with wasmtime-py's component-model API and checks the answer twice
against the vector's plan.json, byte for byte:

1. rendered by this host's own canonical JSON renderer
   (tests/conformance/README.md), an independent second implementation;
2. passed back into the component's `render-plan` / `render-error`, which
   proves the host's lift and lower of every type is lossless.

A vector passes only when both renderings equal plan.json.

Reader vectors (tests/conformance/reader/, counted as `reader/<name>`) call the
`reader` interface and pass when the component's `render-*` of the answer this
host lifted equals answer.json (no second renderer here).

    tests/hosts/python/.venv/bin/python tests/hosts/python/run.py \\
        [--component PATH] [--vectors DIR] [--repeat N] [--timed NAME] [--timings]

Prints one line per failing vector, then one summary line
`python: P passed, F failed; ...` on stdout. Exits 0 when every vector
matches, 1 on any mismatch, 2 when the host could not run at all.

Capabilities: the component imports wasi:cli, wasi:io and
wasi:random/insecure-seed (Rust's std links them; the planner uses none).
`WasiConfig()` grants nothing: no environment, arguments, preopened
directories or network, and stdin/stdout are empty/discarded. Guest stderr
(written only by a panic) goes to a temporary file that is quoted when a call
traps.
"""

import argparse
import base64
import json
import re
import statistics
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

from wasmtime import Engine, Store, WasiConfig
from wasmtime.component import Component, Linker, Record, Variant

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]

# ---------------------------------------------------------------------------
# Canonical JSON (tests/conformance/README.md, "Canonical JSON")
# ---------------------------------------------------------------------------

_SHORT = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}
_ESCAPED = re.compile('["\\\\\x00-\x1f]')


def s(text: str) -> str:
    """A JSON string: `"`, `\\` and U+0000..U+001F escaped, everything else raw."""
    return '"' + _ESCAPED.sub(lambda m: _SHORT.get(m.group()) or f"\\u{ord(m.group()):04x}", text) + '"'


def u32(n: int) -> str:
    if not isinstance(n, int) or not 0 <= n <= 0xFFFFFFFF:
        raise ValueError(f"not a u32: {n!r}")
    return str(n)


def opt_s(text) -> str:
    return "null" if text is None else s(text)


def attrs(items) -> str:
    """`{name:VALUE,...}` with each attribute's DynamoDB JSON spliced verbatim."""
    return "{" + ",".join(s(a.name) + ":" + a.value for a in items) + "}"


def names(items) -> str:
    return "{" + ",".join(s(n.placeholder) + ":" + s(n.name) for n in items) + "}"


def field(rec, name):
    """A record field by its WIT (kebab-case) name."""
    return getattr(rec, name)


def transact_item(t: Variant, images=()) -> str:
    """A transaction action: `put`, `update` or `condition-check`."""
    v = t.payload
    if t.tag == "put":
        return operation(Variant("put-item", v), "put", images)
    if t.tag == "update":
        return operation(Variant("update-item", v), "update")
    if t.tag == "condition-check":
        return (f'{{"type":"condition-check","table_name":{s(field(v, "table-name"))},"key":{attrs(v.key)},'
                f'"condition_expression":{s(field(v, "condition-expression"))},'
                f'"names":{names(v.names)},"values":{attrs(v.values)}}}')
    raise ValueError(f"unknown transaction action {t.tag}")


def put_attributes(v, images) -> list:
    """The attributes a put-item writes: its `item`, or with a `base`, that image of the plan with
    `item` put over it (an attribute the image names keeps its place, the others follow)."""
    if v.base is None:
        return v.item
    base = images[v.base] if v.base < len(images) else []
    over = {a.name: a for a in v.item}
    named = {a.name for a in base}
    return [over.get(a.name, a) for a in base] + [a for a in v.item if a.name not in named]


def operation(op: Variant, type_name: str | None = None, images=()) -> str:
    v = op.payload
    kind = type_name or op.tag
    if op.tag == "transact-write-items":
        return f'{{"type":"transact-write-items","items":[{",".join(transact_item(t, images) for t in v)}]}}'
    if op.tag == "update-item":
        return (f'{{"type":"{kind}","table_name":{s(field(v, "table-name"))},"key":{attrs(v.key)},'
                f'"update_expression":{s(field(v, "update-expression"))},'
                f'"condition_expression":{opt_s(field(v, "condition-expression"))},'
                f'"names":{names(v.names)},"values":{attrs(v.values)}}}')
    if op.tag == "put-item":
        return (f'{{"type":"{kind}","table_name":{s(field(v, "table-name"))},"item":{attrs(put_attributes(v, images))},'
                f'"condition_expression":{opt_s(field(v, "condition-expression"))},'
                f'"names":{names(v.names)},"values":{attrs(v.values)}}}')
    if op.tag == "put-object":
        body = base64.b64encode(v.body).decode("ascii")  # standard alphabet, `=` padding
        return (f'{{"type":"put-object","bucket":{s(v.bucket)},"key":{s(v.key)},'
                f'"content_type":{s(field(v, "content-type"))},'
                f'"content_encoding":{s(field(v, "content-encoding"))},"body_base64":"{body}"}}')
    raise ValueError(f"unknown operation {op.tag}")


def write(w, images=()) -> str:
    return (f'{{"id":{u32(w.id)},"purpose":"{w.purpose}","failure_policy":"{field(w, "failure-policy")}",'
            f'"on_condition_failure":"{field(w, "on-condition-failure")}","target":{s(w.target)},'
            f'"records":[{",".join(u32(i) for i in w.records)}],"operation":{operation(w.operation, None, images)},'
            f'"on_applied":{logs(field(w, "on-applied"))},"on_failed":{logs(field(w, "on-failed"))}}}')


def outcome(o) -> str:
    st = o.status  # record-status: Variant("used") or Variant("skipped"/"invalid", reason)
    reason = "null" if st.tag == "used" else s(st.payload)
    return (f'{{"index":{u32(o.index)},"sequence_number":{opt_s(field(o, "sequence-number"))},'
            f'"status":"{st.tag}","reason":{reason}}}')


def log(entry) -> str:
    fields = ",".join(s(f.name) + ":" + f.value for f in entry.fields)
    return f'{{"level":"{entry.level.upper()}","message":{s(entry.message)},"fields":{{{fields}}}}}'


def logs(entries) -> str:
    """`[L,...]`: a plan's logs, or a write's `on-applied` / `on-failed` entries."""
    return "[" + ",".join(map(log, entries)) + "]"


# WIT field order of `counters`.
COUNTERS = ["records", "bucket-records", "audit-records", "skipped", "invalid", "deltas", "window-time-from-rf",
            "reserved-limit-deltas", "snapshot-writes", "refill-writes", "shard-bump-writes",
            "shard-propagate-writes", "archive-objects", "archived-events"]


def read(r) -> str:
    return (f'{{"id":{u32(r.id)},"table_name":{s(field(r, "table-name"))},"key":{attrs(r.key)},'
            f'"records":[{",".join(u32(i) for i in r.records)}],"target":{s(r.target)}}}')


def render_plan(p) -> str:
    """The canonical JSON of a `batch-plan` (`reads` only when there are some, so plans of contract 0.2.0
    render unchanged)."""
    counters = ",".join(f'"{c.replace("-", "_")}":{u32(field(p.counters, c))}' for c in COUNTERS)
    reads = f',"reads":[{",".join(map(read, p.reads))}]' if p.reads else ""
    return (f'{{"writes":[{",".join(write(w, p.images) for w in p.writes)}]{reads},'
            f'"outcomes":[{",".join(map(outcome, p.outcomes))}],'
            f'"logs":{logs(p.logs)},"counters":{{{counters}}}}}')


def error_message(e: Variant) -> str:
    """A `plan-error` in words: the `message` of its canonical JSON."""
    if e.tag == "event-not-json":
        return f"event is not valid JSON: {e.payload.message}"
    if e.tag == "event-not-object":
        return "event is not a JSON object"
    if e.tag == "records-not-list":
        return "Records is not a list"
    if e.tag == "bad-config":
        return f"bad config: {e.payload.message}"
    if e.tag == "unknown-write-id":
        return f"write {u32(e.payload)} is not a write of this batch's plan"
    if e.tag == "unknown-record-index":
        return f"record {u32(e.payload)} is not a record of this batch"
    if e.tag == "unknown-read-id":
        return f"read {u32(e.payload)} is not a read of this batch's plan"
    raise ValueError(f"unknown plan-error {e.tag}")


def render_error(e: Variant) -> str:
    """The canonical JSON of a `plan-error`: `kind`, the variant's payload fields, `message`."""
    payload = ""
    if e.tag == "event-not-json":
        payload = f',"line":{u32(e.payload.line)},"column":{u32(e.payload.column)}'
    elif e.tag == "bad-config":
        payload = f',"setting":{s(e.payload.setting)},"problem":"{e.payload.problem}"'
    elif e.tag == "unknown-write-id":
        payload = f',"write_id":{u32(e.payload)}'
    elif e.tag == "unknown-record-index":
        payload = f',"record_index":{u32(e.payload)}'
    elif e.tag == "unknown-read-id":
        payload = f',"read_id":{u32(e.payload)}'
    return f'{{"error":{{"kind":"{e.tag}"{payload},"message":{s(error_message(e))}}}}}'


# ---------------------------------------------------------------------------
# input.json
# ---------------------------------------------------------------------------
# `observed` values reach the component as compact JSON with the keys in the
# order given. Objects are read as lists of (key, value) pairs and numbers as
# their source text, so nothing is reordered, merged or re-formatted.


class Num(str):
    """A JSON number, kept as written."""


class Obj(list):
    """A JSON object: its (key, value) pairs in the order given."""


def _no_constant(name: str):
    raise ValueError(f"input.json: {name} is not JSON")


def load_json(text: str):
    return json.loads(text, object_pairs_hook=Obj, parse_int=Num, parse_float=Num, parse_constant=_no_constant)


def compact(v) -> str:
    """Compact JSON: no whitespace, keys in the order given, canonical strings, numbers as written."""
    if v is None:
        return "null"
    if v is True or v is False:
        return "true" if v else "false"
    if isinstance(v, Num):
        return str(v)
    if isinstance(v, str):
        return s(v)
    if isinstance(v, Obj):
        return "{" + ",".join(s(k) + ":" + compact(x) for k, x in v) + "}"
    if isinstance(v, list):
        return "[" + ",".join(compact(x) for x in v) + "]"
    raise TypeError(f"unexpected JSON value {v!r}")


def get(pairs, key):
    for k, v in pairs:
        if k == key:
            return v
    raise KeyError(f'input.json: missing "{key}"')


def as_str(v, what: str) -> str:
    if not isinstance(v, str) or isinstance(v, Num):
        raise TypeError(f"input.json: {what} is not a string")
    return v


def as_u32(v, what: str) -> int:
    if not isinstance(v, Num) or not re.fullmatch(r"0|[1-9][0-9]*", v) or int(v) > 0xFFFFFFFF:
        raise TypeError(f"input.json: {what} is not a u32")
    return int(v)


def as_s64(v) -> int:
    """`now_ms` is a decimal string holding an `s64`."""
    text = as_str(v, "now_ms")
    if not re.fullmatch(r"-?(0|[1-9][0-9]*)", text) or not -(2**63) <= int(text) < 2**63:
        raise ValueError("input.json: now_ms is not a decimal s64")
    return int(text)


def record(**fields) -> Record:
    """A WIT record value: Python keyword names become kebab-case field names."""
    r = Record()
    for name, value in fields.items():
        setattr(r, name.replace("_", "-"), value)
    return r


def read_text(path: Path) -> str:
    """The file's exact text: strict UTF-8, a byte-order mark kept."""
    return path.read_bytes().decode("utf-8")


def limiter(value) -> str:
    """The `limiter-semantics` of a vector's config; vectors older than contract 0.3.0 have none: 0.13."""
    if value is None or as_str(value, "limiter") == "0.13":
        return "v013"
    if value == "0.17":
        return "v017"
    raise ValueError(f"input.json: limiter {value!r} is not \"0.13\" or \"0.17\"")


def load_vector(d: Path):
    inp = load_json(read_text(d / "input.json"))
    cfg = get(inp, "config")
    bucket = get(cfg, "archive_bucket")
    config = record(
        table_name=as_str(get(cfg, "table_name"), "table_name"),
        windows=[as_str(w, "window") for w in get(cfg, "windows")],
        snapshot_ttl_days=as_u32(get(cfg, "snapshot_ttl_days"), "snapshot_ttl_days"),
        archive_bucket=None if bucket is None else as_str(bucket, "archive_bucket"),
        max_shard_count=as_u32(get(cfg, "max_shard_count"), "max_shard_count"),
        dead_letter_bucket=None if dict(cfg).get("dead_letter_bucket") is None
        else as_str(dict(cfg)["dead_letter_bucket"], "dead_letter_bucket"),
        limiter=limiter(dict(cfg).get("limiter")),
    )
    batch = record(event_json=read_text(d / "event.json"), config=config, now_ms=as_s64(get(inp, "now_ms")),
                   invocation_id=as_str(get(inp, "invocation_id"), "invocation_id"))
    observed = dict(inp).get("observed")
    if observed is not None:
        observed = [
            record(write_id=as_u32(get(o, "write_id"), "write_id"),
                   item=None if get(o, "item") is None else compact(get(o, "item")))
            for o in observed
        ]
    reads = dict(inp).get("read_results")
    if reads is not None:
        observed = ("reads", [record(read_id=as_u32(get(r, "read_id"), "read_id"), outcome=read_outcome(r))
                              for r in reads])
    elif observed is not None:
        observed = ("replan", observed)
    expected = None
    if (d / "plan.json").is_file():
        expected = (d / "plan.json").read_bytes()
        if expected.endswith(b"\n"):  # the answer, without plan.json's final newline
            expected = expected[:-1]
    return batch, observed, expected


def read_outcome(r) -> Variant:
    """A `read-outcome` of a vector's `read_results` entry: found (the item as compact JSON), missing, failed."""
    kind = as_str(get(r, "outcome"), "outcome")
    if kind == "found":
        return Variant("found", compact(get(r, "item")))
    if kind == "missing":
        return Variant("missing")
    if kind == "failed":
        return Variant("failed", as_str(get(r, "error"), "error"))
    raise ValueError(f"input.json: read outcome {kind!r}")


# ---------------------------------------------------------------------------
# The component
# ---------------------------------------------------------------------------


PLANNER = "zae:aggregator/planner@0.7.0"
READER = "zae:aggregator/reader@0.7.0"


class Planner:
    """One instance of the component in its own store, with nothing granted; its functions are those of the
    exported interface `zae:aggregator/planner@0.7.0`; `reader_func` gives those of `zae:aggregator/reader@0.7.0`."""

    def __init__(self, engine: Engine, component: Component, linker: Linker):
        self.stderr = tempfile.NamedTemporaryFile(prefix="zae-planner-stderr-")
        wasi = WasiConfig()
        wasi.stderr_file = self.stderr.name
        self.store = Store(engine)
        self.store.set_wasi(wasi)
        instance = linker.instantiate(self.store, component)
        interface = instance.get_export_index(self.store, PLANNER)
        if interface is None:
            raise LookupError(f"the component exports no {PLANNER}")

        def func(name: str):
            index = instance.get_export_index(self.store, name, interface)
            f = None if index is None else instance.get_func(self.store, index)
            if f is None:
                raise LookupError(f"{PLANNER} exports no function {name}")
            return f

        reader = instance.get_export_index(self.store, READER)
        if reader is None:
            raise LookupError(f"the component exports no {READER}")

        def reader_func(name: str):
            index = instance.get_export_index(self.store, name, reader)
            f = None if index is None else instance.get_func(self.store, index)
            if f is None:
                raise LookupError(f"{READER} exports no function {name}")
            return f

        self.reader_func = reader_func
        self.plan = func("plan")
        self.replan = func("replan-snapshots")
        self.after_reads = func("plan-after-reads")
        self.render_plan_func = func("render-plan")
        self.render_error_func = func("render-error")

    def call(self, batch, observed):
        """`observed`: None (`plan`), ("replan", observed items) or ("reads", read results)."""
        """One call: the `plan` Record or the `plan-error` Variant (a `result` comes back untagged), the call's
        wall time in ms (lowering, running, lifting) and the process CPU time it used (less sensitive to a busy
        machine)."""
        cpu, start = time.process_time(), time.perf_counter()
        if observed is None:
            result = self.plan(self.store, batch)
            self.plan.post_return(self.store)
        elif observed[0] == "reads":
            result = self.after_reads(self.store, batch, observed[1])
            self.after_reads.post_return(self.store)
        else:
            result = self.replan(self.store, batch, observed[1])
            self.replan.post_return(self.store)
        return result, (time.perf_counter() - start) * 1000, (time.process_time() - cpu) * 1000

    def render(self, result) -> str:
        """The component's own canonical JSON of an answer this host lifted (`render-plan` of the `batch-plan`
        Record, `render-error` of the `plan-error` Variant), lowered back in unchanged."""
        f = self.render_error_func if isinstance(result, Variant) else self.render_plan_func
        text = f(self.store, result)
        f.post_return(self.store)
        return text

    def reader_call(self, name: str, *args):
        """One `reader` function call; its answer, lifted (a `result` comes back untagged)."""
        f = self.reader_func(name)
        result = f(self.store, *args)
        f.post_return(self.store)
        return result

    def guest_stderr(self) -> str:
        return Path(self.stderr.name).read_text(errors="replace").strip()


def reader_query(q) -> Record:
    q = q or {}
    return record(namespace=q.get("namespace"), entity=q.get("entity"), resource=q.get("resource"),
                  window=q.get("window"), **{"from": q.get("from")}, to=q.get("to"))


RENDERERS = {"rows": "render-rows", "summaries": "render-summaries", "average-period": "render-period",
             "monthly-average": "render-average", "reconcile": "render-reconciliation",
             "backfill": "render-backfill"}


def check_reader_vector(planner: "Planner", d: Path):
    """None when the component's rendering of this host's lifted answer equals answer.json, else why."""
    inp = json.loads(read_text(d / "input.json"))
    expected = read_text(d / "answer.json").removesuffix("\n")
    items = [i if isinstance(i, str) else json.dumps(i, separators=(",", ":"), ensure_ascii=False)
             for i in inp.get("items", [])]
    fn = inp["function"]
    if fn in ("rows", "summaries", "reconcile"):
        args = (items, reader_query(inp.get("query")))
    elif fn == "average-period":
        args = (inp["months"], int(inp["now_ms"]))
    elif fn == "monthly-average":
        args = (items, reader_query(inp.get("query")), inp["months"], int(inp["now_ms"]), inp["whole_period"])
    elif fn == "backfill":
        args = (items, inp["window"], reader_query(inp.get("query")), int(inp["now_ms"]), inp["ttl_days"])
    else:
        return f"unknown function {fn}"
    result = planner.reader_call(fn, *args)
    renderer = "render-reader-error" if isinstance(result, Variant) else RENDERERS[fn]
    got = planner.reader_call(renderer, result)
    return None if got == expected else f"got {got}\n    want {expected}"


def first_difference(a: bytes, b: bytes) -> int:
    """Byte offset of the first difference of two unequal byte strings."""
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))


def context(b: bytes, at: int) -> str:
    return json.dumps(b[max(0, at - 40):at + 40].decode("utf-8", errors="replace"), ensure_ascii=False)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--component", type=Path, help="the planner component (default: the one run-all.sh and "
                    "host/build.rs build)",
                    default=ROOT / "target" / "component" / "wasm32-wasip2" / "component" / "zae_planner.wasm")
    ap.add_argument("--vectors", type=Path, default=ROOT / "tests" / "conformance")
    ap.add_argument("--repeat", type=int, default=5, help="timed calls of --timed after the checked one")
    ap.add_argument("--timed", default="real-batch-1000", help="vector whose plan call is timed --repeat times")
    ap.add_argument("--timings", action="store_true", help="print every vector's call time (stderr)")
    args = ap.parse_args()

    engine = Engine()
    component = Component.from_file(engine, str(args.component))
    linker = Linker(engine)
    linker.add_wasip2()
    planner = Planner(engine, component, linker)

    dirs = sorted(d for d in args.vectors.iterdir() if (d / "input.json").is_file())
    passed = failed = 0
    timed_note = f"{args.timed}: not run"
    for d in dirs:
        def fail(msg: str) -> None:
            nonlocal failed
            failed += 1
            print(f"FAIL {d.name}: {msg}", flush=True)

        try:
            batch, observed, expected = load_vector(d)
        except (OSError, ValueError, TypeError, KeyError) as e:
            fail(f"cannot load the vector: {e}")
            continue
        try:
            result, ms, _ = planner.call(batch, observed)
        except Exception as e:  # a trap: report it and continue with a fresh instance
            detail = planner.guest_stderr()
            fail(f"the call trapped: {e}" + (f"\n    guest stderr: {detail}" if detail else ""))
            planner = Planner(engine, component, linker)
            continue
        if args.timings:
            print(f"python {d.name}: {ms:.3f} ms", file=sys.stderr)
        if expected is None:
            fail("no plan.json")
            continue
        # The host's own rendering, then the component's rendering of the answer as this host lifted it and
        # lowers it back.
        try:
            own = (render_error(result) if isinstance(result, Variant) else render_plan(result)).encode("utf-8")
        except Exception as e:
            fail(f"cannot render the answer: {type(e).__name__}: {e}")
            continue
        theirs_name = "component render-error" if isinstance(result, Variant) else "component render-plan"
        try:
            theirs = planner.render(result).encode("utf-8")
        except Exception as e:  # a lowering error or a trap: continue with a fresh instance
            detail = planner.guest_stderr()
            fail(f"{theirs_name} failed: {type(e).__name__}: {e}" + (f"\n    guest stderr: {detail}" if detail else ""))
            planner = Planner(engine, component, linker)
            continue
        mismatches = []
        for what, got in (("host rendering", own), (theirs_name, theirs)):
            if got != expected:
                at = first_difference(expected, got)
                mismatches.append(f"{what} differs at byte {at} (expected {len(expected)} bytes, got {len(got)})\n"
                                  f"    want …{context(expected, at)}\n    got  …{context(got, at)}")
        if mismatches:
            fail("\n    ".join(mismatches))
            continue
        passed += 1
        if d.name == args.timed:
            # The checked call above was the first one; time `repeat` more.
            calls = [planner.call(batch, observed)[1:] for _ in range(max(1, args.repeat))]
            times = [wall for wall, _ in calls]
            timed_note = (f"{d.name}: plan call median {statistics.median_low(times):.2f} ms "
                          f"(min {min(times):.2f}, first {ms:.2f}, {len(times)} calls; "
                          f"process CPU median {statistics.median_low(cpu for _, cpu in calls):.2f} ms)")
    reader_dir = args.vectors / "reader"
    reader_dirs = sorted(d for d in reader_dir.iterdir() if (d / "input.json").is_file()) if reader_dir.is_dir() else []
    for d in reader_dirs:
        try:
            why = check_reader_vector(planner, d)
        except Exception as e:  # a load error, a lowering error or a trap
            why = f"{type(e).__name__}: {e}"
            planner = Planner(engine, component, linker)
        if why is None:
            passed += 1
        else:
            failed += 1
            print(f"FAIL reader/{d.name}: {why}", flush=True)
    print(f"python: {passed} passed, {failed} failed; {timed_note} "
          f"[python {sys.version.split()[0]}, wasmtime {version('wasmtime')}]", flush=True)
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as e:  # the host could not run at all
        print(f"python host: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(2)
