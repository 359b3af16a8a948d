//! Stream records for the exactly-once tests: generated from a seed, or
//! contiguous slices of the oracle's recorded seed-1 vectors, read at run time
//! (the Python library's own traffic), plus the table start state they imply.
//!
//! Generated streams exercise everything a batch can write: consumption and
//! refunds (with non-multiples of 1000 millitokens, so per-delta flooring
//! matters), several limits per bucket including names with `-` and `.`,
//! sharded buckets and a client-side shard bump (propagation), an old-format
//! bucket, buckets low on tokens (refills), a hot bucket low on `wcu` (shard
//! doubling), records without `ApproximateCreationDateTime` (window from
//! `rf`), skipped records (INSERT, non-bucket MODIFY) and audit deletions
//! whose timestamps span several days (several archive objects per batch),
//! over an hour, day and month boundary.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::OnceLock;

use serde_json::{json, Map, Value};

use super::rng::Rng;

/// A stream to deliver and the table state it starts from.
#[derive(Debug, Clone)]
pub struct Stream {
    /// Where it came from (for messages).
    pub name: String,
    /// The stream records, in sequence-number order.
    pub records: Vec<Value>,
    /// Items to put into the table before delivery (DynamoDB JSON maps):
    /// the latest `NewImage` of every item a MODIFY record describes, as if
    /// the stream had just been written.
    pub initial_items: Vec<Value>,
}

impl Stream {
    fn new(name: String, records: Vec<Value>) -> Stream {
        let initial_items = latest_images(&records);
        Stream { name, records, initial_items }
    }
}

/// The latest `NewImage` of each MODIFY record's item, by `(PK, SK)`.
pub fn latest_images(records: &[Value]) -> Vec<Value> {
    let mut latest: BTreeMap<(String, String), Value> = BTreeMap::new();
    for r in records {
        let image = &r["dynamodb"]["NewImage"];
        if r["eventName"] == "MODIFY" {
            if let (Some(pk), Some(sk)) = (image["PK"]["S"].as_str(), image["SK"]["S"].as_str()) {
                latest.insert((pk.to_string(), sk.to_string()), image.clone());
            }
        }
    }
    latest.into_values().collect()
}

/// `dynamodb.SequenceNumber` of a record.
pub fn seq(record: &Value) -> &str {
    record["dynamodb"]["SequenceNumber"].as_str().unwrap_or("")
}

/// The partition key of a record's item (what ParallelizationFactor shards on).
pub fn partition_key(record: &Value) -> String {
    let d = &record["dynamodb"];
    for image in ["Keys", "NewImage", "OldImage"] {
        if let Some(pk) = d[image]["PK"]["S"].as_str() {
            return pk.to_string();
        }
    }
    String::new()
}

// ---------------------------------------------------------------------------
// Real vectors

/// The oracle's recorded seed-1 stream, read at run time: the directory that
/// holds the reference tools sits beside the repository (`ZAE_ORACLE_DIR`
/// overrides it). The tests read its data; no documentation lives there.
fn vectors_dir() -> PathBuf {
    let oracle = std::env::var_os("ZAE_ORACLE_DIR").map(PathBuf::from).unwrap_or_else(|| {
        let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
        repo.join("..").join("shared").join("oracle")
    });
    oracle.join("vectors").join("1")
}

/// The whole stream of the real vectors (seed 1: 2,410 records in 25 files).
pub fn real_stream() -> &'static [Value] {
    static ALL: OnceLock<Vec<Value>> = OnceLock::new();
    ALL.get_or_init(|| {
        let dir = vectors_dir();
        let mut all = Vec::new();
        for i in 0..25 {
            let path = dir.join(format!("batch-100-{i:04}.json"));
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("reading {}: {e} (the real vectors live in ../shared)", path.display()));
            let event: Value = serde_json::from_str(&text).expect("a vector is JSON");
            all.extend(event["Records"].as_array().expect("Records").iter().cloned());
        }
        all
    })
}

/// A contiguous slice of the real stream: `len` records from `start`.
pub fn real_slice(start: usize, len: usize) -> Stream {
    let all = real_stream();
    let start = start.min(all.len().saturating_sub(1));
    let end = (start + len).min(all.len());
    Stream::new(format!("real vectors/1 records {start}..{end}"), all[start..end].to_vec())
}

/// A random slice of the real stream, biased towards stretches with audit
/// deletions.
pub fn random_real_slice(rng: &mut Rng, len: usize) -> Stream {
    let all = real_stream();
    let start = if rng.chance(0.5) {
        let removes: Vec<usize> =
            all.iter().enumerate().filter(|(_, r)| r["eventName"] == "REMOVE").map(|(i, _)| i).collect();
        rng.pick(&removes).saturating_sub(rng.below(len as u64) as usize)
    } else {
        rng.below((all.len() - len) as u64) as usize
    };
    real_slice(start, len)
}

/// The 0.17 oracle's seed-1 stream (zae-limiter 0.17.0 client traffic:
/// schedules, calendar quotas, duration windows, soft limits, doublings and
/// clones), read at run time from `../shared/oracle17/vectors/1/`
/// (`ZAE_ORACLE17_DIR` overrides the oracle directory).
pub fn real17_stream() -> &'static [Value] {
    static ALL: OnceLock<Vec<Value>> = OnceLock::new();
    ALL.get_or_init(|| {
        let oracle = std::env::var_os("ZAE_ORACLE17_DIR").map(PathBuf::from).unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join("..").join("shared").join("oracle17")
        });
        let dir = oracle.join("vectors").join("1");
        let mut all = Vec::new();
        for i in 0.. {
            let path = dir.join(format!("batch-100-{i:04}.json"));
            let Ok(text) = std::fs::read_to_string(&path) else { break };
            let event: Value = serde_json::from_str(&text).expect("a vector is JSON");
            all.extend(event["Records"].as_array().expect("Records").iter().cloned());
        }
        assert!(!all.is_empty(), "no 0.17 vectors under {} (they live in ../shared)", dir.display());
        all
    })
}

/// A random contiguous slice of the 0.17 stream, `len` records long.
pub fn random_real17_slice(rng: &mut Rng, len: usize) -> Stream {
    let all = real17_stream();
    let start = rng.below((all.len() - len) as u64) as usize;
    let end = (start + len).min(all.len());
    Stream::new(format!("real 0.17 vectors/1 records {start}..{end}"), all[start..end].to_vec())
}

// ---------------------------------------------------------------------------
// Generated streams

#[derive(Debug, Clone)]
struct Limit {
    name: &'static str,
    tc: i64,
    tk: i64,
    cp: i64,
    ra: i64,
    rp: i64,
}

#[derive(Debug, Clone)]
struct Bucket {
    ns: &'static str,
    entity: &'static str,
    resource: &'static str,
    /// `None`: old format (`{ns}/ENTITY#{entity}` / `#BUCKET#{resource}`).
    shard: Option<u32>,
    shard_count: i64,
    rf: i64,
    limits: Vec<Limit>,
}

impl Bucket {
    fn pk(&self) -> String {
        match self.shard {
            Some(s) => format!("{}/BUCKET#{}#{}#{s}", self.ns, self.entity, self.resource),
            None => format!("{}/ENTITY#{}", self.ns, self.entity),
        }
    }

    fn sk(&self) -> String {
        match self.shard {
            Some(_) => "#STATE".into(),
            None => format!("#BUCKET#{}", self.resource),
        }
    }

    fn image(&self) -> Value {
        let mut m = Map::new();
        let pk = self.pk();
        m.insert("PK".into(), json!({"S": pk}));
        m.insert("SK".into(), json!({"S": self.sk()}));
        m.insert("entity_id".into(), json!({"S": self.entity}));
        m.insert("resource".into(), json!({"S": self.resource}));
        m.insert("cascade".into(), json!({"BOOL": false}));
        if let Some(s) = self.shard {
            m.insert("GSI2PK".into(), json!({"S": format!("{}/RESOURCE#{}", self.ns, self.resource)}));
            m.insert("GSI2SK".into(), json!({"S": format!("BUCKET#{}#{s}", self.entity)}));
            m.insert("GSI3PK".into(), json!({"S": format!("{}/ENTITY#{}", self.ns, self.entity)}));
            m.insert("GSI3SK".into(), json!({"S": format!("BUCKET#{}#{s}", self.resource)}));
            m.insert("GSI4PK".into(), json!({"S": self.ns}));
            m.insert("GSI4SK".into(), json!({"S": format!("BUCKET#{}#{}#{s}", self.entity, self.resource)}));
        }
        for l in &self.limits {
            for (f, v) in [("cp", l.cp), ("ra", l.ra), ("rp", l.rp), ("tc", l.tc), ("tk", l.tk)] {
                m.insert(format!("b_{}_{f}", l.name), json!({"N": v.to_string()}));
            }
        }
        m.insert("rf".into(), json!({"N": self.rf.to_string()}));
        m.insert("shard_count".into(), json!({"N": self.shard_count.to_string()}));
        Value::Object(m)
    }
}

fn limit(name: &'static str, cp_tokens: i64, tk_tokens: i64) -> Limit {
    Limit { name, tc: 0, tk: tk_tokens * 1000, cp: cp_tokens * 1000, ra: cp_tokens * 1000, rp: 60_000 }
}

fn wcu(tk: i64) -> Limit {
    Limit { name: "wcu", tc: 0, tk, cp: 1_000_000, ra: 1_000_000, rp: 1000 }
}

/// Epoch ms of some starting points near hour, day, month and year boundaries.
const STARTS_MS: [i64; 4] = [
    1_769_902_200_000, // 2026-01-31T23:30:00Z (day, month)
    1_772_316_000_000, // 2026-02-28T22:00:00Z (day, month)
    1_767_222_600_000, // 2025-12-31T23:10:00Z (year)
    1_773_574_800_000, // 2026-03-15T11:40:00Z (hours only)
];

const ARN: &str = "arn:aws:dynamodb:us-east-1:123456789012:table/zae-limiter/stream/2026-01-01T00:00:00.000";

struct Gen {
    rng: Rng,
    clock_ms: i64,
    seq: u128,
    records: Vec<Value>,
    audit_n: u32,
}

impl Gen {
    fn envelope(&mut self, name: &str, keys: Value, new: Option<Value>, old: Option<Value>, with_time: bool) -> Value {
        self.seq += 1 + self.rng.below(3_000_000) as u128;
        let mut d = Map::new();
        if with_time {
            d.insert("ApproximateCreationDateTime".into(), json!(self.clock_ms.div_euclid(1000)));
        }
        d.insert("Keys".into(), keys);
        if let Some(n) = new {
            d.insert("NewImage".into(), n);
        }
        if let Some(o) = old {
            d.insert("OldImage".into(), o);
        }
        d.insert("SequenceNumber".into(), json!(self.seq.to_string()));
        d.insert("SizeBytes".into(), json!(400));
        d.insert("StreamViewType".into(), json!("NEW_AND_OLD_IMAGES"));
        json!({
            "awsRegion": "us-east-1",
            "dynamodb": Value::Object(d),
            "eventID": format!("{:032x}", self.seq),
            "eventName": name,
            "eventSource": "aws:dynamodb",
            "eventSourceARN": ARN,
            "eventVersion": "1.1",
        })
    }

    fn keys(pk: &str, sk: &str) -> Value {
        json!({"PK": {"S": pk}, "SK": {"S": sk}})
    }

    fn modify(&mut self, before: &Bucket, after: &Bucket, with_time: bool) {
        let keys = Self::keys(&after.pk(), &after.sk());
        let rec = self.envelope("MODIFY", keys, Some(after.image()), Some(before.image()), with_time);
        self.records.push(rec);
    }

    fn ulid(&mut self) -> String {
        const ALPHABET: &[u8] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
        let mut s = String::from("01K");
        for _ in 0..23 {
            s.push(ALPHABET[self.rng.below(32) as usize] as char);
        }
        s
    }

    fn audit_remove(&mut self, ns: &str, entity: &str) {
        self.audit_n += 1;
        let id = self.ulid();
        let pk = format!("{ns}/AUDIT#{entity}");
        let sk = format!("#AUDIT#{id}");
        // Deleted rows carry their own (older) timestamps: up to 3 days back.
        let at = self.clock_ms - self.rng.below(3 * 86_400_000) as i64;
        let ts = iso_seconds(at);
        let action = *self.rng.pick(&["entity_created", "limits_set", "limits_deleted", "entity_deleted"]);
        let old = json!({
            "GSI4PK": {"S": ns}, "GSI4SK": {"S": format!("{ns}/AUDIT#{entity}")},
            "PK": {"S": pk}, "SK": {"S": sk},
            "action": {"S": action},
            "details": {"M": {"limit": {"S": "tpm"}, "n": {"N": (self.audit_n * 7).to_string()},
                              "note": {"S": "é \"quoted\""}, "ok": {"BOOL": true}}},
            "entity_id": {"S": entity},
            "event_id": {"S": id},
            "principal": {"S": "arn:aws:sts::123456789012:user/ops"},
            "resource": {"NULL": true},
            "timestamp": {"S": ts},
            "ttl": {"N": (self.clock_ms / 1000).to_string()},
        });
        let mut rec = self.envelope("REMOVE", Self::keys(&pk, &sk), None, Some(old), true);
        rec["userIdentity"] = json!({"principalId": "dynamodb.amazonaws.com", "type": "Service"});
        self.records.push(rec);
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ` of epoch ms.
pub fn iso_seconds(ms: i64) -> String {
    let (y, mo, d, h) = super::truth::civil(ms);
    let secs = ms.div_euclid(1000).rem_euclid(3600);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{:02}:{:02}Z", secs / 60, secs % 60)
}

/// A deterministic stream of about `n` records for `seed`.
pub fn generate(seed: u64, n: usize) -> Stream {
    let mut rng = Rng::new(seed);
    let start = STARTS_MS[rng.below(STARTS_MS.len() as u64) as usize] + rng.below(600_000) as i64;
    let rf0 = start - 120_000;
    let mut buckets: Vec<Bucket> = vec![
        // A sharded bucket (2 shards), ordinary limits.
        Bucket {
            ns: "ns1",
            entity: "user-1",
            resource: "gpt-4",
            shard: Some(0),
            shard_count: 2,
            rf: rf0,
            limits: vec![limit("tpm", 100_000, 90_000), limit("rpm", 1_000, 900), wcu(900_000)],
        },
        Bucket {
            ns: "ns1",
            entity: "user-1",
            resource: "gpt-4",
            shard: Some(1),
            shard_count: 2,
            rf: rf0,
            limits: vec![limit("tpm", 100_000, 90_000), limit("rpm", 1_000, 900), wcu(900_000)],
        },
        // Small capacity: batches consume more than a refill can give (refills).
        Bucket {
            ns: "ns1",
            entity: "key.b:2",
            resource: "models/gpt-4o",
            shard: Some(0),
            shard_count: 1,
            rf: rf0,
            limits: vec![limit("tpm", 4_000, 1_000), limit("img-gen.v2", 50, 10), wcu(950_000)],
        },
        // Hot on wcu (shard doubling), and the client bumps shard_count later.
        Bucket {
            ns: "tenant-b",
            entity: "hot",
            resource: "claude",
            shard: Some(0),
            shard_count: 1,
            rf: rf0,
            limits: vec![limit("tpm", 50_000, 20_000), wcu(150_000)],
        },
        // Old format (pre-shard).
        Bucket {
            ns: "ns1",
            entity: "legacy",
            resource: "gpt-4",
            shard: None,
            shard_count: 1,
            rf: rf0,
            limits: vec![limit("tpm", 20_000, 5_000), limit("rpm", 100, 50)],
        },
    ];
    let mut g = Gen {
        rng: rng.fork("records"),
        clock_ms: start,
        seq: 100_000_000_000_000_000_000,
        records: Vec::new(),
        audit_n: 0,
    };
    let mut bumped = false;
    while g.records.len() < n {
        g.clock_ms += 20_000 + g.rng.below(380_000) as i64;
        let roll = g.rng.below(100);
        let b = g.rng.below(buckets.len() as u64) as usize;
        let before = buckets[b].clone();
        let with_time = !g.rng.chance(0.04);
        match roll {
            0..=59 => {
                // Consumption on one or two limits (the wcu counter always moves).
                let user_limits: Vec<usize> =
                    (0..before.limits.len()).filter(|&i| before.limits[i].name != "wcu").collect();
                let k = 1 + g.rng.below(user_limits.len() as u64) as usize;
                for &i in user_limits.iter().take(k) {
                    let amount = match g.rng.below(4) {
                        0 => 1_500,
                        1 => 999,
                        _ => (1 + g.rng.below(3_000) as i64) * 1000 + g.rng.below(1000) as i64,
                    };
                    let l = &mut buckets[b].limits[i];
                    l.tc += amount;
                    l.tk -= amount;
                }
                if let Some(w) = buckets[b].limits.iter_mut().find(|l| l.name == "wcu") {
                    w.tc += 1000;
                    w.tk -= 1000;
                }
                if g.rng.chance(0.3) {
                    buckets[b].rf = g.clock_ms - 1_000;
                }
                g.modify(&before, &buckets[b].clone(), with_time);
            }
            60..=67 => {
                // Refund on one limit.
                let l = &mut buckets[b].limits[0];
                let amount = 1 + g.rng.below(2_500_000) as i64;
                l.tc -= amount;
                l.tk += amount;
                g.modify(&before, &buckets[b].clone(), with_time);
            }
            68..=73 => {
                // The client's own refill: rf and tk move, no consumption.
                buckets[b].rf = g.clock_ms - 500;
                for l in &mut buckets[b].limits {
                    l.tk = (l.tk + l.cp / 10).min(l.cp);
                }
                g.modify(&before, &buckets[b].clone(), with_time);
            }
            74..=76 if !bumped => {
                // The client doubles the hot bucket's shard_count (propagation).
                bumped = true;
                let hot = buckets.iter().position(|x| x.entity == "hot").expect("hot bucket");
                let before = buckets[hot].clone();
                buckets[hot].shard_count *= 2;
                g.modify(&before, &buckets[hot].clone(), true);
            }
            77..=80 => {
                // Not a bucket: an entity's #META item.
                let pk = "ns1/ENTITY#user-1";
                let old = json!({"PK": {"S": pk}, "SK": {"S": "#META"}, "name": {"S": "u1"}});
                let new = json!({"PK": {"S": pk}, "SK": {"S": "#META"}, "name": {"S": "u1!"}});
                let rec = g.envelope("MODIFY", Gen::keys(pk, "#META"), Some(new), Some(old), true);
                g.records.push(rec);
            }
            81..=83 => {
                // A keys-only INSERT (skipped).
                let keys = Gen::keys(&before.pk(), &before.sk());
                let rec = g.envelope("INSERT", keys, Some(before.image()), None, true);
                g.records.push(rec);
            }
            _ => {
                let (ns, entity) = *g.rng.pick(&[("ns1", "user-1"), ("tenant-b", "hot"), ("ns1", "key.b:2")]);
                g.audit_remove(ns, entity);
            }
        }
    }
    Stream::new(format!("generated seed {seed}"), g.records)
}

/// A random `SNAPSHOT_WINDOWS` value.
pub fn random_windows(rng: &mut Rng) -> &'static str {
    const CHOICES: [&str; 5] =
        ["hourly,daily", "hourly,daily,monthly", "hourly,daily,monthly", "hourly", "daily,monthly"];
    let choice: &&'static str = rng.pick(&CHOICES);
    choice
}
