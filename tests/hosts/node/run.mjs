#!/usr/bin/env node
// Node.js host of the zae-planner component (`zae:aggregator@0.7.0`, world
// `aggregator`, interfaces `planner` and `reader`): runs every conformance vector through
// the component transpiled with jco and checks the answer twice against the
// vector's plan.json, byte for byte:
//
// 1. rendered by this host's own canonical JSON renderer
//    (tests/conformance/README.md), an independent second implementation;
// 2. passed back into the component's `render-plan` / `render-error`, which
//    proves the host's lift and lower of every type is lossless.
//
// A vector passes only when both renderings equal plan.json.
//
// Reader vectors (tests/conformance/reader/, counted as `reader/<name>`) call
// the `reader` interface and pass when the component's `render-*` of the
// answer this host lifted equals answer.json (no second renderer here).
//
//   node tests/hosts/node/run.mjs [--component PATH] [--vectors DIR]
//                                 [--repeat N] [--timed NAME] [--timings]
//
// * --component  the planner component (default: the one run-all.sh and
//                host/build.rs build, target/component/wasm32-wasip2/component/zae_planner.wasm)
// * --vectors    the vector directory (default: tests/conformance)
// * --repeat     timed calls of the --timed vector after the checked one (default 5)
// * --timed      the vector timed --repeat times (default real-batch-1000)
// * --timings    also print the time of every vector's call (to stderr)
//
// Prints one line per failing vector, then one summary line
// `node: P passed, F failed; ...` on stdout. Exits 0 when every vector
// matches, 1 on any mismatch, 2 when the host could not run at all.
//
// Capabilities: the component imports wasi:cli, wasi:io and
// wasi:random/insecure-seed (Rust's std links them; the planner uses none).
// This host grants nothing: an empty environment, no arguments, no cwd,
// stdin and exit trap, no terminals; guest stdout and stderr (written only by
// a panic) both go to the host's stderr. Only the insecure hash seed comes
// from preview2-shim. preview2-shim's default `cli` would pass all of
// process.env to the guest; the component is therefore transpiled in
// instantiation mode and given this import object instead. The jco glue is
// patched to keep a leading U+FEFF in strings (see patchGlue).

import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, readdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { performance } from "node:perf_hooks";
import { fileURLToPath, pathToFileURL } from "node:url";
import { parseArgs } from "node:util";

import { transpile } from "@bytecodealliance/jco";
import { stderr as shimStderr } from "@bytecodealliance/preview2-shim/cli";
import { error as ioError, poll as ioPoll, streams as ioStreams } from "@bytecodealliance/preview2-shim/io";
import { insecureSeed } from "@bytecodealliance/preview2-shim/random";

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(HERE, "..", "..", "..");

// ---------------------------------------------------------------------------
// Canonical JSON (tests/conformance/README.md, "Canonical JSON")
// ---------------------------------------------------------------------------

const SHORT_ESCAPES = { '"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r" };

/** A JSON string: `"`, `\` and U+0000..U+001F escaped, everything else raw. */
function str(s) {
  const escape = (c) => SHORT_ESCAPES[c] ?? `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`;
  return `"${s.replace(/["\\\u0000-\u001f]/g, escape)}"`;
}

/** A `u32` as plain decimal digits (never an exponent: u32 < 2^53). */
function u32(n) {
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) throw new Error(`not a u32: ${n}`);
  return String(n);
}

const optStr = (s) => (s === undefined ? "null" : str(s));

/** `{"k":v,...}` from [key, rendered value] pairs; the keys are the README's fixed ASCII names. */
const obj = (pairs) => `{${pairs.map(([k, v]) => `"${k}":${v}`).join(",")}}`;

/** `[x,...]` of the rendered elements. */
const list = (xs, render) => `[${Array.from(xs, render).join(",")}]`;

/** `{name:VALUE,...}`: each value (DynamoDB JSON, or a log field's JSON) spliced verbatim. */
const spliced = (items) => `{${items.map((a) => `${str(a.name)}:${a.value}`).join(",")}}`;

const names = (items) => `{${items.map((n) => `${str(n.placeholder)}:${str(n.name)}`).join(",")}}`;

/** Standard base64 (RFC 4648, `+/`, `=` padding) of a `list<u8>`. */
const base64 = (bytes) => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("base64");

/**
 * The attributes a put-item writes: its `item`, or with a `base`, that image of the plan with
 * `item` put over it (an attribute the image names keeps its place, the others follow).
 */
function putAttributes(v, images) {
  if (v.base === undefined || v.base === null) return v.item;
  const base = images[v.base] ?? [];
  const over = new Map(v.item.map((a) => [a.name, a]));
  const merged = base.map((a) => over.get(a.name) ?? a);
  const named = new Set(base.map((a) => a.name));
  return merged.concat(v.item.filter((a) => !named.has(a.name)));
}

/** A transaction action: `put`, `update` or `condition-check`. */
function transactItem(t, images) {
  const v = t.val;
  switch (t.tag) {
    case "put":
    case "update":
      return operation({ tag: t.tag === "put" ? "put-item" : "update-item", val: v }, t.tag, images);
    case "condition-check":
      return obj([
        ["type", str(t.tag)],
        ["table_name", str(v.tableName)],
        ["key", spliced(v.key)],
        ["condition_expression", str(v.conditionExpression)],
        ["names", names(v.names)],
        ["values", spliced(v.values)],
      ]);
    default:
      throw new Error(`unknown transaction action ${t.tag}`);
  }
}

function operation(op, typeName = op.tag, images = []) {
  const v = op.val;
  switch (op.tag) {
    case "transact-write-items":
      return obj([
        ["type", str(op.tag)],
        ["items", list(v, (t) => transactItem(t, images))],
      ]);
    case "update-item":
      return obj([
        ["type", str(typeName)],
        ["table_name", str(v.tableName)],
        ["key", spliced(v.key)],
        ["update_expression", str(v.updateExpression)],
        ["condition_expression", optStr(v.conditionExpression)],
        ["names", names(v.names)],
        ["values", spliced(v.values)],
      ]);
    case "put-item":
      return obj([
        ["type", str(typeName)],
        ["table_name", str(v.tableName)],
        ["item", spliced(putAttributes(v, images))],
        ["condition_expression", optStr(v.conditionExpression)],
        ["names", names(v.names)],
        ["values", spliced(v.values)],
      ]);
    case "put-object":
      return obj([
        ["type", str(op.tag)],
        ["bucket", str(v.bucket)],
        ["key", str(v.key)],
        ["content_type", str(v.contentType)],
        ["content_encoding", str(v.contentEncoding)],
        ["body_base64", str(base64(v.body))],
      ]);
    default:
      throw new Error(`unknown operation ${op.tag}`);
  }
}

const write = (w, images) =>
  obj([
    ["id", u32(w.id)],
    ["purpose", str(w.purpose)],
    ["failure_policy", str(w.failurePolicy)],
    ["on_condition_failure", str(w.onConditionFailure)],
    ["target", str(w.target)],
    ["records", list(w.records, u32)],
    ["operation", operation(w.operation, w.operation.tag, images)],
    ["on_applied", list(w.onApplied, log)],
    ["on_failed", list(w.onFailed, log)],
  ]);

const outcome = (o) =>
  obj([
    ["index", u32(o.index)],
    ["sequence_number", optStr(o.sequenceNumber)],
    ["status", str(o.status.tag)],
    ["reason", o.status.tag === "used" ? "null" : str(o.status.val)],
  ]);

const LEVELS = { debug: "DEBUG", info: "INFO", warning: "WARNING", error: "ERROR" };

const log = (l) =>
  obj([
    ["level", str(LEVELS[l.level])],
    ["message", str(l.message)],
    ["fields", spliced(l.fields)],
  ]);

// WIT field order of `counters`, with the canonical (snake_case) names.
const COUNTERS = [
  ["records", "records"],
  ["bucket_records", "bucketRecords"],
  ["audit_records", "auditRecords"],
  ["skipped", "skipped"],
  ["invalid", "invalid"],
  ["deltas", "deltas"],
  ["window_time_from_rf", "windowTimeFromRf"],
  ["reserved_limit_deltas", "reservedLimitDeltas"],
  ["snapshot_writes", "snapshotWrites"],
  ["refill_writes", "refillWrites"],
  ["shard_bump_writes", "shardBumpWrites"],
  ["shard_propagate_writes", "shardPropagateWrites"],
  ["archive_objects", "archiveObjects"],
  ["archived_events", "archivedEvents"],
];

/** The canonical JSON of a `batch-plan`. */
const read = (r) =>
  obj([
    ["id", u32(r.id)],
    ["table_name", str(r.tableName)],
    ["key", spliced(r.key)],
    ["records", list(r.records, u32)],
    ["target", str(r.target)],
  ]);

export function renderPlan(p) {
  // `reads` only when there are some: plans of contract 0.2.0 render unchanged.
  const reads = p.reads.length > 0 ? [["reads", list(p.reads, read)]] : [];
  return obj([
    ["writes", list(p.writes, (w) => write(w, p.images))],
    ...reads,
    ["outcomes", list(p.outcomes, outcome)],
    ["logs", list(p.logs, log)],
    ["counters", obj(COUNTERS.map(([name, key]) => [name, u32(p.counters[key])]))],
  ]);
}

/** `plan-error` in words: the `message` of its canonical JSON. */
function errorMessage(e) {
  switch (e.tag) {
    case "event-not-json":
      return `event is not valid JSON: ${e.val.message}`;
    case "event-not-object":
      return "event is not a JSON object";
    case "records-not-list":
      return "Records is not a list";
    case "bad-config":
      return `bad config: ${e.val.message}`;
    case "unknown-write-id":
      return `write ${u32(e.val)} is not a write of this batch's plan`;
    case "unknown-record-index":
      return `record ${u32(e.val)} is not a record of this batch`;
    case "unknown-read-id":
      return `read ${u32(e.val)} is not a read of this batch's plan`;
    default:
      throw new Error(`unknown plan-error ${e.tag}`);
  }
}

/** The payload fields of a `plan-error` in its canonical JSON, between `kind` and `message`. */
function errorPayload(e) {
  switch (e.tag) {
    case "event-not-json":
      return [
        ["line", u32(e.val.line)],
        ["column", u32(e.val.column)],
      ];
    case "bad-config":
      return [
        ["setting", str(e.val.setting)],
        ["problem", str(e.val.problem)],
      ];
    case "unknown-write-id":
      return [["write_id", u32(e.val)]];
    case "unknown-record-index":
      return [["record_index", u32(e.val)]];
    case "unknown-read-id":
      return [["read_id", u32(e.val)]];
    default:
      return [];
  }
}

/** The canonical JSON of a `plan-error`. */
export const renderError = (e) =>
  obj([["error", obj([["kind", str(e.tag)], ...errorPayload(e), ["message", str(errorMessage(e))]])]]);

// ---------------------------------------------------------------------------
// input.json: an order- and digit-preserving reader
// ---------------------------------------------------------------------------
// JSON.parse would reorder integer-like object keys and round numbers beyond
// 2^53, and `observed` values must reach the component as compact JSON with
// the keys in the order given. This reader keeps objects as [key, value]
// entry lists and numbers as their source text.

class Num {
  constructor(text) {
    this.text = text;
  }
}

const SCALAR = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?|true|false|null/y;
const STRING = /"(?:[^"\\\u0000-\u001f]|\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4}))*"/y;

function parseJson(text) {
  let i = 0;
  const fail = (what) => {
    throw new SyntaxError(`input.json: ${what} at offset ${i}`);
  };
  const match = (re) => {
    re.lastIndex = i;
    const m = re.exec(text);
    if (m) i = re.lastIndex;
    return m;
  };
  const ws = () => {
    while (i < text.length && " \t\n\r".includes(text[i])) i++;
  };
  const value = () => {
    ws();
    const c = text[i];
    if (c === "{") {
      i++;
      const entries = [];
      ws();
      if (text[i] === "}") return i++, { entries };
      for (;;) {
        ws();
        if (text[i] !== '"') fail("expected a key");
        const k = string();
        ws();
        if (text[i++] !== ":") fail("expected ':'");
        entries.push([k, value()]);
        ws();
        const d = text[i++];
        if (d === "}") return { entries };
        if (d !== ",") fail("expected ',' or '}'");
      }
    }
    if (c === "[") {
      i++;
      const items = [];
      ws();
      if (text[i] === "]") return i++, items;
      for (;;) {
        items.push(value());
        ws();
        const d = text[i++];
        if (d === "]") return items;
        if (d !== ",") fail("expected ',' or ']'");
      }
    }
    if (c === '"') return string();
    const m = match(SCALAR);
    if (!m) fail("unexpected character");
    return m[0] === "true" ? true : m[0] === "false" ? false : m[0] === "null" ? null : new Num(m[0]);
  };
  const string = () => {
    const m = match(STRING);
    if (!m) fail("bad string");
    return JSON.parse(m[0]); // decodes the escapes of one string token
  };
  const v = value();
  ws();
  if (i !== text.length) fail("trailing characters");
  return v;
}

/** Compact JSON: no whitespace, keys in the order given, canonical strings, numbers as written. */
function compact(v) {
  if (v === null || v === true || v === false) return String(v);
  if (v instanceof Num) return v.text;
  if (typeof v === "string") return str(v);
  if (Array.isArray(v)) return `[${v.map(compact).join(",")}]`;
  return `{${v.entries.map(([k, x]) => `${str(k)}:${compact(x)}`).join(",")}}`;
}

function get(obj, key) {
  const e = obj?.entries?.find(([k]) => k === key);
  if (!e) throw new Error(`input.json: missing "${key}"`);
  return e[1];
}

/** An optional member: `null` when absent. */
function getOptional(obj, key) {
  const e = obj?.entries?.find(([k]) => k === key);
  return e ? e[1] : null;
}

function asString(v, what) {
  if (typeof v !== "string") throw new Error(`input.json: ${what} is not a string`);
  return v;
}

function asU32(v, what) {
  if (!(v instanceof Num) || !/^(0|[1-9]\d*)$/.test(v.text) || Number(v.text) > 0xffffffff) {
    throw new Error(`input.json: ${what} is not a u32`);
  }
  return Number(v.text);
}

/** `now_ms` is a decimal string holding an `s64`: a BigInt, never a Number. */
function asS64(v) {
  const s = asString(v, "now_ms");
  if (!/^-?(0|[1-9]\d*)$/.test(s)) throw new Error("input.json: now_ms is not a decimal integer");
  const n = BigInt(s);
  if (n !== BigInt.asIntN(64, n)) throw new Error("input.json: now_ms is out of the s64 range");
  return n;
}

const UTF8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }); // keeps a BOM: bytes in, same text out

/** Load one vector directory into the arguments of the call and the expected bytes. */
async function loadVector(dir) {
  const input = parseJson(UTF8.decode(await readFile(join(dir, "input.json"))));
  const cfg = get(input, "config");
  const bucket = get(cfg, "archive_bucket");
  const config = {
    tableName: asString(get(cfg, "table_name"), "table_name"),
    windows: get(cfg, "windows").map((w) => asString(w, "window")),
    snapshotTtlDays: asU32(get(cfg, "snapshot_ttl_days"), "snapshot_ttl_days"),
    archiveBucket: bucket === null ? undefined : asString(bucket, "archive_bucket"),
    maxShardCount: asU32(get(cfg, "max_shard_count"), "max_shard_count"),
    deadLetterBucket: (() => {
      const dl = getOptional(cfg, "dead_letter_bucket");
      return dl === null ? undefined : asString(dl, "dead_letter_bucket");
    })(),
    // Vectors older than contract 0.3.0 have no `limiter`: 0.13.
    limiter: (() => {
      const l = getOptional(cfg, "limiter");
      if (l === null || asString(l, "limiter") === "0.13") return "v013";
      if (l === "0.17") return "v017";
      throw new Error(`input.json: limiter ${l} is not "0.13" or "0.17"`);
    })(),
  };
  const batch = {
    eventJson: UTF8.decode(await readFile(join(dir, "event.json"))),
    config,
    nowMs: asS64(get(input, "now_ms")),
    invocationId: asString(get(input, "invocation_id"), "invocation_id"),
  };
  const obsEntry = input.entries.find(([k]) => k === "observed");
  const observed =
    obsEntry && obsEntry[1] !== null
      ? obsEntry[1].map((o) => {
          const item = get(o, "item");
          return {
            writeId: asU32(get(o, "write_id"), "write_id"),
            item: item === null ? undefined : compact(item),
          };
        })
      : undefined;
  const readsEntry = input.entries.find(([k]) => k === "read_results");
  const readResults =
    readsEntry && readsEntry[1] !== null
      ? readsEntry[1].map((r) => {
          const kind = asString(get(r, "outcome"), "outcome");
          const outcome =
            kind === "found"
              ? { tag: "found", val: compact(get(r, "item")) }
              : kind === "missing"
                ? { tag: "missing" }
                : kind === "failed"
                  ? { tag: "failed", val: asString(get(r, "error"), "error") }
                  : (() => {
                      throw new Error(`input.json: read outcome ${kind}`);
                    })();
          return { readId: asU32(get(r, "read_id"), "read_id"), outcome };
        })
      : undefined;
  let expected = null;
  if (existsSync(join(dir, "plan.json"))) {
    const bytes = await readFile(join(dir, "plan.json"));
    expected = bytes.at(-1) === 0x0a ? bytes.subarray(0, -1) : bytes; // the answer, without plan.json's final newline
  }
  return { batch, observed, readResults, expected };
}

// ---------------------------------------------------------------------------
// The component
// ---------------------------------------------------------------------------

const notGranted = (what) => () => {
  throw new Error(`${what} is not granted to the planner`);
};

/** The import object: nothing granted (see the header comment). */
function imports() {
  return {
    "wasi:cli/environment": { getEnvironment: () => [], getArguments: () => [], initialCwd: () => undefined },
    "wasi:cli/exit": { exit: notGranted("wasi:cli/exit") },
    "wasi:cli/stdin": { getStdin: notGranted("stdin") },
    "wasi:cli/stdout": { getStdout: () => shimStderr.getStderr() },
    "wasi:cli/stderr": { getStderr: () => shimStderr.getStderr() },
    "wasi:cli/terminal-input": { TerminalInput: class TerminalInput {} },
    "wasi:cli/terminal-output": { TerminalOutput: class TerminalOutput {} },
    "wasi:cli/terminal-stdin": { getTerminalStdin: () => undefined },
    "wasi:cli/terminal-stdout": { getTerminalStdout: () => undefined },
    "wasi:cli/terminal-stderr": { getTerminalStderr: () => undefined },
    "wasi:io/error": ioError,
    "wasi:io/poll": ioPoll,
    "wasi:io/streams": ioStreams,
    "wasi:random/insecure-seed": insecureSeed,
  };
}

// jco 1.35.0 lifts every string from the guest with `new TextDecoder()`,
// whose default (ignoreBOM: false) drops a leading U+FEFF as if it were a
// byte-order mark: a table name "\uFEFFrate-limits" would come back as
// "rate-limits" (vector unicode-leading-bom). The glue is patched to decode
// with ignoreBOM: true; the patch must apply exactly once.
const BOM_DROPPING_DECODER = "const TEXT_DECODER_UTF8 = new TextDecoder();";
const BOM_KEEPING_DECODER = 'const TEXT_DECODER_UTF8 = new TextDecoder("utf-8", { ignoreBOM: true });';

function patchGlue(js) {
  const count = (needle) => js.split(needle).length - 1;
  if (count(BOM_DROPPING_DECODER) !== 1 || count("TextDecoder(") !== 1) {
    throw new Error(`jco glue changed: expected "${BOM_DROPPING_DECODER}" as its only TextDecoder`);
  }
  return js.replace(BOM_DROPPING_DECODER, BOM_KEEPING_DECODER);
}

/**
 * Transpile the component with jco (instantiation mode, glue patched, cached
 * per component hash under gen/) and return a function that instantiates it
 * and returns its `planner` interface (`zae:aggregator/planner@0.7.0`: `plan`,
 * `replanSnapshots`, `configFromEnv`, `renderPlan`, `renderError`), with the
 * `reader` interface as its `reader` property.
 */
async function load(componentPath) {
  const bytes = await readFile(componentPath);
  const hash = createHash("sha256").update(bytes).update(BOM_KEEPING_DECODER).digest("hex").slice(0, 16);
  const dir = join(HERE, "gen", hash);
  const entry = join(dir, "zae_planner.js");
  if (!existsSync(entry)) {
    const { files } = await transpile(bytes, {
      name: "zae_planner",
      instantiation: "async",
      noTypescript: true,
      quiet: true,
    });
    files["zae_planner.js"] = patchGlue(Buffer.from(files["zae_planner.js"]).toString("utf8"));
    const tmp = `${dir}.tmp-${process.pid}`;
    await rm(tmp, { recursive: true, force: true });
    for (const [name, content] of Object.entries(files)) {
      await mkdir(dirname(join(tmp, name)), { recursive: true });
      await writeFile(join(tmp, name), content);
    }
    await rm(dir, { recursive: true, force: true });
    await rename(tmp, dir);
    // Keep only this component's glue.
    for (const old of await readdir(dirname(dir))) {
      if (old !== hash && !old.includes(".tmp-")) await rm(join(dirname(dir), old), { recursive: true, force: true });
    }
  }
  const { instantiate } = await import(pathToFileURL(entry).href);
  const modules = new Map();
  const getCoreModule = (name) => {
    if (!modules.has(name)) modules.set(name, readFile(join(dir, name)).then((b) => WebAssembly.compile(b)));
    return modules.get(name);
  };
  return async () => {
    const exports = await instantiate(getCoreModule, imports());
    const planner = exports.planner;
    const missing = ["plan", "replanSnapshots", "configFromEnv", "renderPlan", "renderError"].filter(
      (f) => typeof planner?.[f] !== "function",
    );
    if (missing.length > 0) {
      throw new Error(`the component exports no planner interface with ${missing.join(", ")} (not zae:aggregator@0.7.0?)`);
    }
    if (typeof exports.reader?.reconcile !== "function") {
      throw new Error("the component exports no reader interface (not zae:aggregator@0.7.0?)");
    }
    return Object.assign(Object.create(planner), { reader: exports.reader });
  };
}

/**
 * Call the planner once: `{plan}` (a `batch-plan`) or `{error}` (a `plan-error`), or `{trap}`,
 * with `ms`, the wall time of the call (lowering, running and lifting), and
 * `cpuMs`, the CPU time of the whole process meanwhile (all threads, GC and
 * compiler threads too; less sensitive than wall time to a busy machine).
 */
function callOnce(planner, v) {
  const cpu = process.cpuUsage();
  const start = performance.now();
  const done = (r) => {
    const used = process.cpuUsage(cpu);
    return { ...r, ms: performance.now() - start, cpuMs: (used.user + used.system) / 1000 };
  };
  try {
    return done({
      plan:
        v.observed !== undefined
          ? planner.replanSnapshots(v.batch, v.observed)
          : v.readResults !== undefined
            ? planner.planAfterReads(v.batch, v.readResults)
            : planner.plan(v.batch),
    });
  } catch (e) {
    // A `result` error comes back as a thrown ComponentError carrying the plan-error.
    if (e && Object.prototype.hasOwnProperty.call(e, "payload")) return done({ error: e.payload });
    return done({ trap: e });
  }
}

/** A reader vector's query as the contract's `usage-query` (jco: options are values or undefined). */
function readerQuery(q) {
  const opt = (name) => (q?.[name] == null ? undefined : q[name]);
  return {
    namespace: opt("namespace"),
    entity: opt("entity"),
    resource: opt("resource"),
    window: opt("window"),
    from: opt("from"),
    to: opt("to"),
  };
}

/**
 * Run one reader vector (tests/conformance/README.md#reader-vectors): call the
 * named `reader` function, render the lifted answer with the component's
 * `render-*`, compare with answer.json. Returns null on a match, else why.
 */
async function checkReaderVector(reader, dir) {
  const input = JSON.parse(await readFile(join(dir, "input.json"), "utf8"));
  const expected = (await readFile(join(dir, "answer.json"), "utf8")).replace(/\n$/, "");
  const items = (input.items ?? []).map((i) => (typeof i === "string" ? i : JSON.stringify(i)));
  const calls = {
    rows: [() => reader.rows(items, readerQuery(input.query)), (a) => reader.renderRows(a)],
    summaries: [() => reader.summaries(items, readerQuery(input.query)), (a) => reader.renderSummaries(a)],
    "average-period": [() => reader.averagePeriod(input.months, BigInt(input.now_ms)), (a) => reader.renderPeriod(a)],
    "monthly-average": [
      () =>
        reader.monthlyAverage(items, readerQuery(input.query), input.months, BigInt(input.now_ms), input.whole_period),
      (a) => reader.renderAverage(a),
    ],
    reconcile: [() => reader.reconcile(items, readerQuery(input.query)), (a) => reader.renderReconciliation(a)],
    backfill: [
      () => reader.backfill(items, input.window, readerQuery(input.query), BigInt(input.now_ms), input.ttl_days),
      (a) => reader.renderBackfill(a),
    ],
  };
  const call = calls[input.function];
  if (!call) return `unknown function ${input.function}`;
  let rendered;
  try {
    rendered = call[1](call[0]());
  } catch (e) {
    if (!(e && Object.prototype.hasOwnProperty.call(e, "payload"))) return `the call trapped: ${e?.message ?? e}`;
    rendered = reader.renderReaderError(e.payload);
  }
  return rendered === expected ? null : `got ${rendered}\n    want ${expected}`;
}

/** Byte offset of the first difference of two unequal buffers. */
function firstDifference(a, b) {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return n;
}

const context = (bytes, at) => JSON.stringify(Buffer.from(bytes.subarray(Math.max(0, at - 40), at + 40)).toString("utf8"));

/** The low median (the same as Python's statistics.median_low). */
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)];

async function main() {
  const { values: opts } = parseArgs({
    options: {
      component: {
        type: "string",
        default: join(ROOT, "target", "component", "wasm32-wasip2", "component", "zae_planner.wasm"),
      },
      vectors: { type: "string", default: join(ROOT, "tests", "conformance") },
      repeat: { type: "string", default: "5" },
      timed: { type: "string", default: "real-batch-1000" },
      timings: { type: "boolean", default: false },
    },
  });
  const repeat = Number(opts.repeat);
  if (!Number.isInteger(repeat) || repeat < 1) throw new Error(`--repeat must be a positive integer`);
  const newInstance = await load(resolve(opts.component));
  let planner = await newInstance();

  const names = (await readdir(opts.vectors, { withFileTypes: true }))
    .filter((d) => d.isDirectory() && existsSync(join(opts.vectors, d.name, "input.json")))
    .map((d) => d.name)
    .sort();
  let passed = 0;
  let failed = 0;
  let timedNote = `${opts.timed}: not run`;
  for (const name of names) {
    const fail = (msg) => {
      failed++;
      console.log(`FAIL ${name}: ${msg}`);
    };
    let v;
    try {
      v = await loadVector(join(opts.vectors, name));
    } catch (e) {
      fail(`cannot load the vector: ${e.message}`);
      continue;
    }
    const r = callOnce(planner, v);
    if (opts.timings) console.error(`node ${name}: ${r.ms.toFixed(3)} ms`);
    if (r.trap) {
      fail(`the call trapped: ${r.trap?.message ?? r.trap}`);
      planner = await newInstance(); // a trapped instance must not be reused
      continue;
    }
    if (v.expected === null) {
      fail("no plan.json");
      continue;
    }
    // The host's own rendering, then the component's rendering of the answer
    // as this host lifted it and lowers it back.
    let own;
    try {
      own = Buffer.from(r.plan !== undefined ? renderPlan(r.plan) : renderError(r.error), "utf8");
    } catch (e) {
      fail(`cannot render the answer: ${e?.stack ?? e}`);
      continue;
    }
    let component;
    try {
      component = Buffer.from(r.plan !== undefined ? planner.renderPlan(r.plan) : planner.renderError(r.error), "utf8");
    } catch (e) {
      fail(`the component's ${r.plan !== undefined ? "render-plan" : "render-error"} failed: ${e?.message ?? e}`);
      planner = await newInstance();
      continue;
    }
    const mismatches = [
      ["host rendering", own],
      [r.plan !== undefined ? "component render-plan" : "component render-error", component],
    ].filter(([, got]) => !got.equals(v.expected));
    if (mismatches.length > 0) {
      fail(
        mismatches
          .map(([what, got]) => {
            const at = firstDifference(v.expected, got);
            return (
              `${what} differs at byte ${at} (expected ${v.expected.length} bytes, got ${got.length})\n` +
              `    want …${context(v.expected, at)}\n    got  …${context(got, at)}`
            );
          })
          .join("\n    "),
      );
      continue;
    }
    passed++;
    if (name === opts.timed) {
      // The checked call above was the first (cold) one; time `repeat` more.
      const calls = Array.from({ length: repeat }, () => callOnce(planner, v));
      const times = calls.map((c) => c.ms);
      timedNote =
        `${name}: plan call median ${median(times).toFixed(2)} ms ` +
        `(min ${Math.min(...times).toFixed(2)}, first ${r.ms.toFixed(2)}, ${times.length} calls; ` +
        `process CPU median ${median(calls.map((c) => c.cpuMs)).toFixed(2)} ms)`;
    }
  }
  const readerDir = join(opts.vectors, "reader");
  const readerNames = existsSync(readerDir)
    ? (await readdir(readerDir, { withFileTypes: true }))
        .filter((d) => d.isDirectory() && existsSync(join(readerDir, d.name, "input.json")))
        .map((d) => d.name)
        .sort()
    : [];
  for (const name of readerNames) {
    const outcome = await checkReaderVector(planner.reader, join(readerDir, name));
    if (outcome === null) passed++;
    else {
      failed++;
      console.log(`FAIL reader/${name}: ${outcome}`);
      planner = await newInstance();
    }
  }
  const jcoPackage = join(HERE, "node_modules", "@bytecodealliance", "jco", "package.json");
  const jco = JSON.parse(await readFile(jcoPackage, "utf8")).version;
  console.log(`node: ${passed} passed, ${failed} failed; ${timedNote} [node ${process.version}, jco ${jco}]`);
  return failed === 0 ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (e) => {
    console.error(`node host: ${e?.stack ?? e}`);
    process.exit(2);
  },
);
