//! A real moto server (DynamoDB and S3) for integration tests.
//!
//! [`Moto::start`] runs `moto_server` on 127.0.0.1 port 0, reads the port
//! it bound from its start-up line and waits until it answers HTTP; dropping the [`Moto`] kills that process by its
//! PID. The executable is `$ZAE_MOTO_SERVER` if set, otherwise `moto_server`
//! on `PATH`. There is no fallback: without moto the test fails, saying how
//! to install it.

use std::collections::HashMap;
use std::io::{Read, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, StreamSpecification, StreamViewType,
};
use zae_aggregator::dynamo_json;

/// Region every test client and child process uses.
pub const REGION: &str = "us-east-1";

/// Servers started by this process (names their log files).
static STARTED: AtomicU64 = AtomicU64::new(0);

/// How long a starting server may take to answer.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A running moto server, killed (by PID) when dropped.
pub struct Moto {
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    /// The server's port.
    pub port: u16,
    /// The server's combined stdout and stderr.
    pub log_path: PathBuf,
    /// The `moto_server` executable that runs.
    pub executable: PathBuf,
    child: Child,
}

impl Drop for Moto {
    fn drop(&mut self) {
        // SIGKILL to exactly the process started (moto_server runs as one
        // process without the reloader), then reap it.
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log_path);
    }
}

/// The `moto_server` executable: `$ZAE_MOTO_SERVER`, else the first
/// `moto_server` on `PATH`. Panics with instructions when neither exists.
pub fn moto_executable() -> PathBuf {
    if let Some(path) = std::env::var_os("ZAE_MOTO_SERVER").filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "ZAE_MOTO_SERVER is {} but no such file exists; point it at the moto_server executable \
             (pip install 'moto[server]')",
            path.display()
        );
        return path;
    }
    let found = std::env::var_os("PATH")
        .and_then(|paths| std::env::split_paths(&paths).map(|dir| dir.join("moto_server")).find(|p| is_executable(p)));
    found.unwrap_or_else(|| {
        panic!(
            "moto_server not found: these tests need a real moto server. Install it with \
             `python3 -m venv /tmp/motoenv && /tmp/motoenv/bin/pip install 'moto[server]'` and set \
             ZAE_MOTO_SERVER=/tmp/motoenv/bin/moto_server (or put moto_server on PATH)"
        )
    })
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(p).map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0).unwrap_or(false)
}

/// The port in moto's (werkzeug's) start-up line ` * Running on
/// http://127.0.0.1:PORT`, once the server has printed it.
fn bound_port(log: &str) -> Option<u16> {
    let rest = &log[log.find("Running on http://127.0.0.1:")? + "Running on http://127.0.0.1:".len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok().filter(|p| *p != 0)
}

/// Whether an HTTP server answers on `port`.
fn answers(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(500)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let request = format!("GET /moto-api/ HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 5];
    stream.read_exact(&mut head).is_ok() && &head == b"HTTP/"
}

impl Moto {
    /// Start a server and wait (up to a minute) until it answers. Panics
    /// with the server's output if it does not.
    ///
    /// moto binds port 0 and the kernel picks the port: a port found free
    /// here and handed to moto could be taken in between by another
    /// listener of this process (a fault proxy binds port 0 all the time),
    /// and a test would then talk to that listener believing it was its own
    /// server.
    pub fn start() -> Moto {
        let executable = moto_executable();
        let log_path = std::env::temp_dir().join(format!(
            "zae-moto-{}-{}.log",
            std::process::id(),
            STARTED.fetch_add(1, Ordering::SeqCst)
        ));
        let log = std::fs::File::create(&log_path).expect("creating the moto log file");
        let child = Command::new(&executable)
            .args(["-H", "127.0.0.1", "-p", "0"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("duplicating the moto log handle"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", executable.display()));
        let mut moto = Moto { endpoint: String::new(), port: 0, log_path, executable, child };
        if let Err(e) = moto.wait_until_ready() {
            panic!("moto did not start: {e}");
        }
        moto
    }

    fn wait_until_ready(&mut self) -> Result<(), String> {
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("{} exited with {status}; output:\n{}", self.executable.display(), self.log()));
            }
            if self.port == 0 {
                if let Some(port) = bound_port(&self.log()) {
                    self.port = port;
                    self.endpoint = format!("http://127.0.0.1:{port}");
                }
            }
            if self.port != 0 && answers(self.port) {
                return Ok(());
            }
            if started.elapsed() > START_TIMEOUT {
                return Err(format!(
                    "{} did not answer within {START_TIMEOUT:?} (port {}); output:\n{}",
                    self.executable.display(),
                    self.port,
                    self.log()
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The server's output so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Environment for a child process (the host binary) to reach this
    /// server through the standard AWS variables.
    pub fn aws_env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ENDPOINT_URL", self.endpoint.as_str()),
            ("AWS_REGION", REGION),
            ("AWS_DEFAULT_REGION", REGION),
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test"),
            ("AWS_EC2_METADATA_DISABLED", "true"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    /// A DynamoDB client for this server (static test credentials).
    pub fn ddb_client(&self) -> aws_sdk_dynamodb::Client {
        let config = aws_sdk_dynamodb::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .endpoint_url(&self.endpoint)
            .region(Region::new(REGION))
            .credentials_provider(Credentials::new("test", "test", None, None, "static"))
            .build();
        aws_sdk_dynamodb::Client::from_conf(config)
    }

    /// An S3 client for this server (path-style addressing).
    pub fn s3_client(&self) -> aws_sdk_s3::Client {
        let config = aws_sdk_s3::Config::builder()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .endpoint_url(&self.endpoint)
            .region(aws_sdk_s3::config::Region::new(REGION))
            .credentials_provider(aws_sdk_s3::config::Credentials::new("test", "test", None, None, "static"))
            .force_path_style(true)
            .build();
        aws_sdk_s3::Client::from_conf(config)
    }

    /// Create a table shaped like zae-limiter's: `PK`/`SK` strings, GSI2
    /// (`GSI2PK`, `GSI2SK`) with ALL projection, GSI3 (`GSI3PK`, `GSI3SK`)
    /// and GSI4 (`GSI4PK`, `GSI4SK`) with KEYS_ONLY projection (as
    /// zae-limiter 0.13 and 0.17 create them), on-demand billing, and a
    /// NEW_AND_OLD_IMAGES stream.
    pub async fn create_table(&self, name: &str) {
        let string_attr = |n: &str| {
            AttributeDefinition::builder().attribute_name(n).attribute_type(ScalarAttributeType::S).build().unwrap()
        };
        let key = |hash: &str, range: &str| {
            vec![
                KeySchemaElement::builder().attribute_name(hash).key_type(KeyType::Hash).build().unwrap(),
                KeySchemaElement::builder().attribute_name(range).key_type(KeyType::Range).build().unwrap(),
            ]
        };
        let gsi = |n: u8| {
            GlobalSecondaryIndex::builder()
                .index_name(format!("GSI{n}"))
                .set_key_schema(Some(key(&format!("GSI{n}PK"), &format!("GSI{n}SK"))))
                .projection(
                    Projection::builder()
                        .projection_type(if n == 2 { ProjectionType::All } else { ProjectionType::KeysOnly })
                        .build(),
                )
                .build()
                .unwrap()
        };
        let mut definitions = vec![string_attr("PK"), string_attr("SK")];
        for n in [2, 3, 4] {
            definitions.push(string_attr(&format!("GSI{n}PK")));
            definitions.push(string_attr(&format!("GSI{n}SK")));
        }
        self.ddb_client()
            .create_table()
            .table_name(name)
            .set_attribute_definitions(Some(definitions))
            .set_key_schema(Some(key("PK", "SK")))
            .set_global_secondary_indexes(Some(vec![gsi(2), gsi(3), gsi(4)]))
            .billing_mode(BillingMode::PayPerRequest)
            .stream_specification(
                StreamSpecification::builder()
                    .stream_enabled(true)
                    .stream_view_type(StreamViewType::NewAndOldImages)
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap_or_else(|e| panic!("creating table {name}: {}", aws_sdk_dynamodb::error::DisplayErrorContext(&e)));
    }

    /// Create an S3 bucket.
    pub async fn create_bucket(&self, name: &str) {
        self.s3_client()
            .create_bucket()
            .bucket(name)
            .send()
            .await
            .unwrap_or_else(|e| panic!("creating bucket {name}: {}", aws_sdk_s3::error::DisplayErrorContext(&e)));
    }

    /// Every item of a table (all pages), in no particular order.
    pub async fn scan(&self, table: &str) -> Vec<HashMap<String, AttributeValue>> {
        let client = self.ddb_client();
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let page = client
                .scan()
                .table_name(table)
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .unwrap_or_else(|e| panic!("scanning {table}: {}", aws_sdk_dynamodb::error::DisplayErrorContext(&e)));
            items.extend(page.items().iter().cloned());
            match page.last_evaluated_key() {
                Some(k) if !k.is_empty() => start = Some(k.clone()),
                _ => return items,
            }
        }
    }

    /// Put one item given as a DynamoDB JSON map (for example a stream
    /// record's `NewImage`).
    pub async fn put_item(&self, table: &str, item_json: &str) {
        let item = match dynamo_json::to_attribute_value(&format!("{{\"M\":{item_json}}}")) {
            Ok(AttributeValue::M(m)) => m,
            Ok(other) => panic!("not an item: {other:?}"),
            Err(e) => panic!("item is not a DynamoDB JSON map: {e}"),
        };
        self.ddb_client().put_item().table_name(table).set_item(Some(item)).send().await.unwrap_or_else(|e| {
            panic!("putting an item into {table}: {}", aws_sdk_dynamodb::error::DisplayErrorContext(&e))
        });
    }

    /// An object's bytes, exactly as stored.
    pub async fn get_object(&self, bucket: &str, key: &str) -> Vec<u8> {
        let object =
            self.s3_client().get_object().bucket(bucket).key(key).send().await.unwrap_or_else(|e| {
                panic!("getting s3://{bucket}/{key}: {}", aws_sdk_s3::error::DisplayErrorContext(&e))
            });
        let body = object.body.collect().await.unwrap_or_else(|e| panic!("reading s3://{bucket}/{key}: {e}"));
        body.into_bytes().to_vec()
    }

    /// The keys of every object in a bucket, in ascending order.
    pub async fn list_objects(&self, bucket: &str) -> Vec<String> {
        let client = self.s3_client();
        let mut keys = Vec::new();
        let mut token = None;
        loop {
            let page = client
                .list_objects_v2()
                .bucket(bucket)
                .set_continuation_token(token)
                .send()
                .await
                .unwrap_or_else(|e| panic!("listing {bucket}: {}", aws_sdk_s3::error::DisplayErrorContext(&e)));
            keys.extend(page.contents().iter().filter_map(|o| o.key().map(str::to_string)));
            match page.next_continuation_token() {
                Some(t) if page.is_truncated() == Some(true) => token = Some(t.to_string()),
                _ => break,
            }
        }
        keys.sort();
        keys
    }
}

/// Decompress gzip data with the Python interpreter that runs moto (tests
/// have no Rust inflater among their dependencies).
pub fn gunzip(data: &[u8]) -> Vec<u8> {
    let moto = moto_executable();
    let python = moto.parent().map(|d| d.join("python3")).filter(|p| is_executable(p)).unwrap_or("python3".into());
    let mut child = Command::new(&python)
        .args(["-c", "import gzip, sys; sys.stdout.buffer.write(gzip.decompress(sys.stdin.buffer.read()))"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {}: {e}", python.display()));
    let mut stdin = child.stdin.take().expect("piped stdin");
    let input = data.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let output = child.wait_with_output().expect("running python gzip");
    writer.join().expect("stdin writer").expect("writing to python");
    assert!(output.status.success(), "gunzip failed: {}", String::from_utf8_lossy(&output.stderr));
    output.stdout
}
