//! Structure-aware generator of planner inputs, driven by
//! [`arbitrary::Unstructured`] so that the proptest suites (which feed it
//! random bytes) and the cargo-fuzz targets (which feed it the fuzzer's bytes)
//! share one generator.
//!
//! It writes the event JSON text itself, so it can produce what a JSON
//! library would not: duplicate keys in objects (also `Records` twice), names
//! with `#`, `/`, `.`, `_`, U+FEFF and zero-width characters, empty names,
//! names of 1 to 1,100 bytes, numbers at ±(10^38−1), ±2^127 and the i64
//! extremes, negative capacities, repeated bucket PKs across records,
//! shuffled sequence numbers and wide images (hundreds to thousands of
//! attributes). See `docs/specification.md` for what each field means.

use arbitrary::{Arbitrary, Result, Unstructured};
use zae_planner::config::{Config, Limiter};
use zae_planner::window::Window;

/// A JSON value to render; objects may repeat keys.
#[derive(Debug, Clone)]
pub enum J {
    /// Literal JSON text (numbers, `true`, `null`, or anything else).
    Raw(String),
    /// A string, escaped on rendering.
    Str(String),
    /// An array.
    Arr(Vec<J>),
    /// An object; keys may repeat.
    Obj(Vec<(String, J)>),
}

impl J {
    /// Render as compact JSON text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        self.render_into(&mut out);
        out
    }

    fn render_into(&self, out: &mut String) {
        match self {
            J::Raw(s) => out.push_str(s),
            J::Str(s) => zae_planner::plan::write_json_str(out, s),
            J::Arr(items) => {
                out.push('[');
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    v.render_into(out);
                }
                out.push(']');
            }
            J::Obj(members) => {
                out.push('{');
                for (i, (k, v)) in members.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    zae_planner::plan::write_json_str(out, k);
                    out.push(':');
                    v.render_into(out);
                }
                out.push('}');
            }
        }
    }
}

fn s(v: impl Into<String>) -> J {
    J::Str(v.into())
}

fn typed(tag: &str, v: J) -> J {
    J::Obj(vec![(tag.to_string(), v)])
}

fn av_s(v: impl Into<String>) -> J {
    typed("S", s(v))
}

fn av_n(v: impl Into<String>) -> J {
    typed("N", s(v))
}

/// One planner input: configuration, clock, invocation id and event text.
#[derive(Debug, Clone)]
pub struct Case {
    /// The configuration (valid unless `config_is_invalid`).
    pub config: Config,
    /// `now_ms`.
    pub now_ms: i64,
    /// The invocation id.
    pub invocation_id: String,
    /// The event JSON text.
    pub event: String,
}

impl Case {
    /// The planner's batch for this case.
    pub fn batch(&self) -> zae_planner::Batch<'_> {
        zae_planner::Batch {
            event_json: &self.event,
            config: &self.config,
            now_ms: self.now_ms,
            invocation_id: &self.invocation_id,
        }
    }
}

impl<'a> Arbitrary<'a> for Case {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        let mut g = Gen::default();
        let config = g.config(u)?;
        let now_ms = g.now_ms(u)?;
        let invocation_id = if u.ratio(1, 8)? { g.name(u)? } else { "fuzz".to_string() };
        let event = g.event(u)?.render();
        Ok(Case { config, now_ms, invocation_id, event })
    }
}

/// What the re-plan of a case observes: for each entry, a selector of a
/// snapshot write (taken modulo their number) and the item text.
#[derive(Debug, Clone)]
pub struct Observed {
    /// `(selector, item)`.
    pub items: Vec<(u32, Option<String>)>,
    /// Also name a write id that is no snapshot write (the call must fail).
    pub unknown_id: Option<u32>,
}

impl<'a> Arbitrary<'a> for Observed {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        let mut g = Gen::default();
        let n = u.int_in_range(0..=6)?;
        let mut items = Vec::with_capacity(n);
        for _ in 0..n {
            let sel = u.arbitrary()?;
            let item = if u.ratio(1, 6)? { None } else { Some(g.observed_item(u)?) };
            items.push((sel, item));
        }
        let unknown_id = if u.ratio(1, 10)? { Some(u.arbitrary()?) } else { None };
        Ok(Observed { items, unknown_id })
    }
}

/// Short or awkward names; `#`, `/` and friends on purpose.
const ATOMS: &[&str] = &[
    "",
    "e",
    "u1",
    "ns",
    "gpt-4",
    "tpm",
    "rpm",
    "wcu",
    "my_limit",
    "my.limit",
    "a#b",
    "x/y",
    "_",
    ".",
    "#",
    "/",
    "\u{feff}",
    "\u{feff}ns",
    "\u{200b}",
    "e\u{200c}\u{200d}",
    "\u{2060}",
    "é",
    "😀",
    "\"\\",
    "\n\t",
    "\u{0}",
    "PK",
    "SK",
    "ttl",
    "window",
    "total_events",
    "wm#0",
    "BUCKET#",
    "ENTITY#",
    "AUDIT#",
    "#STATE",
    "#BUCKET#",
    "b_x",
    "1",
    "-1",
];

const CHARS: &[char] = &['a', 'z', '0', '9', '#', '/', '.', '_', '-', ' ', '\u{feff}', '\u{200b}', 'é', '😀', 'B'];

/// Lengths in bytes around DynamoDB's key limits.
const LONG: &[usize] = &[1, 255, 256, 500, 1000, 1016, 1017, 1023, 1024, 1025, 1100];

/// Numbers (as text) at the edges the planner must survive.
const NUMBERS: &[&str] = &[
    "0",
    "1",
    "-1",
    "999",
    "1000",
    "-1500",
    "20000000",
    "100000000",
    "1704067200000",
    "9223372036854775807",
    "-9223372036854775808",
    "9223372036854775808",
    "18446744073709551615",
    "99999999999999999999999999999999999999",
    "-99999999999999999999999999999999999999",
    "100000000000000000000000000000000000000",
    "170141183460469231731687303715884105727",
    "170141183460469231731687303715884105728",
    "-170141183460469231731687303715884105728",
    "-170141183460469231731687303715884105729",
    "340282366920938463463374607431768211456",
    "9007199254740993",
    "1_000",
    " 12 ",
    "+7",
    "-0",
    "00012",
    "1.5",
    "1E+3",
    "",
    "abc",
    "\u{feff}1",
];

/// Generator state: what has been generated so far, so later records can
/// repeat earlier keys and sequence numbers.
#[derive(Default)]
struct Gen {
    /// `(ns, entity, resource, shard)` of buckets made so far.
    buckets: Vec<(String, String, String, String)>,
    /// Limit names used so far.
    limits: Vec<String>,
    /// Sequence numbers used so far.
    seqs: Vec<String>,
    next_seq: u128,
    /// Whether a wide image was made already (one per case at most).
    wide: bool,
}

impl Gen {
    fn config(&mut self, u: &mut Unstructured) -> Result<Config> {
        let table_name = if u.ratio(3, 4)? { "rate-limits".to_string() } else { self.nonempty_name(u)? };
        let mut windows = vec![Window::Hourly, Window::Daily, Window::Monthly];
        // A non-empty ordered subset.
        let order = u.int_in_range(0..=5u8)?;
        windows.rotate_left((order % 3) as usize);
        if order >= 3 {
            windows.swap(0, 1);
        }
        windows.truncate(u.int_in_range(1..=3)?);
        let snapshot_ttl_days = *u.choose(&[1, 90, 365, 36_500])?;
        let archive_bucket = match u.int_in_range(0..=3u8)? {
            0 => None,
            1 => Some(self.nonempty_name(u)?),
            _ => Some("audit-archive".to_string()),
        };
        let max_shard_count = *u.choose(&[1, 2, 3, 8, 32, 1024])?;
        let dead_letter_bucket = if u.arbitrary::<bool>()? { Some("dead-letters".to_string()) } else { None };
        let limiter = Some(*u.choose(&[Limiter::V013, Limiter::V017])?);
        Ok(Config {
            table_name,
            windows,
            snapshot_ttl_days,
            archive_bucket,
            max_shard_count,
            dead_letter_bucket,
            limiter,
        })
    }

    fn now_ms(&mut self, u: &mut Unstructured) -> Result<i64> {
        Ok(match u.int_in_range(0..=5u8)? {
            0 => i64::MAX,
            1 => i64::MIN,
            2 => u.arbitrary()?,
            3 => -1,
            _ => 1_704_067_200_000 + u.int_in_range(-100_000_000..=100_000_000)?,
        })
    }

    /// Any name: atoms, random short strings, or long ones (1 to 1,100 bytes).
    fn name(&mut self, u: &mut Unstructured) -> Result<String> {
        Ok(match u.int_in_range(0..=9u8)? {
            0..=3 => u.choose(ATOMS)?.to_string(),
            4..=6 => {
                let n = u.int_in_range(0..=12)?;
                let mut out = String::new();
                for _ in 0..n {
                    out.push(*u.choose(CHARS)?);
                }
                out
            }
            7 => {
                let len = match u.ratio(1, 2)? {
                    true => *u.choose(LONG)?,
                    false => u.int_in_range(1..=1100)?,
                };
                let c = *u.choose(&['a', '#', '/', '\u{feff}', 'é'])?;
                let mut out = String::new();
                while out.len() + c.len_utf8() <= len {
                    out.push(c);
                }
                while out.len() < len {
                    out.push('x');
                }
                out
            }
            _ => u.arbitrary::<String>()?.chars().take(40).collect(),
        })
    }

    fn nonempty_name(&mut self, u: &mut Unstructured) -> Result<String> {
        let n = self.name(u)?;
        Ok(if n.is_empty() { "t".to_string() } else { n })
    }

    /// A plausible identifier most of the time, any name otherwise.
    fn ident(&mut self, u: &mut Unstructured, plain: &[&str]) -> Result<String> {
        if u.ratio(2, 3)? {
            Ok(u.choose(plain)?.to_string())
        } else {
            self.name(u)
        }
    }

    fn number(&mut self, u: &mut Unstructured) -> Result<String> {
        Ok(match u.int_in_range(0..=7u8)? {
            0..=2 => u.int_in_range(-5_000_000i64..=200_000_000)?.to_string(),
            3 | 4 => u.choose(NUMBERS)?.to_string(),
            5 => u.arbitrary::<i64>()?.to_string(),
            6 => u.arbitrary::<i128>()?.to_string(),
            _ => {
                let n = u.int_in_range(1..=60)?;
                let mut out = String::new();
                if u.arbitrary()? {
                    out.push('-');
                }
                for _ in 0..n {
                    out.push(char::from(b'0' + u.int_in_range(0..=9u8)?));
                }
                out
            }
        })
    }

    /// A sequence number: mostly fresh (so shuffled across buckets), often
    /// repeated or near an earlier one, sometimes malformed.
    fn seq(&mut self, u: &mut Unstructured) -> Result<Option<J>> {
        let text = match u.int_in_range(0..=11u8)? {
            0..=4 => {
                self.next_seq += u.int_in_range(1..=3u128)?;
                (4_000_000_000_000_000_000_000u128 + self.next_seq).to_string()
            }
            5 | 6 if !self.seqs.is_empty() => u.choose(&self.seqs)?.clone(),
            5 | 6 => "100".to_string(),
            7 => {
                let lo: u128 = u.int_in_range(0..=1_000)?;
                (4_000_000_000_000_000_000_000u128 + lo).to_string()
            }
            8 => u.choose(&["1", "0", "00001", &"9".repeat(40), &"9".repeat(41), &"0".repeat(40)])?.to_string(),
            9 => return Ok(None),
            10 => return Ok(Some(J::Raw(u.int_in_range(0..=1_000u32)?.to_string()))),
            _ => u.choose(&["", "12a", "-1", "1.0", " 1"])?.to_string(),
        };
        self.seqs.push(text.clone());
        Ok(Some(s(text)))
    }

    /// A record's `SequenceNumber` and `ApproximateCreationDateTime`, each
    /// possibly absent, as the first members of its `dynamodb` object.
    fn stream_fields(&mut self, u: &mut Unstructured) -> Result<Vec<(String, J)>> {
        let mut dynamodb: Vec<(String, J)> = Vec::new();
        if let Some(seq) = self.seq(u)? {
            dynamodb.push(("SequenceNumber".into(), seq));
        }
        if let Some(t) = self.creation_time(u)? {
            dynamodb.push(("ApproximateCreationDateTime".into(), t));
        }
        Ok(dynamodb)
    }

    fn creation_time(&mut self, u: &mut Unstructured) -> Result<Option<J>> {
        Ok(Some(J::Raw(match u.int_in_range(0..=9u8)? {
            0 | 1 => return Ok(None),
            2..=5 => (1_704_060_000 + u.int_in_range(-200_000..=200_000i64)?).to_string(),
            6 => format!("{}.{}", 1_704_060_000 + u.int_in_range(0..=100_000i64)?, u.int_in_range(0..=999u32)?),
            7 => u.arbitrary::<i64>()?.to_string(),
            8 => u
                .choose(&[
                    "253402300799",
                    "253402300800",
                    "-62135596800",
                    "-62135596801",
                    "1e3",
                    "-0.5",
                    "1.7976931348623157e308",
                    "\"1704060000\"",
                    "null",
                ])?
                .to_string(),
            _ => (u.arbitrary::<f64>()? % 1e12).to_string().replace("NaN", "0").replace("inf", "1"),
        })))
    }

    fn event(&mut self, u: &mut Unstructured) -> Result<J> {
        let n = match u.int_in_range(0..=15u8)? {
            0 => 0,
            1 => u.int_in_range(20..=60)?,
            _ => u.int_in_range(1..=8)?,
        };
        let mut records = Vec::with_capacity(n);
        for _ in 0..n {
            if u.is_empty() {
                break;
            }
            records.push(self.record(u)?);
        }
        let records = J::Arr(records);
        let mut top = Vec::new();
        match u.int_in_range(0..=15u8)? {
            0 => {
                // `Records` twice: the last one counts.
                top.push(("Records".to_string(), J::Arr(vec![J::Raw("1".into())])));
                top.push(("Records".to_string(), records));
            }
            1 => {
                top.push(("Records".to_string(), records));
                top.push(("Records".to_string(), J::Raw(u.choose(&["null", "[]", "[{}]"])?.to_string())));
            }
            2 => top.push(("Other".to_string(), records)),
            3 => top.push(("Records".to_string(), J::Raw("null".into()))),
            _ => top.push(("Records".to_string(), records)),
        }
        if u.ratio(1, 8)? {
            top.insert(0, ("Extra".to_string(), J::Obj(vec![("x".into(), J::Raw("[1,{}]".into()))])));
        }
        Ok(J::Obj(top))
    }

    fn record(&mut self, u: &mut Unstructured) -> Result<J> {
        Ok(match u.int_in_range(0..=19u8)? {
            0..=10 => self.bucket_record(u, false)?,
            11 | 12 => self.bucket_record(u, true)?,
            13..=15 => self.audit_record(u)?,
            16 => {
                let mut r = self.bucket_record(u, false)?;
                if let J::Obj(m) = &mut r {
                    m[0].1 = s(*u.choose(&["INSERT", "REMOVE", "modify", ""])?);
                }
                r
            }
            17 => J::Raw(u.choose(&["null", "1", "\"MODIFY\"", "[]", "{}", "{\"eventName\":null}"])?.to_string()),
            18 => J::Obj(vec![
                ("eventName".into(), s("MODIFY")),
                (
                    "dynamodb".into(),
                    J::Raw(u.choose(&["null", "[]", "{}", "{\"NewImage\":[]}", "{\"NewImage\":{}}"])?.to_string()),
                ),
            ]),
            _ => self.random_json(u, 3)?,
        })
    }

    fn random_json(&mut self, u: &mut Unstructured, depth: u32) -> Result<J> {
        Ok(match u.int_in_range(0..=6u8)? {
            0 => J::Raw("null".into()),
            1 => J::Raw(u.int_in_range(-3..=3i32)?.to_string()),
            2 => s(self.name(u)?),
            3 if depth > 0 => {
                let n = u.int_in_range(0..=4)?;
                let mut v = Vec::new();
                for _ in 0..n {
                    v.push(self.random_json(u, depth - 1)?);
                }
                J::Arr(v)
            }
            4 | 5 if depth > 0 => {
                let n = u.int_in_range(0..=4)?;
                let mut v = Vec::new();
                for _ in 0..n {
                    let k = self.ident(
                        u,
                        &["eventName", "dynamodb", "NewImage", "OldImage", "Keys", "PK", "SK", "S", "N", "M"],
                    )?;
                    v.push((k, self.random_json(u, depth - 1)?));
                }
                J::Obj(v)
            }
            _ => av_s(self.name(u)?),
        })
    }

    /// An existing bucket (repeated PKs) or a new one.
    fn bucket(&mut self, u: &mut Unstructured) -> Result<(String, String, String, String)> {
        if !self.buckets.is_empty() && u.ratio(2, 3)? {
            return Ok(u.choose(&self.buckets)?.clone());
        }
        let ns = self.ident(u, &["ns", "n2", "default"])?;
        let entity = self.ident(u, &["e1", "e2", "u1", "user-42"])?;
        let resource = self.ident(u, &["gpt-4", "res", "claude"])?;
        let shard = match u.int_in_range(0..=9u8)? {
            0..=5 => "0".to_string(),
            6 | 7 => u.int_in_range(1..=40u32)?.to_string(),
            8 => u.choose(&["-1", "00", "x", "", "99999999999999999999999"])?.to_string(),
            _ => self.number(u)?,
        };
        let b = (ns, entity, resource, shard);
        self.buckets.push(b.clone());
        Ok(b)
    }

    fn limit_name(&mut self, u: &mut Unstructured) -> Result<String> {
        if !self.limits.is_empty() && u.ratio(1, 2)? {
            return Ok(u.choose(&self.limits)?.clone());
        }
        let n = self.ident(u, &["tpm", "rpm", "wcu", "my_limit", "a.b-c", "total_events", "PK", "wm#1", "ttl"])?;
        self.limits.push(n.clone());
        Ok(n)
    }

    /// A number for a bucket field: realistic most of the time.
    fn field_number(&mut self, u: &mut Unstructured, field: &str) -> Result<String> {
        if u.ratio(1, 4)? {
            return self.number(u);
        }
        Ok(match field {
            "cp" | "ra" => u.choose(&["1000000", "100000000", "1000", "0", "-1000"])?.to_string(),
            "rp" => u.choose(&["1000", "60000", "0", "-1"])?.to_string(),
            _ => u.int_in_range(-1_000_000i64..=200_000_000)?.to_string(),
        })
    }

    fn bucket_record(&mut self, u: &mut Unstructured, old_format: bool) -> Result<J> {
        let (ns, entity, resource, shard) = self.bucket(u)?;
        let (pk, sk) = if old_format {
            (format!("{ns}/ENTITY#{entity}"), format!("#BUCKET#{resource}"))
        } else if u.ratio(1, 16)? {
            // Pre-migration: no namespace.
            (format!("BUCKET#{entity}#{resource}#{shard}"), "#STATE".to_string())
        } else {
            (format!("{ns}/BUCKET#{entity}#{resource}#{shard}"), "#STATE".to_string())
        };
        let mut new: Vec<(String, J)> = Vec::new();
        let mut old: Vec<(String, J)> = Vec::new();
        new.push(("PK".into(), av_s(pk.clone())));
        new.push(("SK".into(), av_s(sk.clone())));
        match u.int_in_range(0..=11u8)? {
            0 => {}
            1 => new.push(("entity_id".into(), av_s(""))),
            2 => new.push(("entity_id".into(), av_s(self.name(u)?))),
            3 => new.push(("entity_id".into(), av_n("1"))),
            _ => new.push(("entity_id".into(), av_s(entity.clone()))),
        }
        if u.ratio(1, 2)? {
            new.push(("resource".into(), av_s(resource.clone())));
        }
        if u.ratio(4, 5)? {
            let rf = if u.ratio(3, 4)? {
                (1_704_067_000_000i64 + u.int_in_range(-10_000_000..=300_000i64)?).to_string()
            } else {
                self.number(u)?
            };
            new.push(("rf".into(), av_n(rf)));
        }
        let old_sc = match u.int_in_range(0..=5u8)? {
            0 => None,
            1 => Some(self.number(u)?),
            _ => Some(u.choose(&["1", "2", "4", "8", "16"])?.to_string()),
        };
        let new_sc = match u.int_in_range(0..=5u8)? {
            0 => old_sc.clone(),
            1 => Some(self.number(u)?),
            2 => None,
            _ => Some(u.choose(&["1", "2", "4", "8", "32", "64", "2048"])?.to_string()),
        };
        if let Some(sc) = &new_sc {
            new.push(("shard_count".into(), av_n(sc.clone())));
        }
        if let Some(sc) = &old_sc {
            old.push(("shard_count".into(), av_n(sc.clone())));
        }
        if u.ratio(1, 3)? {
            new.push(("GSI2PK".into(), av_s(format!("{ns}/RESOURCE#{resource}"))));
            new.push(("GSI2SK".into(), av_s(format!("BUCKET#{entity}#{shard}"))));
            new.push(("GSI3PK".into(), av_s(format!("{ns}/ENTITY#{entity}"))));
            new.push(("GSI3SK".into(), av_s(format!("BUCKET#{resource}#{shard}"))));
            new.push(("GSI4PK".into(), av_s(ns.clone())));
            new.push(("GSI4SK".into(), av_s(format!("BUCKET#{entity}#{resource}#{shard}"))));
        }
        let nlimits = u.int_in_range(0..=4)?;
        for _ in 0..nlimits {
            let l = self.limit_name(u)?;
            let old_tc = self.field_number(u, "tc")?;
            let new_tc = match u.int_in_range(0..=3u8)? {
                0 => old_tc.clone(),
                1 => self.number(u)?,
                _ => match old_tc.parse::<i64>() {
                    Ok(o) => o.saturating_add(u.int_in_range(-3_000_000..=30_000_000i64)?).to_string(),
                    Err(_) => self.number(u)?,
                },
            };
            for field in ["tk", "cp", "ra", "rp"] {
                if u.ratio(7, 8)? {
                    let v = self.field_number(u, field)?;
                    new.push((format!("b_{l}_{field}"), av_n(v)));
                }
            }
            match u.int_in_range(0..=7u8)? {
                0 => {}
                1 => new.push((format!("b_{l}_tc"), av_n(new_tc))),
                2 => old.push((format!("b_{l}_tc"), av_n(old_tc))),
                _ => {
                    new.push((format!("b_{l}_tc"), av_n(new_tc)));
                    old.push((format!("b_{l}_tc"), av_n(old_tc)));
                }
            }
        }
        self.noise(u, &mut new)?;
        self.noise(u, &mut old)?;
        self.duplicate_some(u, &mut new)?;
        self.duplicate_some(u, &mut old)?;
        let mut dynamodb = self.stream_fields(u)?;
        dynamodb.push(("Keys".into(), J::Obj(vec![("PK".into(), av_s(pk)), ("SK".into(), av_s(sk))])));
        dynamodb.push(("NewImage".into(), J::Obj(new)));
        if !old.is_empty() || u.ratio(1, 2)? {
            dynamodb.push(("OldImage".into(), J::Obj(old)));
        }
        if u.ratio(1, 10)? {
            dynamodb.push(("StreamViewType".into(), s("NEW_AND_OLD_IMAGES")));
            dynamodb.push(("SizeBytes".into(), J::Raw("321".into())));
        }
        self.duplicate_some(u, &mut dynamodb)?;
        let mut rec = vec![("eventName".to_string(), s("MODIFY"))];
        if u.ratio(1, 10)? {
            rec.push(("eventID".into(), s("x")));
            rec.push(("awsRegion".into(), s("us-east-1")));
        }
        rec.push(("dynamodb".into(), J::Obj(dynamodb)));
        Ok(J::Obj(rec))
    }

    /// Extra attributes: usually none or a few, sometimes hundreds to
    /// thousands (wide images).
    fn noise(&mut self, u: &mut Unstructured, image: &mut Vec<(String, J)>) -> Result<()> {
        let n = match u.int_in_range(0..=63u8)? {
            0 if !self.wide => {
                self.wide = true;
                u.int_in_range(200..=3000)?
            }
            1..=12 => u.int_in_range(1..=6)?,
            _ => 0,
        };
        for i in 0..n {
            let name = if i < 8 { self.name(u)? } else { format!("attr{i}") };
            let v = self.attribute_value(u, 2)?;
            image.push((name, v));
        }
        Ok(())
    }

    /// A DynamoDB JSON value of any type, sometimes malformed.
    fn attribute_value(&mut self, u: &mut Unstructured, depth: u32) -> Result<J> {
        Ok(match u.int_in_range(0..=11u8)? {
            0 | 1 => av_s(self.name(u)?),
            2 | 3 => av_n(self.number(u)?),
            4 => typed("BOOL", J::Raw("true".into())),
            5 => typed("NULL", J::Raw("true".into())),
            6 if depth > 0 => {
                let n = u.int_in_range(0..=3)?;
                let mut m = Vec::new();
                for _ in 0..n {
                    let k = self.name(u)?;
                    m.push((k, self.attribute_value(u, depth - 1)?));
                }
                typed("M", J::Obj(m))
            }
            7 if depth > 0 => {
                let n = u.int_in_range(0..=3)?;
                let mut l = Vec::new();
                for _ in 0..n {
                    l.push(self.attribute_value(u, depth - 1)?);
                }
                typed("L", J::Arr(l))
            }
            8 => typed("SS", J::Arr(vec![s("a"), s(self.name(u)?)])),
            9 => typed("NS", J::Arr(vec![s(self.number(u)?)])),
            10 => typed("B", s("AAEC")),
            _ => J::Raw(
                u.choose(&["{}", "{\"S\":1}", "{\"N\":null}", "{\"S\":\"a\",\"N\":\"1\"}", "\"x\"", "[]"])?.to_string(),
            ),
        })
    }

    /// Sometimes repeat one member (same key, maybe another value).
    fn duplicate_some(&mut self, u: &mut Unstructured, members: &mut Vec<(String, J)>) -> Result<()> {
        if members.is_empty() || !u.ratio(1, 10)? {
            return Ok(());
        }
        let i = u.choose_index(members.len())?;
        let (k, v) = members[i].clone();
        let v = if u.arbitrary()? { v } else { self.attribute_value(u, 1)? };
        let at = u.int_in_range(0..=members.len())?;
        members.insert(at, (k, v));
        Ok(())
    }

    fn audit_record(&mut self, u: &mut Unstructured) -> Result<J> {
        let ns = self.ident(u, &["ns", "n2"])?;
        let entity = self.ident(u, &["e1", "u1"])?;
        let pk = match u.int_in_range(0..=5u8)? {
            0 => format!("AUDIT#{entity}"),
            1 => format!("{ns}/ENTITY#{entity}"),
            _ => format!("{ns}/AUDIT#{entity}"),
        };
        let event_id = self.ident(u, &["01HX", "evt-1", "evt-2"])?;
        let sk = format!("#AUDIT#{event_id}");
        let mut old: Vec<(String, J)> = vec![("PK".into(), av_s(pk.clone())), ("SK".into(), av_s(sk.clone()))];
        if u.ratio(3, 4)? {
            old.push(("event_id".into(), av_s(event_id)));
        }
        old.push(("entity_id".into(), av_s(entity)));
        if u.ratio(4, 5)? {
            old.push(("action".into(), av_s(self.ident(u, &["limit_set", "entity_deleted", ""])?)));
        }
        let ts = match u.int_in_range(0..=6u8)? {
            0 => None,
            1 => Some(self.name(u)?),
            2 => Some(
                u.choose(&[
                    "2024-01-15T23:30:00-05:00",
                    "9999-12-31T23:59:59-01:00",
                    "0001-01-01T00:00:00+01:00",
                    "2024-02-30T00:00:00Z",
                    "2024-01-01",
                ])?
                .to_string(),
            ),
            _ => Some(format!("2024-0{}-1{}T10:00:00Z", u.int_in_range(1..=9u8)?, u.int_in_range(0..=9u8)?)),
        };
        if let Some(ts) = ts {
            old.push(("timestamp".into(), av_s(ts)));
        }
        if u.ratio(1, 2)? {
            let d = self.attribute_value(u, 3)?;
            old.push(("details".into(), d));
        }
        self.noise(u, &mut old)?;
        self.duplicate_some(u, &mut old)?;
        let mut dynamodb = self.stream_fields(u)?;
        if u.ratio(7, 8)? {
            dynamodb.push(("Keys".into(), J::Obj(vec![("PK".into(), av_s(pk)), ("SK".into(), av_s(sk))])));
        }
        if u.ratio(7, 8)? {
            dynamodb.push(("OldImage".into(), J::Obj(old)));
        }
        Ok(J::Obj(vec![("eventName".into(), s("REMOVE")), ("dynamodb".into(), J::Obj(dynamodb))]))
    }

    /// An item as the host would observe it after a watermark conflict:
    /// mostly watermark maps near the batch's sequence numbers.
    fn observed_item(&mut self, u: &mut Unstructured) -> Result<String> {
        if u.ratio(1, 8)? {
            return Ok(self.random_json(u, 3)?.render());
        }
        let mut m: Vec<(String, J)> = vec![("PK".into(), av_s("ns/ENTITY#e1")), ("SK".into(), av_s("#USAGE#x"))];
        let n = u.int_in_range(0..=4)?;
        for _ in 0..n {
            let source = self.ident(u, &["0", "1", "3", "ENTITY#e1", "ENTITY#u1"])?;
            let v = match u.int_in_range(0..=7u8)? {
                0..=3 => {
                    let base: u128 = 4_000_000_000_000_000_000_000;
                    av_s(format!("{:040}", base + u.int_in_range(0..=200u128)?))
                }
                4 => av_s(format!("{:040}", u.arbitrary::<u64>()?)),
                5 => av_n("4000000000000000000001"),
                6 => av_s(u.choose(&["", "1", &"9".repeat(41), &"x".repeat(40)])?.to_string()),
                _ => self.attribute_value(u, 1)?,
            };
            m.push((format!("wm#{source}"), v));
        }
        if u.ratio(1, 4)? {
            m.push(("tpm".into(), av_n(self.number(u)?)));
        }
        self.duplicate_some(u, &mut m)?;
        Ok(J::Obj(m).render())
    }
}

/// Environment variables for `Config::from_env`: the real names with valid,
/// borderline and garbage values, plus unknown names.
#[derive(Debug, Clone)]
pub struct EnvVars(pub Vec<(String, String)>);

impl<'a> Arbitrary<'a> for EnvVars {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        const NAMES: &[&str] = zae_planner::config::VARIABLES;
        const VALUES: &[&str] = &[
            "",
            " ",
            "hourly",
            "daily",
            "monthly",
            "hourly,daily,monthly",
            " hourly , daily ",
            "hourly,,daily",
            "daily,daily",
            "weekly",
            "HOURLY",
            "true",
            "TRUE",
            "Yes",
            "0",
            "1",
            "no",
            "maybe",
            "30",
            " 90 ",
            "36500",
            "36501",
            "1024",
            "1025",
            "-1",
            "+5",
            "1e3",
            "4294967296",
            "18446744073709551616",
            "999999999999",
            "9999999999999",
            "\u{feff}12",
            "0x10",
            "rate-limits",
            "audit-archive",
            "0.13",
            "0.17",
            "0.15.1",
            "0.18",
        ];
        let n = u.int_in_range(0..=8)?;
        let mut vars = Vec::with_capacity(n);
        for _ in 0..n {
            let k = if u.ratio(7, 8)? { u.choose(NAMES)?.to_string() } else { u.arbitrary()? };
            let v = if u.ratio(3, 4)? { u.choose(VALUES)?.to_string() } else { u.arbitrary()? };
            vars.push((k, v));
        }
        Ok(EnvVars(vars))
    }
}
