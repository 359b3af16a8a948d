//! A one-shard moto stream shown as several shards, one of which splits
//! (moto gives every table's stream a single shard that never closes).
//!
//! The fault proxy ([`super::fault_proxy::FaultProxy::split_stream`])
//! rewrites the Streams API calls through a [`SplitView`]:
//!
//! * records are dealt to shards by a hash of their item's `PK`, so every
//!   record of one item stays in one shard, in order, as in DynamoDB:
//!   class 0 to [`OTHER`], classes 1 and 2 to [`PARENT`];
//! * once [`SplitView::split_at`] names a sequence number X, `PARENT` is
//!   closed at X (its records up to X, then no next iterator), and its
//!   children [`CHILD_1`] (class 1) and [`CHILD_2`] (class 2) hold the
//!   later records; `OTHER` stays open;
//! * `DescribeStream` lists those shards (children only after the split);
//!   `GetShardIterator` and `GetRecords` map a shown shard and its
//!   iterator to the real ones and filter the real pages. A page whose
//!   records all belong to other shards is skipped over (as a real shard
//!   would not return it), so an empty page still means the shard's end.
//!
//! The ground truth is read from moto directly, not through the view.

use std::sync::Mutex;

use serde_json::{json, Value};

use super::rng::hash64;
use zae_aggregator::stream::seq_cmp;

/// The shard that splits.
pub const PARENT: &str = "shardId-00000000000000000001-0000000a";
/// A shard that stays open.
pub const OTHER: &str = "shardId-00000000000000000001-0000000b";
/// The first child of [`PARENT`].
pub const CHILD_1: &str = "shardId-00000000000000000002-000000a1";
/// The second child of [`PARENT`].
pub const CHILD_2: &str = "shardId-00000000000000000002-000000a2";

const SHOWN: [&str; 4] = [PARENT, OTHER, CHILD_1, CHILD_2];
const ITERATOR_TAG: &str = "zae-split";

#[derive(Default)]
struct ViewState {
    /// The real shard (learnt from the first `DescribeStream`).
    real_shard: Option<String>,
    /// Its first sequence number.
    real_start: Option<String>,
    /// Where `PARENT` closed.
    split_at: Option<String>,
}

/// The view; shared by every connection of the proxy.
#[derive(Default)]
pub struct SplitView {
    state: Mutex<ViewState>,
}

/// What a rewritten request needs to rewrite its response.
pub enum Pending {
    Describe,
    Iterator { shard: String, after: Option<String> },
    Records { shard: String, after: Option<String> },
}

/// The class of a Streams API record (`dynamodb.Keys.PK`).
fn class(record: &Value) -> u64 {
    hash64(&[record["dynamodb"]["Keys"]["PK"].to_string().as_bytes()]) % 3
}

fn seq(record: &Value) -> &str {
    record["dynamodb"]["SequenceNumber"].as_str().unwrap_or("")
}

fn later<'a>(a: Option<&'a str>, b: &'a str) -> &'a str {
    match a {
        Some(a) if seq_cmp(a, b).is_gt() => a,
        _ => b,
    }
}

/// One sequence number before `s` (for `AT_SEQUENCE_NUMBER`).
fn before(s: &str) -> Option<String> {
    s.parse::<u128>().ok().and_then(|n| n.checked_sub(1)).map(|n| n.to_string())
}

fn after(s: &str) -> Option<String> {
    s.parse::<u128>().ok().and_then(|n| n.checked_add(1)).map(|n| n.to_string())
}

impl SplitView {
    /// Close [`PARENT`] at `x` and open its children.
    pub fn split_at(&self, x: &str) {
        self.state.lock().unwrap().split_at = Some(x.to_string());
    }

    /// Whether the shown `shard` holds a record of `class` at `seq`.
    fn owns(&self, shard: &str, class: u64, seq: &str) -> bool {
        let st = self.state.lock().unwrap();
        let past_split = st.split_at.as_deref().is_some_and(|x| seq_cmp(seq, x).is_gt());
        match shard {
            OTHER => class == 0,
            PARENT => class != 0 && !past_split,
            CHILD_1 => class == 1 && past_split,
            CHILD_2 => class == 2 && past_split,
            _ => false,
        }
    }

    /// The shard list `DescribeStream` shows.
    fn shards(&self) -> Value {
        let st = self.state.lock().unwrap();
        let start = st.real_start.clone().unwrap_or_else(|| "0".into());
        match &st.split_at {
            None => json!([
                {"ShardId": PARENT, "SequenceNumberRange": {"StartingSequenceNumber": start}},
                {"ShardId": OTHER, "SequenceNumberRange": {"StartingSequenceNumber": start}},
            ]),
            Some(x) => {
                let child_start = after(x).unwrap_or_else(|| x.clone());
                json!([
                    {"ShardId": PARENT, "SequenceNumberRange": {"StartingSequenceNumber": start, "EndingSequenceNumber": x}},
                    {"ShardId": OTHER, "SequenceNumberRange": {"StartingSequenceNumber": start}},
                    {"ShardId": CHILD_1, "ParentShardId": PARENT, "SequenceNumberRange": {"StartingSequenceNumber": child_start}},
                    {"ShardId": CHILD_2, "ParentShardId": PARENT, "SequenceNumberRange": {"StartingSequenceNumber": child_start}},
                ])
            }
        }
    }

    /// Rewrite a Streams API request body for moto; `None` when the view
    /// has nothing to do with it (other operations, unknown shards).
    pub fn request(&self, operation: &str, body: &[u8]) -> Option<(Vec<u8>, Pending)> {
        if !operation.starts_with("DynamoDBStreams_") {
            return None;
        }
        let mut body: Value = serde_json::from_slice(body).ok()?;
        match operation.rsplit('.').next()? {
            "DescribeStream" => {
                // One real shard: show every shown shard in one page.
                body.as_object_mut()?.remove("ExclusiveStartShardId");
                Some((serde_json::to_vec(&body).ok()?, Pending::Describe))
            }
            "GetShardIterator" => {
                let shard = body["ShardId"].as_str()?.to_string();
                if !SHOWN.contains(&shard.as_str()) {
                    return None;
                }
                let real = self.state.lock().unwrap().real_shard.clone()?;
                let at = body["SequenceNumber"].as_str().map(str::to_string);
                let after = match (body["ShardIteratorType"].as_str()?, at) {
                    ("AFTER_SEQUENCE_NUMBER", Some(s)) => Some(s),
                    ("AT_SEQUENCE_NUMBER", Some(s)) => before(&s),
                    _ => None,
                };
                body["ShardId"] = json!(real);
                Some((serde_json::to_vec(&body).ok()?, Pending::Iterator { shard, after }))
            }
            "GetRecords" => {
                let it = body["ShardIterator"].as_str()?.to_string();
                let mut parts = it.splitn(4, '|');
                if parts.next()? != ITERATOR_TAG {
                    return None;
                }
                let shard = parts.next()?.to_string();
                let after = Some(parts.next()?).filter(|s| !s.is_empty()).map(str::to_string);
                body["ShardIterator"] = json!(parts.next()?);
                Some((serde_json::to_vec(&body).ok()?, Pending::Records { shard, after }))
            }
            _ => None,
        }
    }

    fn iterator(shard: &str, after: Option<&str>, real: &str) -> String {
        format!("{ITERATOR_TAG}|{shard}|{}|{real}", after.unwrap_or(""))
    }

    /// Rewrite moto's answer. For `GetRecords`, `next_page` fetches the
    /// real page after a real iterator (to skip pages of other shards).
    pub async fn response<F, Fut>(&self, pending: Pending, body: &[u8], next_page: F) -> Option<Vec<u8>>
    where
        F: Fn(String) -> Fut,
        Fut: std::future::Future<Output = Option<Value>>,
    {
        let mut body: Value = serde_json::from_slice(body).ok()?;
        match pending {
            Pending::Describe => {
                {
                    let mut st = self.state.lock().unwrap();
                    let real = &body["StreamDescription"]["Shards"][0];
                    if st.real_shard.is_none() {
                        st.real_shard = real["ShardId"].as_str().map(str::to_string);
                        st.real_start =
                            real["SequenceNumberRange"]["StartingSequenceNumber"].as_str().map(str::to_string);
                    }
                }
                let d = body["StreamDescription"].as_object_mut()?;
                d.insert("Shards".into(), self.shards());
                d.remove("LastEvaluatedShardId");
            }
            Pending::Iterator { shard, after } => {
                let real = body["ShardIterator"].as_str()?.to_string();
                body["ShardIterator"] = json!(Self::iterator(&shard, after.as_deref(), &real));
            }
            Pending::Records { shard, mut after } => {
                let mut page = body;
                loop {
                    let records = page["Records"].as_array().cloned().unwrap_or_default();
                    let real_next = page["NextShardIterator"].as_str().map(str::to_string);
                    if let Some(last) = records.last() {
                        after = Some(later(after.as_deref(), seq(last)).to_string());
                    }
                    let mine: Vec<Value> =
                        records.iter().filter(|r| self.owns(&shard, class(r), seq(r))).cloned().collect();
                    let split = self.state.lock().unwrap().split_at.clone();
                    let ended = shard == PARENT
                        && split.as_deref().is_some_and(|x| after.as_deref().is_some_and(|a| seq_cmp(a, x).is_ge()));
                    if !mine.is_empty() || records.is_empty() || ended || real_next.is_none() {
                        let mut out = json!({"Records": mine});
                        if let (false, Some(next)) = (ended, real_next) {
                            out["NextShardIterator"] = json!(Self::iterator(&shard, after.as_deref(), &next));
                        }
                        body = out;
                        break;
                    }
                    page = next_page(real_next?).await?;
                }
            }
        }
        serde_json::to_vec(&body).ok()
    }
}
