//! A fault-injecting HTTP/1.1 proxy on 127.0.0.1 between the host (its AWS
//! SDK clients) and the moto server.
//!
//! Every request is read whole, logged, and then, as the [`Policy`] decides:
//!
//! * forwarded normally;
//! * [`Fault::DropResponse`]: forwarded, the write applies in moto, and the
//!   connection is closed without a response (the client sees an I/O error);
//! * [`Fault::InternalError`]: answered `500` without forwarding;
//! * [`Fault::ProvisionedThroughputExceeded`] / [`Fault::Throttling`]:
//!   answered with DynamoDB's `ProvisionedThroughputExceededException` /
//!   `ThrottlingException` (S3 requests get `503 SlowDown`) without forwarding;
//! * [`Fault::Stall`]: held longer than the client's timeout, then forwarded
//!   anyway (the write lands after the client gave up, possibly after its
//!   retry did).
//!
//! Independently of the policy, a listener can be *armed* ([`FaultProxy::arm`])
//! to let a number of requests through and then hold every later one (the
//! first optionally forwarded, its response withheld), and to tell the test
//! when that point is reached: the test then kills the host process (or drops
//! an in-process invocation) with writes landed and requests in flight, as a
//! Lambda crash or timeout would.
//!
//! Random decisions are a pure function of (seed, request content, how many
//! times that content was seen), never of timing, so a seed reproduces its
//! faults even though requests run concurrently.
//!
//! DynamoDB applies each write to an item atomically (a conditional write is
//! checked and applied as one step). moto does not: its `update_item` reads
//! the item, evaluates the condition and then applies the update without a
//! lock, and its server is threaded, so two concurrent conditional writes to
//! one item can both pass their conditions (we saw exactly that as double
//! counts when an abandoned invocation's last requests landed next to its
//! retry). The proxy therefore forwards the writes to one item one at a
//! time, which is the atomicity DynamoDB guarantees; writes to different
//! items still run concurrently.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use super::rng::{hash64, unit_hash};
use super::split_stream::SplitView;

/// One kind of injected fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Fault {
    /// Forward, let the write apply, then close the connection without an answer.
    DropResponse,
    /// Answer HTTP 500 without forwarding.
    InternalError,
    /// Answer `ProvisionedThroughputExceededException` (S3: 503 SlowDown).
    ProvisionedThroughputExceeded,
    /// Answer `ThrottlingException` (S3: 503 SlowDown).
    Throttling,
    /// Hold past the client's timeout, then forward.
    Stall,
}

impl Fault {
    /// Every kind.
    pub const ALL: [Fault; 5] = [
        Fault::DropResponse,
        Fault::InternalError,
        Fault::ProvisionedThroughputExceeded,
        Fault::Throttling,
        Fault::Stall,
    ];

    /// A short stable name.
    pub fn name(self) -> &'static str {
        match self {
            Fault::DropResponse => "drop-response",
            Fault::InternalError => "http-500",
            Fault::ProvisionedThroughputExceeded => "provisioned-throughput-exceeded",
            Fault::Throttling => "throttling-exception",
            Fault::Stall => "stall-past-timeout",
        }
    }
}

/// Seeded random faults.
#[derive(Debug, Clone)]
pub struct RandomPolicy {
    /// Seed of every decision.
    pub seed: u64,
    /// Probability that a request is faulted.
    pub rate: f64,
    /// Kinds to choose from (uniformly).
    pub kinds: Vec<Fault>,
    /// Most faults injected under this policy.
    pub budget: u64,
    /// The same request content is faulted only on its first this-many
    /// sightings, so a retried request eventually passes.
    pub max_per_request: u32,
}

/// What the proxy does to requests.
#[derive(Debug, Clone)]
pub enum Policy {
    /// Forward everything.
    Pass,
    /// Fault the requests with these ordinals (0-based, over every listener,
    /// counted from when the policy was set).
    Script(BTreeMap<u64, Fault>),
    /// Seeded random faults.
    Random(RandomPolicy),
}

/// What happens at an armed listener's hold point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldMode {
    /// Hold the request without forwarding it.
    BeforeForward,
    /// Forward the request (the write lands), withhold the response.
    AfterForward,
}

/// One request the proxy saw.
#[derive(Debug, Clone)]
pub struct Logged {
    /// The listener it arrived on.
    pub listener: usize,
    /// Arrival order over the whole proxy.
    pub ordinal: u64,
    /// `X-Amz-Target` (`DynamoDB_20120810.UpdateItem`), or `S3 {METHOD}`.
    pub operation: String,
    /// Request path.
    pub path: String,
    /// Request body (as sent).
    pub body: Vec<u8>,
    /// The fault injected, if any.
    pub fault: Option<Fault>,
    /// Held at an armed listener's hold point.
    pub held: bool,
    /// Sent to moto.
    pub forwarded: bool,
    /// moto's HTTP status, when forwarded and answered.
    pub status: Option<u16>,
    /// moto's error type (`ConditionalCheckFailedException`, ...), if any.
    pub error_type: Option<String>,
    /// A response (moto's or an injected one) reached the client.
    pub delivered: bool,
}

impl Logged {
    /// Whether moto applied this request (forwarded and answered 200).
    pub fn applied(&self) -> bool {
        self.forwarded && self.status == Some(200)
    }

    /// The DynamoDB request body as JSON.
    pub fn json(&self) -> Option<Value> {
        if self.operation.starts_with("DynamoDB_") {
            serde_json::from_slice(&self.body).ok()
        } else {
            None
        }
    }

    /// `UpdateItem`, `PutItem`, ... for DynamoDB requests.
    pub fn dynamodb_op(&self) -> Option<&str> {
        self.operation.strip_prefix("DynamoDB_20120810.")
    }
}

struct Arm {
    remaining: u64,
    mode: HoldMode,
    fire: Option<oneshot::Sender<()>>,
    forwarded_one: bool,
    release: watch::Receiver<bool>,
}

#[derive(Default)]
struct ListenerState {
    arm: Option<Arm>,
    release: Option<watch::Sender<bool>>,
}

struct State {
    policy: Policy,
    policy_base: u64,
    ordinal: u64,
    occurrences: HashMap<u64, u32>,
    random_used: u64,
    injected: BTreeMap<Fault, u64>,
    log: Vec<Logged>,
    listeners: Vec<ListenerState>,
    client_gave_up: u64,
}

struct Shared {
    upstream: SocketAddr,
    stall: Duration,
    state: Mutex<State>,
    in_flight: AtomicUsize,
    /// One lock per DynamoDB item (table, PK, SK): DynamoDB's per-item atomicity.
    item_locks: Mutex<HashMap<u64, Arc<tokio::sync::Mutex<()>>>>,
    /// Sabotage for the tests of the tests: forward snapshot writes without
    /// their watermark condition (upstream's blind ADD).
    strip_snapshot_conditions: std::sync::atomic::AtomicBool,
    /// The Streams API seen through a split view, once set.
    split: std::sync::OnceLock<Arc<SplitView>>,
}

enum Action {
    Forward,
    Fault(Fault),
    Hold { forward: bool, fire: Option<oneshot::Sender<()>>, release: watch::Receiver<bool> },
}

/// The proxy. Dropping it stops accepting connections and releases every
/// held request.
pub struct FaultProxy {
    shared: Arc<Shared>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        for t in self.tasks.lock().unwrap().drain(..) {
            t.abort();
        }
        let mut st = self.shared.state.lock().unwrap();
        for l in &mut st.listeners {
            l.arm = None;
            if let Some(tx) = l.release.take() {
                let _ = tx.send(true);
            }
        }
    }
}

impl FaultProxy {
    /// A proxy in front of `127.0.0.1:upstream_port`; a stalled request is
    /// held for `stall` (longer than the clients' timeout) before it is forwarded.
    pub fn new(upstream_port: u16, stall: Duration) -> FaultProxy {
        FaultProxy {
            shared: Arc::new(Shared {
                upstream: SocketAddr::from(([127, 0, 0, 1], upstream_port)),
                stall,
                state: Mutex::new(State {
                    policy: Policy::Pass,
                    policy_base: 0,
                    ordinal: 0,
                    occurrences: HashMap::new(),
                    random_used: 0,
                    injected: BTreeMap::new(),
                    log: Vec::new(),
                    listeners: Vec::new(),
                    client_gave_up: 0,
                }),
                in_flight: AtomicUsize::new(0),
                item_locks: Mutex::new(HashMap::new()),
                strip_snapshot_conditions: std::sync::atomic::AtomicBool::new(false),
                split: std::sync::OnceLock::new(),
            }),
            tasks: Mutex::new(Vec::new()),
        }
    }

    /// Open a new listener on a free 127.0.0.1 port; returns `(listener id, port)`.
    pub async fn listen(&self) -> (usize, u16) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("binding the fault proxy on 127.0.0.1");
        let port = listener.local_addr().expect("proxy address").port();
        let id = {
            let mut st = self.shared.state.lock().unwrap();
            st.listeners.push(ListenerState::default());
            st.listeners.len() - 1
        };
        let shared = self.shared.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let _ = stream.set_nodelay(true);
                tokio::spawn(handle(shared.clone(), id, stream));
            }
        });
        self.tasks.lock().unwrap().push(task);
        (id, port)
    }

    /// Show the Streams API through a [`SplitView`] from now on: several
    /// shards, one of which splits when the test says so.
    pub fn split_stream(&self) -> Arc<SplitView> {
        self.shared.split.get_or_init(|| Arc::new(SplitView::default())).clone()
    }

    /// Replace the policy; script ordinals count from now.
    pub fn set_policy(&self, policy: Policy) {
        let mut st = self.shared.state.lock().unwrap();
        st.policy_base = st.ordinal;
        st.random_used = 0;
        st.policy = policy;
    }

    /// Let `pass` more requests through on `listener`, then hold every later
    /// one; the receiver fires when the hold point is reached (for
    /// [`HoldMode::AfterForward`], once the held request's write applied).
    pub fn arm(&self, listener: usize, pass: u64, mode: HoldMode) -> oneshot::Receiver<()> {
        let (fire_tx, fire_rx) = oneshot::channel();
        let (release_tx, release_rx) = watch::channel(false);
        let mut st = self.shared.state.lock().unwrap();
        let l = &mut st.listeners[listener];
        if let Some(old) = l.release.take() {
            let _ = old.send(true);
        }
        l.arm = Some(Arm { remaining: pass, mode, fire: Some(fire_tx), forwarded_one: false, release: release_rx });
        l.release = Some(release_tx);
        fire_rx
    }

    /// Disarm `listener` and drop every request held there (never forwarded).
    pub fn release(&self, listener: usize) {
        let mut st = self.shared.state.lock().unwrap();
        let l = &mut st.listeners[listener];
        l.arm = None;
        if let Some(tx) = l.release.take() {
            let _ = tx.send(true);
        }
    }

    /// Wait until no request is being handled (stalled ones included), so
    /// every write that will ever land has landed. Panics after a minute.
    pub async fn quiesce(&self) {
        // Quiet means: nothing in flight and no new request for 250 ms in a
        // row. A request still being received (a killed child's or an
        // abandoned invocation's connection task, starved of CPU on a
        // loaded machine) is not in flight yet; the quiet period gives it
        // time to arrive, so that the verdict never reads the table while a
        // write is on its way.
        const QUIET: Duration = Duration::from_millis(250);
        let started = Instant::now();
        let mut quiet_since: Option<(Instant, u64)> = None;
        loop {
            let seen = self.request_count();
            if self.shared.in_flight.load(Ordering::SeqCst) != 0 {
                quiet_since = None;
            } else {
                match quiet_since {
                    Some((since, count)) if count == seen => {
                        if since.elapsed() >= QUIET {
                            return;
                        }
                    }
                    _ => quiet_since = Some((Instant::now(), seen)),
                }
            }
            assert!(started.elapsed() < Duration::from_secs(60), "the fault proxy did not quiesce within a minute");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Sabotage (to show the checks can fail): from now on, forward
    /// snapshot writes (`#USAGE#` items) without their ConditionExpression,
    /// as upstream's blind `ADD` would be.
    pub fn strip_snapshot_conditions(&self, on: bool) {
        self.shared.strip_snapshot_conditions.store(on, Ordering::SeqCst);
    }

    /// Every request seen so far.
    pub fn log(&self) -> Vec<Logged> {
        self.shared.state.lock().unwrap().log.clone()
    }

    /// Requests seen so far.
    pub fn request_count(&self) -> u64 {
        self.shared.state.lock().unwrap().ordinal
    }

    /// Faults injected so far, by kind.
    pub fn injected(&self) -> BTreeMap<Fault, u64> {
        self.shared.state.lock().unwrap().injected.clone()
    }

    /// Responses the client was no longer there to receive (timeouts,
    /// killed processes, abandoned invocations).
    pub fn client_gave_up(&self) -> u64 {
        self.shared.state.lock().unwrap().client_gave_up
    }
}

impl Shared {
    fn decide(&self, listener: usize, req: &Request) -> (Action, usize) {
        let mut st = self.state.lock().unwrap();
        let ordinal = st.ordinal;
        st.ordinal += 1;
        let operation = req.operation();
        let index = st.log.len();
        st.log.push(Logged {
            listener,
            ordinal,
            operation: operation.clone(),
            path: req.path.clone(),
            body: req.decoded_body.clone(),
            fault: None,
            held: false,
            forwarded: false,
            status: None,
            error_type: None,
            delivered: false,
        });
        if let Some(arm) = st.listeners[listener].arm.as_mut() {
            if arm.remaining == 0 {
                let forward = arm.mode == HoldMode::AfterForward && !arm.forwarded_one;
                arm.forwarded_one |= forward;
                let action = Action::Hold { forward, fire: arm.fire.take(), release: arm.release.clone() };
                st.log[index].held = true;
                return (action, index);
            }
            arm.remaining -= 1;
        }
        let base = st.policy_base;
        let fault = match &st.policy {
            Policy::Pass => None,
            Policy::Script(script) => script.get(&(ordinal - base)).copied(),
            Policy::Random(p) => {
                let p = p.clone();
                let key = hash64(&[operation.as_bytes(), req.path.as_bytes(), req.canonical_body().as_bytes()]);
                let seen = st.occurrences.entry(key).or_insert(0);
                let occurrence = *seen;
                *seen += 1;
                if occurrence >= p.max_per_request || st.random_used >= p.budget || p.kinds.is_empty() {
                    None
                } else {
                    let (seed, key, occ) = (p.seed.to_le_bytes(), key.to_le_bytes(), occurrence.to_le_bytes());
                    if unit_hash(&[&seed, &key, &occ]) < p.rate {
                        st.random_used += 1;
                        let pick = hash64(&[&seed, &key, &occ, b"kind"]) % p.kinds.len() as u64;
                        Some(p.kinds[pick as usize])
                    } else {
                        None
                    }
                }
            }
        };
        match fault {
            None => (Action::Forward, index),
            Some(f) => {
                *st.injected.entry(f).or_insert(0) += 1;
                st.log[index].fault = Some(f);
                (Action::Fault(f), index)
            }
        }
    }

    /// Forward `req` to moto; writes to one DynamoDB item go one at a time.
    async fn forward(&self, req: &Request) -> Result<Response, String> {
        let lock = req.item_key().map(|k| self.item_locks.lock().unwrap().entry(k).or_default().clone());
        let _guard = match &lock {
            Some(l) => Some(l.lock().await),
            None => None,
        };
        if self.strip_snapshot_conditions.load(Ordering::SeqCst) {
            if let Some(stripped) = req.without_snapshot_condition() {
                return forward(self.upstream, &stripped).await;
            }
        }
        if let Some(view) = self.split.get() {
            let op = req.operation();
            if let Some((body, pending)) = view.request(&op, &req.decoded_body) {
                let mut response = forward(self.upstream, &req.with_body(body)).await?;
                if response.status != 200 {
                    return Ok(response);
                }
                let upstream = self.upstream;
                let next_page = |iterator: String| {
                    let page =
                        req.with_body(serde_json::to_vec(&serde_json::json!({"ShardIterator": iterator})).unwrap());
                    async move {
                        let r = forward(upstream, &page).await.ok().filter(|r| r.status == 200)?;
                        serde_json::from_slice::<Value>(&r.body).ok()
                    }
                };
                response.body = view
                    .response(pending, &response.body, next_page)
                    .await
                    .ok_or_else(|| format!("the split view could not rewrite {op}"))?;
                return Ok(response);
            }
        }
        forward(self.upstream, req).await
    }

    fn record(&self, index: usize, response: &Result<Response, String>) {
        let mut st = self.state.lock().unwrap();
        let entry = &mut st.log[index];
        entry.forwarded = true;
        if let Ok(r) = response {
            entry.status = Some(r.status);
            entry.error_type = r.error_type();
        }
    }

    fn delivered(&self, index: usize, ok: bool) {
        let mut st = self.state.lock().unwrap();
        if ok {
            st.log[index].delivered = true;
        } else {
            st.client_gave_up += 1;
        }
    }
}

/// Decrements the in-flight count when a request's handling ends.
struct InFlight<'a>(&'a AtomicUsize);

impl<'a> InFlight<'a> {
    fn new(counter: &'a AtomicUsize) -> InFlight<'a> {
        counter.fetch_add(1, Ordering::SeqCst);
        InFlight(counter)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn handle(shared: Arc<Shared>, listener: usize, stream: TcpStream) {
    let mut conn = Conn { stream, buf: Vec::new() };
    loop {
        let req = match conn.read_request().await {
            Ok(Some(r)) => r,
            _ => return,
        };
        let _in_flight = InFlight::new(&shared.in_flight);
        let (action, index) = shared.decide(listener, &req);
        match action {
            Action::Forward => {
                let response = shared.forward(&req).await;
                shared.record(index, &response);
                let Ok(response) = response else { return };
                let ok = conn.stream.write_all(&response.to_client()).await.is_ok();
                shared.delivered(index, ok);
                if !ok {
                    return;
                }
            }
            Action::Fault(Fault::DropResponse) => {
                let response = shared.forward(&req).await;
                shared.record(index, &response);
                let _ = conn.stream.shutdown().await;
                return;
            }
            Action::Fault(Fault::Stall) => {
                tokio::time::sleep(shared.stall).await;
                let response = shared.forward(&req).await;
                shared.record(index, &response);
                if let Ok(response) = response {
                    let ok = conn.stream.write_all(&response.to_client()).await.is_ok();
                    shared.delivered(index, ok);
                }
                return;
            }
            Action::Fault(f) => {
                let ok = conn.stream.write_all(&injected_response(f, &req)).await.is_ok();
                shared.delivered(index, ok);
                if !ok {
                    return;
                }
            }
            Action::Hold { forward: fwd, fire, mut release } => {
                if fwd {
                    let response = shared.forward(&req).await;
                    shared.record(index, &response);
                }
                if let Some(tx) = fire {
                    let _ = tx.send(());
                }
                let _ = release.wait_for(|released| *released).await;
                return;
            }
        }
    }
}

/// A request read from the client.
struct Request {
    start_line: String,
    path: String,
    headers: Vec<(String, String)>,
    /// The body bytes exactly as received (possibly chunk-framed).
    raw_body: Vec<u8>,
    /// The body without chunk framing.
    decoded_body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    fn is_dynamodb(&self) -> bool {
        self.header("x-amz-target").is_some_and(|t| t.starts_with("DynamoDB_"))
    }

    /// This request without its ConditionExpression (and the values only
    /// the condition used), if it is an UpdateItem of a snapshot item.
    fn without_snapshot_condition(&self) -> Option<Request> {
        if self.header("x-amz-target") != Some("DynamoDB_20120810.UpdateItem") {
            return None;
        }
        let mut body: Value = serde_json::from_slice(&self.decoded_body).ok()?;
        if !body["Key"]["SK"]["S"].as_str()?.starts_with("#USAGE#") {
            return None;
        }
        let expr = body["UpdateExpression"].as_str()?.to_string();
        let obj = body.as_object_mut()?;
        obj.remove("ConditionExpression");
        obj.remove("ReturnValuesOnConditionCheckFailure");
        if let Some(values) = obj.get_mut("ExpressionAttributeValues").and_then(Value::as_object_mut) {
            let tokens: std::collections::BTreeSet<&str> =
                expr.split(|c: char| c.is_whitespace() || ",()=".contains(c)).collect();
            values.retain(|k, _| tokens.contains(k.as_str()));
        }
        let new_body = serde_json::to_vec(&body).ok()?;
        let mut headers: Vec<(String, String)> =
            self.headers.iter().filter(|(k, _)| !k.eq_ignore_ascii_case("content-length")).cloned().collect();
        headers.push(("Content-Length".into(), new_body.len().to_string()));
        Some(Request {
            start_line: self.start_line.clone(),
            path: self.path.clone(),
            headers,
            raw_body: new_body.clone(),
            decoded_body: new_body,
        })
    }

    /// This request with another (unframed) body.
    fn with_body(&self, body: Vec<u8>) -> Request {
        let mut headers: Vec<(String, String)> = self
            .headers
            .iter()
            .filter(|(k, _)| !k.eq_ignore_ascii_case("content-length") && !k.eq_ignore_ascii_case("transfer-encoding"))
            .cloned()
            .collect();
        headers.push(("Content-Length".into(), body.len().to_string()));
        Request {
            start_line: self.start_line.clone(),
            path: self.path.clone(),
            headers,
            raw_body: body.clone(),
            decoded_body: body,
        }
    }

    /// `(table, PK, SK)` of the item a DynamoDB item operation addresses.
    fn item_key(&self) -> Option<u64> {
        if !self.is_dynamodb() {
            return None;
        }
        let body: Value = serde_json::from_slice(&self.decoded_body).ok()?;
        let key = if body.get("Key").is_some() { &body["Key"] } else { &body["Item"] };
        let table = body["TableName"].as_str()?;
        Some(hash64(&[table.as_bytes(), key["PK"].to_string().as_bytes(), key["SK"].to_string().as_bytes()]))
    }

    fn operation(&self) -> String {
        match self.header("x-amz-target") {
            Some(t) => t.to_string(),
            None => format!("S3 {}", self.start_line.split(' ').next().unwrap_or("?")),
        }
    }

    /// The body with JSON object keys sorted (the SDK serialises hash maps
    /// in a random order), so equal requests hash equally.
    fn canonical_body(&self) -> String {
        match serde_json::from_slice::<Value>(&self.decoded_body) {
            Ok(v) if self.is_dynamodb() => sorted(&v).to_string(),
            _ => format!("{:016x}", hash64(&[&self.decoded_body])),
        }
    }
}

fn sorted(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let mut out = serde_json::Map::new();
            for k in keys {
                out.insert(k.clone(), sorted(&m[k]));
            }
            Value::Object(out)
        }
        Value::Array(a) => Value::Array(a.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

/// A response read from moto.
struct Response {
    status_line: String,
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    /// The response re-framed for the client: `Content-Length`, keep-alive.
    fn to_client(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.body.len() + 256);
        out.extend_from_slice(self.status_line.as_bytes());
        out.extend_from_slice(b"\r\n");
        for (k, v) in &self.headers {
            let lower = k.to_ascii_lowercase();
            if matches!(lower.as_str(), "connection" | "keep-alive" | "transfer-encoding" | "content-length") {
                continue;
            }
            out.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
        }
        out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", self.body.len()).as_bytes());
        out.extend_from_slice(&self.body);
        out
    }

    fn error_type(&self) -> Option<String> {
        if self.status == 200 {
            return None;
        }
        if let Ok(v) = serde_json::from_slice::<Value>(&self.body) {
            if let Some(t) = v.get("__type").and_then(Value::as_str) {
                return Some(t.rsplit('#').next().unwrap_or(t).to_string());
            }
        }
        let text = String::from_utf8_lossy(&self.body);
        let code = text.split("<Code>").nth(1).and_then(|s| s.split("</Code>").next());
        Some(code.unwrap_or("unknown").to_string())
    }
}

fn injected_response(fault: Fault, req: &Request) -> Vec<u8> {
    let (status, content_type, body) = if req.is_dynamodb() {
        let (status, kind, message) = match fault {
            Fault::InternalError => (
                "500 Internal Server Error",
                "com.amazonaws.dynamodb.v20120810#InternalServerError",
                "Internal server error (injected)",
            ),
            Fault::ProvisionedThroughputExceeded => (
                "400 Bad Request",
                "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
                "The level of configured provisioned throughput for the table was exceeded (injected)",
            ),
            _ => (
                "400 Bad Request",
                "com.amazon.coral.availability#ThrottlingException",
                "Rate of requests exceeds the allowed throughput (injected)",
            ),
        };
        (status, "application/x-amz-json-1.0", format!("{{\"__type\":\"{kind}\",\"message\":\"{message}\"}}"))
    } else {
        let (status, code) = match fault {
            Fault::InternalError => ("500 Internal Server Error", "InternalError"),
            _ => ("503 Slow Down", "SlowDown"),
        };
        (
            status,
            "application/xml",
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code>\
                 <Message>injected by the test proxy</Message><RequestId>injected</RequestId></Error>"
            ),
        )
    };
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nx-amzn-RequestId: injected\r\n\
         x-amz-request-id: injected\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

async fn forward(upstream: SocketAddr, req: &Request) -> Result<Response, String> {
    let stream = TcpStream::connect(upstream).await.map_err(|e| format!("connecting to moto: {e}"))?;
    let _ = stream.set_nodelay(true);
    let mut conn = Conn { stream, buf: Vec::new() };
    let mut head = String::with_capacity(1024);
    head.push_str(&req.start_line);
    head.push_str("\r\n");
    for (k, v) in &req.headers {
        let lower = k.to_ascii_lowercase();
        if matches!(lower.as_str(), "connection" | "keep-alive" | "expect" | "proxy-connection") {
            continue;
        }
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("Connection: close\r\n\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(&req.raw_body);
    conn.stream.write_all(&bytes).await.map_err(|e| format!("writing to moto: {e}"))?;
    loop {
        let Some((start, headers)) = conn.read_head().await.map_err(|e| format!("reading moto: {e}"))? else {
            return Err("moto closed the connection without answering".into());
        };
        let status: u16 = start.split(' ').nth(1).and_then(|s| s.parse().ok()).ok_or("bad status line from moto")?;
        if (100..200).contains(&status) {
            continue;
        }
        let length = header(&headers, "content-length").and_then(|v| v.trim().parse::<usize>().ok());
        let chunked = header(&headers, "transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
        let body = if status == 204 || status == 304 {
            Vec::new()
        } else if chunked {
            conn.read_chunked().await.map_err(|e| format!("reading moto: {e}"))?.1
        } else if let Some(n) = length {
            conn.read_exact_body(n).await.map_err(|e| format!("reading moto: {e}"))?
        } else {
            conn.read_to_end().await.map_err(|e| format!("reading moto: {e}"))?
        };
        return Ok(Response { status_line: start, status, headers, body });
    }
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

/// A buffered connection.
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    async fn fill(&mut self) -> std::io::Result<usize> {
        let mut chunk = [0u8; 16 * 1024];
        let n = self.stream.read(&mut chunk).await?;
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n)
    }

    /// Start line and headers; `None` on a clean end of stream.
    async fn read_head(&mut self) -> std::io::Result<Option<(String, Vec<(String, String)>)>> {
        loop {
            if let Some(pos) = find(&self.buf, b"\r\n\r\n") {
                let head: Vec<u8> = self.buf.drain(..pos + 4).collect();
                let text = String::from_utf8_lossy(&head[..pos]).into_owned();
                let mut lines = text.split("\r\n");
                let start = lines.next().unwrap_or_default().to_string();
                let headers = lines
                    .filter_map(|l| l.split_once(':'))
                    .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                    .collect();
                return Ok(Some((start, headers)));
            }
            if self.fill().await? == 0 {
                return if self.buf.is_empty() {
                    Ok(None)
                } else {
                    Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "truncated HTTP head"))
                };
            }
        }
    }

    async fn read_exact_body(&mut self, n: usize) -> std::io::Result<Vec<u8>> {
        while self.buf.len() < n {
            if self.fill().await? == 0 {
                return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "truncated HTTP body"));
            }
        }
        Ok(self.buf.drain(..n).collect())
    }

    async fn read_line(&mut self) -> std::io::Result<Vec<u8>> {
        loop {
            if let Some(pos) = find(&self.buf, b"\r\n") {
                return Ok(self.buf.drain(..pos + 2).collect());
            }
            if self.fill().await? == 0 {
                return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "truncated chunked body"));
            }
        }
    }

    /// A chunked body: `(raw bytes with framing, decoded bytes)`.
    async fn read_chunked(&mut self) -> std::io::Result<(Vec<u8>, Vec<u8>)> {
        let (mut raw, mut decoded) = (Vec::new(), Vec::new());
        loop {
            let line = self.read_line().await?;
            raw.extend_from_slice(&line);
            let text = String::from_utf8_lossy(&line[..line.len() - 2]).into_owned();
            let size = usize::from_str_radix(text.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "bad chunk size"))?;
            if size == 0 {
                loop {
                    let trailer = self.read_line().await?;
                    raw.extend_from_slice(&trailer);
                    if trailer == b"\r\n" {
                        return Ok((raw, decoded));
                    }
                }
            }
            let data = self.read_exact_body(size + 2).await?;
            raw.extend_from_slice(&data);
            decoded.extend_from_slice(&data[..size]);
        }
    }

    async fn read_to_end(&mut self) -> std::io::Result<Vec<u8>> {
        while self.fill().await? > 0 {}
        Ok(std::mem::take(&mut self.buf))
    }

    /// One whole request; `None` when the client closed the connection.
    async fn read_request(&mut self) -> std::io::Result<Option<Request>> {
        let Some((start_line, headers)) = self.read_head().await? else { return Ok(None) };
        let path = start_line.split(' ').nth(1).unwrap_or("/").to_string();
        if header(&headers, "expect").is_some_and(|v| v.eq_ignore_ascii_case("100-continue")) {
            self.stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await?;
        }
        let chunked = header(&headers, "transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
        let (raw_body, decoded_body) = if chunked {
            self.read_chunked().await?
        } else {
            let n = header(&headers, "content-length").and_then(|v| v.trim().parse::<usize>().ok()).unwrap_or(0);
            let body = self.read_exact_body(n).await?;
            (body.clone(), body)
        };
        Ok(Some(Request { start_line, path, headers, raw_body, decoded_body }))
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
