//! Deployment configuration and its validation from environment variables.
//!
//! The variables are the Python aggregator's (docs/specification.md#configuration) plus `MAX_SHARD_COUNT`.
//! Unlike upstream (W18), values are trimmed and validated: a bad value is a
//! start-up error naming the variable, never a per-record failure later.

use crate::plan::{ConfigError, ConfigProblem};
use crate::window::Window;

/// Default table name, as upstream.
pub const DEFAULT_TABLE_NAME: &str = "rate-limits";
/// Default snapshot lifetime in days, as upstream.
pub const DEFAULT_TTL_DAYS: u32 = 90;
/// Default bound for proactive shard doubling (W12).
pub const DEFAULT_MAX_SHARD_COUNT: u32 = 32;
/// Largest accepted `MAX_SHARD_COUNT`.
pub const MAX_SHARD_COUNT_LIMIT: u32 = 1024;
/// Largest accepted `SNAPSHOT_TTL_DAYS` (100 years).
pub const MAX_TTL_DAYS: u32 = 36_500;

/// Every variable [`Config::from_env`] reads, in the order the docs list
/// them (docs/specification.md#configuration).
pub const VARIABLES: &[&str] = &[
    "TABLE_NAME",
    "SNAPSHOT_WINDOWS",
    "SNAPSHOT_TTL_DAYS",
    "ENABLE_ARCHIVAL",
    "ARCHIVE_BUCKET_NAME",
    "MAX_SHARD_COUNT",
    "DEAD_LETTER_BUCKET",
    "ZAE_LIMITER_VERSION",
];

/// The zae-limiter semantics a deployment serves (WIT `limiter-semantics`,
/// docs/specification.md#limiter-versions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Limiter {
    /// zae-limiter 0.13.0.
    V013,
    /// zae-limiter 0.14 to 0.17 (0.17.0's aggregator).
    V017,
}

impl Limiter {
    /// The `ZAE_LIMITER_VERSION` spelling.
    pub fn name(self) -> &'static str {
        match self {
            Limiter::V013 => "0.13",
            Limiter::V017 => "0.17",
        }
    }
}

/// What a table's version record calls for (WIT `limiter-choice`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimiterChoice {
    /// The semantics.
    pub limiter: Limiter,
    /// The record's `lambda_version`.
    pub lambda_version: Option<String>,
    /// Why, in one sentence.
    pub reason: String,
}

/// The release part `(major, minor, patch)` of a zae-limiter version string as
/// its own parser reads one: `0.15.0`, `0.15.0rc1`, `0.15.0-dev`,
/// `0.1.dev1+g…` (two parts: patch 0), `0.15.0+local`.
pub fn parse_release(version: &str) -> Option<(u64, u64, u64)> {
    let v = version.trim();
    let v = v.strip_prefix('v').unwrap_or(v);
    let v = v.split('+').next()?;
    let mut parts = v.split('.');
    let num = |s: Option<&str>| -> Option<(u64, bool)> {
        let s = s?;
        let digits: String = s.chars().take_while(|c| c.is_ascii_digit()).collect();
        if digits.is_empty() || digits.len() > 9 {
            return None;
        }
        Some((digits.parse().ok()?, digits.len() == s.len()))
    };
    let (major, whole) = num(parts.next())?;
    if !whole {
        return None;
    }
    let (minor, minor_whole) = num(parts.next())?;
    if !minor_whole {
        // `0.15rc1`: a two-part release with a pre-release tag.
        return None;
    }
    let patch = match parts.next() {
        None => 0,
        Some(p) if p.starts_with("dev") => 0,
        Some(p) => num(Some(p))?.0,
    };
    Some((major, minor, patch))
}

/// The semantics a table's version record calls for
/// (docs/specification.md#limiter-versions): `item` is the `_/SYSTEM#` /
/// `#VERSION` item as DynamoDB JSON, `None` when the table has none.
pub fn limiter_from_version_record(item: Option<&str>) -> Result<LimiterChoice, ConfigError> {
    let problem = |message: String| ConfigError::new("ZAE_LIMITER_VERSION", ConfigProblem::UnknownValue, message);
    let Some(text) = item else {
        return Ok(LimiterChoice {
            limiter: Limiter::V013,
            lambda_version: None,
            reason: "the table has no version record (_/SYSTEM# #VERSION): serving zae-limiter 0.13".into(),
        });
    };
    let value: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| problem(format!("the table's version record is not JSON ({e}); set ZAE_LIMITER_VERSION")))?;
    let Some(map) = value.as_object() else {
        return Err(problem("the table's version record is not a DynamoDB JSON map; set ZAE_LIMITER_VERSION".into()));
    };
    let lambda_version = match map.get("lambda_version") {
        None => None,
        Some(v) => match v.get("S").and_then(|s| s.as_str()) {
            Some(s) => Some(s.to_string()),
            None if v.get("NULL").is_some() => None,
            None => {
                return Err(problem(format!(
                "the table's version record has a lambda_version that is not a string ({v}); set ZAE_LIMITER_VERSION"
            )))
            }
        },
    };
    let Some(version) = lambda_version.clone() else {
        return Ok(LimiterChoice {
            limiter: Limiter::V013,
            lambda_version: None,
            reason: "the table's version record has no lambda_version: serving zae-limiter 0.13".into(),
        });
    };
    let Some(release) = parse_release(&version) else {
        return Err(problem(format!(
            "the table's version record has lambda_version {version:?}, which is not a version; set ZAE_LIMITER_VERSION"
        )));
    };
    let (limiter, reason) = if release < (0, 14, 0) {
        (Limiter::V013, format!("the table's lambda_version is {version}, older than 0.14: serving zae-limiter 0.13"))
    } else if release < (0, 18, 0) {
        (Limiter::V017, format!("the table's lambda_version is {version} (0.14 to 0.17): serving zae-limiter 0.17"))
    } else {
        (
            Limiter::V017,
            format!(
                "the table's lambda_version is {version}, newer than 0.17, the newest release this aggregator \
                 knows: serving zae-limiter 0.17 (set ZAE_LIMITER_VERSION to choose)"
            ),
        )
    };
    Ok(LimiterChoice { limiter, lambda_version, reason })
}

/// Validated configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// DynamoDB table.
    pub table_name: String,
    /// Windows in write order, non-empty, unique.
    pub windows: Vec<Window>,
    /// Snapshot TTL in days.
    pub snapshot_ttl_days: u32,
    /// Archive bucket; `None` disables archival.
    pub archive_bucket: Option<String>,
    /// Dead-letter bucket; `None` keeps records that can never be applied
    /// failing (docs/specification.md#dead-letters).
    pub dead_letter_bucket: Option<String>,
    /// Maximum shard count.
    pub max_shard_count: u32,
    /// The zae-limiter semantics; `None` until the host has read the table's
    /// version record (`ZAE_LIMITER_VERSION` unset).
    pub limiter: Option<Limiter>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            table_name: DEFAULT_TABLE_NAME.to_string(),
            windows: vec![Window::Hourly, Window::Daily],
            snapshot_ttl_days: DEFAULT_TTL_DAYS,
            archive_bucket: None,
            dead_letter_bucket: None,
            max_shard_count: DEFAULT_MAX_SHARD_COUNT,
            limiter: Some(Limiter::V013),
        }
    }
}

impl Config {
    /// Check invariants of a config built by hand (hosts may build one directly).
    pub fn validate(&self) -> Result<(), ConfigError> {
        use ConfigProblem::*;
        if self.table_name.is_empty() {
            return Err(ConfigError::new("table-name", Empty, "table-name is empty"));
        }
        if self.windows.is_empty() {
            return Err(ConfigError::new("windows", Empty, "windows is empty"));
        }
        for (i, w) in self.windows.iter().enumerate() {
            if self.windows[..i].contains(w) {
                return Err(ConfigError::new("windows", Duplicate, format!("window {} is listed twice", w.name())));
            }
        }
        if self.snapshot_ttl_days == 0 || self.snapshot_ttl_days > MAX_TTL_DAYS {
            let message = format!("snapshot-ttl-days must be 1..={MAX_TTL_DAYS}");
            return Err(ConfigError::new("snapshot-ttl-days", OutOfRange, message));
        }
        if let Some(b) = &self.archive_bucket {
            if b.is_empty() {
                return Err(ConfigError::new("archive-bucket", Empty, "archive-bucket is empty"));
            }
        }
        if let Some(b) = &self.dead_letter_bucket {
            if b.is_empty() {
                return Err(ConfigError::new("dead-letter-bucket", Empty, "dead-letter-bucket is empty"));
            }
        }
        if self.max_shard_count == 0 || self.max_shard_count > MAX_SHARD_COUNT_LIMIT {
            let message = format!("max-shard-count must be 1..={MAX_SHARD_COUNT_LIMIT}");
            return Err(ConfigError::new("max-shard-count", OutOfRange, message));
        }
        Ok(())
    }

    /// Build from environment-style variables; unknown names are ignored, a
    /// name given twice takes its last value.
    pub fn from_env<'a, I>(vars: I) -> Result<Config, ConfigError>
    where
        I: IntoIterator<Item = (&'a str, &'a str)>,
    {
        let mut table = None;
        let mut windows = None;
        let mut ttl = None;
        let mut archival = None;
        let mut bucket = None;
        let mut max_shards = None;
        let mut dead_letter = None;
        let mut limiter = None;
        for (k, v) in vars {
            match k {
                "TABLE_NAME" => table = Some(v),
                "SNAPSHOT_WINDOWS" => windows = Some(v),
                "SNAPSHOT_TTL_DAYS" => ttl = Some(v),
                "ENABLE_ARCHIVAL" => archival = Some(v),
                "ARCHIVE_BUCKET_NAME" => bucket = Some(v),
                "MAX_SHARD_COUNT" => max_shards = Some(v),
                "DEAD_LETTER_BUCKET" => dead_letter = Some(v),
                "ZAE_LIMITER_VERSION" => limiter = Some(v),
                _ => {}
            }
        }
        let mut cfg = Config::default();
        if let Some(t) = table {
            let t = t.trim();
            if t.is_empty() {
                return Err(ConfigError::new("TABLE_NAME", ConfigProblem::Empty, "TABLE_NAME is set but empty"));
            }
            cfg.table_name = t.to_string();
        }
        if let Some(w) = windows {
            cfg.windows = parse_windows(w)
                .map_err(|(p, e)| ConfigError::new("SNAPSHOT_WINDOWS", p, format!("SNAPSHOT_WINDOWS={w:?}: {e}")))?;
        }
        if let Some(t) = ttl {
            cfg.snapshot_ttl_days = parse_bounded(t, 1, MAX_TTL_DAYS)
                .map_err(|(p, e)| ConfigError::new("SNAPSHOT_TTL_DAYS", p, format!("SNAPSHOT_TTL_DAYS={t:?}: {e}")))?;
        }
        let archival_on = match archival.map(|a| a.trim().to_ascii_lowercase()) {
            None => false,
            Some(a) if a == "true" || a == "1" || a == "yes" => true,
            Some(a) if a == "false" || a == "0" || a == "no" || a.is_empty() => false,
            Some(_) => {
                let message = format!("ENABLE_ARCHIVAL={:?}: expected true or false", archival.unwrap_or_default());
                return Err(ConfigError::new("ENABLE_ARCHIVAL", ConfigProblem::UnknownValue, message));
            }
        };
        let bucket = bucket.map(str::trim).filter(|b| !b.is_empty());
        if archival_on {
            match bucket {
                Some(b) => cfg.archive_bucket = Some(b.to_string()),
                None => {
                    let message = "ENABLE_ARCHIVAL is true but ARCHIVE_BUCKET_NAME is empty or unset";
                    return Err(ConfigError::new("ARCHIVE_BUCKET_NAME", ConfigProblem::RequiresOther, message));
                }
            }
        }
        // The dead letter defaults to the archive bucket (under its own
        // prefix); `none` turns it off.
        cfg.dead_letter_bucket = match dead_letter.map(str::trim) {
            Some("none") => None,
            Some(b) if !b.is_empty() => Some(b.to_string()),
            _ => cfg.archive_bucket.clone(),
        };
        if let Some(m) = max_shards {
            cfg.max_shard_count = parse_bounded(m, 1, MAX_SHARD_COUNT_LIMIT)
                .map_err(|(p, e)| ConfigError::new("MAX_SHARD_COUNT", p, format!("MAX_SHARD_COUNT={m:?}: {e}")))?;
        }
        cfg.limiter = match limiter.map(str::trim) {
            None | Some("") => None,
            Some("0.13") | Some("0.13.0") => Some(Limiter::V013),
            Some(v) if matches!(parse_release(v), Some((0, 14..=17, _))) => Some(Limiter::V017),
            Some(_) => {
                let message = format!(
                    "ZAE_LIMITER_VERSION={:?}: expected 0.13 or 0.17 (any 0.14 to 0.17 release reads as 0.17)",
                    limiter.unwrap_or_default()
                );
                return Err(ConfigError::new("ZAE_LIMITER_VERSION", ConfigProblem::UnknownValue, message));
            }
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// The semantics to plan with: a configuration whose limiter the host
    /// has not chosen cannot be planned with.
    pub fn limiter(&self) -> Result<Limiter, ConfigError> {
        self.limiter.ok_or_else(|| {
            ConfigError::new(
                "limiter",
                ConfigProblem::RequiresOther,
                "limiter is not chosen: set ZAE_LIMITER_VERSION, or read the table's version record and pass it \
                 to limiter-from-version-record",
            )
        })
    }
}

fn parse_windows(s: &str) -> Result<Vec<Window>, (ConfigProblem, String)> {
    let mut out = Vec::new();
    for part in s.split(',') {
        let p = part.trim();
        if p.is_empty() {
            return Err((ConfigProblem::Empty, "empty window name".into()));
        }
        let w = Window::parse(p).ok_or_else(|| {
            (ConfigProblem::UnknownValue, format!("unknown window {p:?} (expected hourly, daily or monthly)"))
        })?;
        if out.contains(&w) {
            return Err((ConfigProblem::Duplicate, format!("window {p} is listed twice")));
        }
        out.push(w);
    }
    Ok(out)
}

fn parse_bounded(s: &str, lo: u32, hi: u32) -> Result<u32, (ConfigProblem, String)> {
    let t = s.trim();
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) && t.len() > 12 {
        return Err((ConfigProblem::OutOfRange, format!("must be between {lo} and {hi}")));
    }
    let n: u64 = t.parse().map_err(|_| (ConfigProblem::NotANumber, "not a whole number".to_string()))?;
    if n < lo as u64 || n > hi as u64 {
        return Err((ConfigProblem::OutOfRange, format!("must be between {lo} and {hi}")));
    }
    Ok(n as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_upstream() {
        let c = Config::from_env([]).unwrap();
        assert_eq!(c.table_name, "rate-limits");
        assert_eq!(c.windows, vec![Window::Hourly, Window::Daily]);
        assert_eq!(c.snapshot_ttl_days, 90);
        assert_eq!(c.archive_bucket, None);
        assert_eq!(c.max_shard_count, 32);
        assert_eq!(c.limiter, None, "unset: the host reads the table's version record");
    }

    #[test]
    fn the_limiter_version_is_validated() {
        for (v, want) in [("0.13", Limiter::V013), ("0.17", Limiter::V017), (" 0.15.1 ", Limiter::V017)] {
            assert_eq!(Config::from_env([("ZAE_LIMITER_VERSION", v)]).unwrap().limiter, Some(want), "{v}");
        }
        for v in ["0.12", "0.18", "latest", "0.1x"] {
            let e = Config::from_env([("ZAE_LIMITER_VERSION", v)]).unwrap_err();
            assert_eq!((e.setting.as_str(), e.problem), ("ZAE_LIMITER_VERSION", ConfigProblem::UnknownValue), "{v}");
            assert!(e.message.contains("0.13 or 0.17"), "{e}");
        }
        let unchosen = Config { limiter: None, ..Config::default() };
        assert_eq!(unchosen.limiter().unwrap_err().setting, "limiter");
    }

    #[test]
    fn version_strings_read_as_zae_limiter_reads_them() {
        assert_eq!(parse_release("0.17.0"), Some((0, 17, 0)));
        assert_eq!(parse_release("0.15.0rc1"), Some((0, 15, 0)));
        assert_eq!(parse_release("0.15.0rc1.dev3+gabc"), Some((0, 15, 0)));
        assert_eq!(parse_release("0.1.dev1+ge76be32"), Some((0, 1, 0)));
        assert_eq!(parse_release("0.15.0+d20260926"), Some((0, 15, 0)));
        assert_eq!(parse_release("1.2"), Some((1, 2, 0)));
        assert_eq!(parse_release("0.15rc1"), None);
        assert_eq!(parse_release("x.1.2"), None);
        assert_eq!(parse_release(""), None);
    }

    #[test]
    fn the_version_record_chooses_the_semantics() {
        let choose = |item: Option<&str>| limiter_from_version_record(item);
        assert_eq!(choose(None).unwrap().limiter, Limiter::V013);
        let rec = |v: &str| {
            format!(r##"{{"PK":{{"S":"_/SYSTEM#"}},"SK":{{"S":"#VERSION"}},"lambda_version":{{"S":"{v}"}}}}"##)
        };
        for (v, want) in [
            ("0.13.0", Limiter::V013),
            ("0.9.2", Limiter::V013),
            ("0.14.0", Limiter::V017),
            ("0.16.0", Limiter::V017),
            ("0.17.0", Limiter::V017),
            ("0.17.1rc2", Limiter::V017),
            ("0.19.0", Limiter::V017),
        ] {
            let c = choose(Some(&rec(v))).unwrap();
            assert_eq!((c.limiter, c.lambda_version.as_deref()), (want, Some(v)), "{v}");
            assert!(c.reason.contains(v), "{}", c.reason);
        }
        assert!(choose(Some(&rec("0.19.0"))).unwrap().reason.contains("newer than 0.17"));
        let none = choose(Some(r##"{"PK":{"S":"_/SYSTEM#"},"schema_version":{"S":"0.10.0"}}"##)).unwrap();
        assert_eq!((none.limiter, none.lambda_version), (Limiter::V013, None));
        for bad in [r#"[1]"#, "nope", r#"{"lambda_version":{"N":"17"}}"#, &rec("banana")] {
            let e = choose(Some(bad)).unwrap_err();
            assert_eq!(e.setting, "ZAE_LIMITER_VERSION", "{bad}");
            assert!(e.message.contains("set ZAE_LIMITER_VERSION"), "{e}");
        }
    }

    #[test]
    fn windows_are_trimmed_and_validated_w18() {
        let c = Config::from_env([("SNAPSHOT_WINDOWS", "hourly, daily ,monthly")]).unwrap();
        assert_eq!(c.windows, vec![Window::Hourly, Window::Daily, Window::Monthly]);
        let e = Config::from_env([("SNAPSHOT_WINDOWS", "hourly,weekly")]).unwrap_err();
        assert!(e.message.contains("SNAPSHOT_WINDOWS") && e.message.contains("weekly"), "{e}");
        assert_eq!((e.setting.as_str(), e.problem), ("SNAPSHOT_WINDOWS", ConfigProblem::UnknownValue));
        assert_eq!(Config::from_env([("SNAPSHOT_WINDOWS", "")]).unwrap_err().problem, ConfigProblem::Empty);
        let e = Config::from_env([("SNAPSHOT_WINDOWS", "daily,daily")]).unwrap_err();
        assert_eq!(e.problem, ConfigProblem::Duplicate);
    }

    #[test]
    fn archival_needs_a_bucket() {
        let e = Config::from_env([("ENABLE_ARCHIVAL", "true")]).unwrap_err();
        assert!(e.message.contains("ARCHIVE_BUCKET_NAME"), "{e}");
        assert_eq!((e.setting.as_str(), e.problem), ("ARCHIVE_BUCKET_NAME", ConfigProblem::RequiresOther));
        let c = Config::from_env([("ENABLE_ARCHIVAL", "TRUE"), ("ARCHIVE_BUCKET_NAME", "b")]).unwrap();
        assert_eq!(c.archive_bucket.as_deref(), Some("b"));
        assert_eq!(c.dead_letter_bucket.as_deref(), Some("b"), "the dead letter defaults to the archive bucket");
        let c = Config::from_env([("ENABLE_ARCHIVAL", "false"), ("ARCHIVE_BUCKET_NAME", "b")]).unwrap();
        assert_eq!(c.archive_bucket, None);
        let e = Config::from_env([("ENABLE_ARCHIVAL", "maybe")]).unwrap_err();
        assert_eq!((e.setting.as_str(), e.problem), ("ENABLE_ARCHIVAL", ConfigProblem::UnknownValue));
    }

    #[test]
    fn the_dead_letter_bucket_is_its_own_or_the_archive_bucket() {
        assert_eq!(Config::from_env([]).unwrap().dead_letter_bucket, None);
        let c = Config::from_env([("DEAD_LETTER_BUCKET", " dl ")]).unwrap();
        assert_eq!(c.dead_letter_bucket.as_deref(), Some("dl"));
        let c =
            Config::from_env([("ENABLE_ARCHIVAL", "true"), ("ARCHIVE_BUCKET_NAME", "a"), ("DEAD_LETTER_BUCKET", "dl")])
                .unwrap();
        assert_eq!((c.archive_bucket.as_deref(), c.dead_letter_bucket.as_deref()), (Some("a"), Some("dl")));
        let c = Config::from_env([
            ("ENABLE_ARCHIVAL", "true"),
            ("ARCHIVE_BUCKET_NAME", "a"),
            ("DEAD_LETTER_BUCKET", "none"),
        ])
        .unwrap();
        assert_eq!(c.dead_letter_bucket, None, "none turns the default off");
        let c = Config { dead_letter_bucket: Some(String::new()), ..Config::default() };
        assert_eq!(c.validate().unwrap_err().setting, "dead-letter-bucket");
    }

    #[test]
    fn numbers_are_bounded() {
        let e = Config::from_env([("SNAPSHOT_TTL_DAYS", "abc")]).unwrap_err();
        assert!(e.message.contains("SNAPSHOT_TTL_DAYS"), "{e}");
        assert_eq!((e.setting.as_str(), e.problem), ("SNAPSHOT_TTL_DAYS", ConfigProblem::NotANumber));
        assert_eq!(Config::from_env([("SNAPSHOT_TTL_DAYS", "0")]).unwrap_err().problem, ConfigProblem::OutOfRange);
        let huge = Config::from_env([("SNAPSHOT_TTL_DAYS", "99999999999999999999999")]).unwrap_err();
        assert_eq!(huge.problem, ConfigProblem::OutOfRange);
        assert_eq!(Config::from_env([("SNAPSHOT_TTL_DAYS", " 30 ")]).unwrap().snapshot_ttl_days, 30);
        assert!(Config::from_env([("MAX_SHARD_COUNT", "0")]).is_err());
        assert_eq!(Config::from_env([("MAX_SHARD_COUNT", "64")]).unwrap().max_shard_count, 64);
        assert!(Config::from_env([("TABLE_NAME", " ")]).is_err());
    }

    #[test]
    fn validate_rejects_hand_built_nonsense() {
        let mut c = Config::default();
        c.windows.clear();
        assert_eq!(c.validate().unwrap_err().setting, "windows");
        let c = Config { archive_bucket: Some(String::new()), ..Config::default() };
        assert_eq!(c.validate().unwrap_err().setting, "archive-bucket");
    }
}
