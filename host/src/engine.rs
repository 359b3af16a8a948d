//! Loading and calling the planner component with wasmtime.
//!
//! One [`Planner`] per process: it owns the [`Engine`], the compiled
//! [`Component`], a pre-linked instance template, and a ticker thread that
//! drives epoch interruption. Every call gets a fresh [`Store`] and instance
//! (a trapped instance refuses further calls), a WASI context that grants
//! nothing, a memory cap and an execution deadline. A trap, an exhausted
//! deadline or memory cap becomes a [`CallError`] for that call only; the
//! `Planner` keeps serving.

use std::fmt;
use std::sync::mpsc;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Config, Engine, ResourceLimiter, Store, StoreLimits, StoreLimitsBuilder, Trap, UpdateDeadline};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{HostMonotonicClock, HostWallClock, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use crate::bindings::{
    self as wit, reader, Batch, BatchPlan, ConfigError, LimiterChoice, ObservedItem, PlanError, ReadResult,
    RecordFailure, Write,
};

/// The planner component, built by `build.rs` for `wasm32-wasip2`.
pub static COMPONENT_WASM: &[u8] = include_bytes!(env!("ZAE_COMPONENT_PATH"));

/// Interval of the epoch ticker; the deadline is checked at this granularity.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Most core instances, memories, tables and table elements one call may
/// create: the planner (with the WASI adapter Rust links) needs a handful;
/// anything more is a runaway.
const MAX_INSTANCES: usize = 16;
const MAX_MEMORIES: usize = 4;
const MAX_TABLES: usize = 16;
const MAX_TABLE_ELEMENTS: usize = 100_000;

/// How much of the guest's stderr (panic messages) is kept for error reports.
const STDERR_CAPACITY: usize = 16 * 1024;

/// Resource limits applied to every call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest size, in bytes, any linear memory of an instance may reach
    /// (including its initial size and the copied-in arguments).
    pub memory_bytes: usize,
    /// Wall-clock budget for one call, instantiation included. It is
    /// enforced at [`EPOCH_TICK`] granularity, so a call is stopped between
    /// `deadline` and `deadline + EPOCH_TICK` after it started.
    pub deadline: Duration,
}

impl Limits {
    /// Default memory cap: 256 MiB.
    pub const DEFAULT_MEMORY_BYTES: usize = 256 * 1024 * 1024;
    /// Default deadline: 10 seconds.
    pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(10);
}

impl Default for Limits {
    fn default() -> Self {
        Limits { memory_bytes: Self::DEFAULT_MEMORY_BYTES, deadline: Self::DEFAULT_DEADLINE }
    }
}

/// Why a call into the component produced no answer. The component's own
/// answers (including `PlanError` and configuration errors) are never a
/// `CallError`: they come back as values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError {
    /// The guest trapped (for example a panic, which surfaces as
    /// `unreachable`), or a value crossing the boundary was rejected.
    Trap {
        /// The trap code (`wasm trap: ...`), when the failure was a wasm trap.
        code: Option<String>,
        /// The full error chain, including the wasm backtrace and whatever
        /// the guest wrote to stderr.
        detail: String,
    },
    /// The call ran past [`Limits::deadline`].
    DeadlineExceeded {
        /// The deadline that was exceeded.
        deadline: Duration,
    },
    /// The guest tried to grow a memory beyond [`Limits::memory_bytes`].
    MemoryLimit {
        /// The cap that was hit, in bytes.
        limit: usize,
        /// The error chain as reported by wasmtime.
        detail: String,
    },
    /// The component could not be instantiated.
    Instantiate(String),
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::Trap { code: Some(code), detail } => write!(f, "planner trapped ({code}): {detail}"),
            CallError::Trap { code: None, detail } => write!(f, "planner call failed: {detail}"),
            CallError::DeadlineExceeded { deadline } => {
                write!(f, "planner call exceeded its deadline of {} ms", deadline.as_millis())
            }
            CallError::MemoryLimit { limit, detail } => {
                write!(f, "planner exceeded its memory cap of {limit} bytes: {detail}")
            }
            CallError::Instantiate(detail) => write!(f, "could not instantiate the planner component: {detail}"),
        }
    }
}

impl std::error::Error for CallError {}

/// The planner component, compiled once and instantiated per call.
///
/// Cloning is cheap and shares the compiled code and the epoch ticker; use
/// [`Planner::with_limits`] for a handle with other limits.
#[derive(Clone)]
pub struct Planner {
    shared: Arc<Shared>,
    limits: Limits,
}

struct Shared {
    engine: Engine,
    pre: wit::AggregatorPre<State>,
    _ticker: Ticker,
}

impl fmt::Debug for Planner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Planner").field("limits", &self.limits).finish_non_exhaustive()
    }
}

mod engine_config {
    include!("engine_config.rs");
}

/// The component compiled ahead of time by `build.rs` for this build's target.
pub static COMPONENT_CWASM: &[u8] = include_bytes!(env!("ZAE_COMPONENT_CWASM_PATH"));

/// The target the engine (and the precompiled component) is configured for.
pub const ENGINE_TARGET: &str = env!("ZAE_ENGINE_TARGET");

fn engine_config() -> anyhow::Result<Config> {
    engine_config::engine_config(ENGINE_TARGET).describe("configuring the wasmtime engine")
}

fn new_engine() -> anyhow::Result<Engine> {
    Engine::new(&engine_config()?).describe("creating the wasmtime engine")
}

/// Attach context to a wasmtime error while converting it to `anyhow`.
trait Describe<T> {
    fn describe(self, what: &'static str) -> anyhow::Result<T>;
}

impl<T> Describe<T> for wasmtime::Result<T> {
    fn describe(self, what: &'static str) -> anyhow::Result<T> {
        self.map_err(|e| anyhow::Error::from(e).context(what))
    }
}

impl Planner {
    /// Load the component precompiled at build time; if this machine cannot
    /// run that code (for example a CPU without the features it was compiled
    /// for), compile the embedded component instead and log a warning.
    pub fn load(limits: Limits) -> anyhow::Result<Planner> {
        // SAFETY: COMPONENT_CWASM was produced by build.rs with the same
        // wasmtime version and engine configuration, and is part of this
        // binary; wasmtime still checks version, configuration and CPU.
        let started = std::time::Instant::now();
        match unsafe { Self::from_precompiled(COMPONENT_CWASM, limits) } {
            Ok(p) => {
                // deploy/verify_package.py looks for this line to prove a
                // cross-built package runs the code precompiled for it.
                tracing::debug!(target: "zae_aggregator::engine", engine_target = ENGINE_TARGET,
                    load_ms = started.elapsed().as_millis() as u64,
                    "Planner loaded from the code precompiled at build time");
                Ok(p)
            }
            Err(e) => {
                tracing::warn!(target: "zae_aggregator::engine", exception = %format!("{e:#}"),
                    "Precompiled planner unusable here; compiling the component");
                Self::new(limits)
            }
        }
    }

    /// Compile the embedded component (Cranelift) and prepare to run it.
    pub fn new(limits: Limits) -> anyhow::Result<Planner> {
        let engine = new_engine()?;
        let component = Component::new(&engine, COMPONENT_WASM).describe("compiling the planner component")?;
        Self::assemble(engine, component, limits)
    }

    /// Compile another build of the planner component (a `.wasm` component
    /// implementing `wit/planner.wit`), for tests and tools that compare
    /// builds. Production code uses [`Planner::load`].
    pub fn from_component(wasm: &[u8], limits: Limits) -> anyhow::Result<Planner> {
        let engine = new_engine()?;
        let component = Component::new(&engine, wasm).describe("compiling the given component")?;
        Self::assemble(engine, component, limits)
    }

    /// Compile the embedded component ahead of time, for
    /// [`Planner::from_precompiled`]. The bytes are only valid for this build
    /// of the host (same wasmtime version and engine configuration).
    pub fn precompile() -> anyhow::Result<Vec<u8>> {
        let engine = new_engine()?;
        engine.precompile_component(COMPONENT_WASM).describe("precompiling the planner component")
    }

    /// Load a component produced by [`Planner::precompile`].
    ///
    /// wasmtime rejects bytes produced by another wasmtime version or engine
    /// configuration with an error.
    ///
    /// # Safety
    ///
    /// The bytes are machine code that is run as is: they must come from
    /// [`Planner::precompile`] (of this build of the host) and must not have
    /// been tampered with. See `wasmtime::component::Component::deserialize`.
    pub unsafe fn from_precompiled(bytes: &[u8], limits: Limits) -> anyhow::Result<Planner> {
        let engine = new_engine()?;
        // SAFETY: the caller guarantees the bytes are a trusted artifact of
        // `Planner::precompile`; wasmtime checks version and configuration.
        let component =
            unsafe { Component::deserialize(&engine, bytes) }.describe("loading the precompiled planner component")?;
        Self::assemble(engine, component, limits)
    }

    fn assemble(engine: Engine, component: Component, limits: Limits) -> anyhow::Result<Planner> {
        let mut linker: Linker<State> = Linker::new(&engine);
        link_imports(&mut linker, &engine, &component)?;
        let pre = linker.instantiate_pre(&component).describe("linking the planner component")?;
        let pre = wit::AggregatorPre::new(pre).describe("the component does not export the aggregator world")?;
        let ticker = Ticker::start(engine.clone())?;
        Ok(Planner { shared: Arc::new(Shared { engine, pre, _ticker: ticker }), limits })
    }

    /// The limits applied to this handle's calls.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// A handle sharing this planner's compiled code, with other limits.
    pub fn with_limits(&self, limits: Limits) -> Planner {
        Planner { shared: Arc::clone(&self.shared), limits }
    }

    /// The wasmtime engine (for precompiling or inspecting configuration).
    pub fn engine(&self) -> &Engine {
        &self.shared.engine
    }

    /// Plan `batch` in a fresh instance. The outer `Result` is the call
    /// itself (trap, deadline, memory); the inner one is the planner's answer.
    pub async fn plan(&self, batch: &Batch<'_>) -> Result<Result<BatchPlan, PlanError>, CallError> {
        let (mut store, instance) = self.instantiate().await?;
        let result = instance.zae_aggregator_planner().call_plan(&mut store, batch.clone()).await;
        result.map_err(|e| self.call_error(&store, e))
    }

    /// Re-plan the snapshot items in `observed` (see the contract's
    /// `replan-snapshots`), in a fresh instance.
    pub async fn replan_snapshots(
        &self,
        batch: &Batch<'_>,
        observed: &[ObservedItem<'_>],
    ) -> Result<Result<BatchPlan, PlanError>, CallError> {
        let (mut store, instance) = self.instantiate().await?;
        let result = instance.zae_aggregator_planner().call_replan_snapshots(&mut store, batch.clone(), observed).await;
        result.map_err(|e| self.call_error(&store, e))
    }

    /// Plan the writes that waited on the plan's reads (see the contract's
    /// `plan-after-reads`), in a fresh instance.
    pub async fn plan_after_reads(
        &self,
        batch: &Batch<'_>,
        results: &[ReadResult<'_>],
    ) -> Result<Result<BatchPlan, PlanError>, CallError> {
        let (mut store, instance) = self.instantiate().await?;
        let result = instance.zae_aggregator_planner().call_plan_after_reads(&mut store, batch.clone(), results).await;
        result.map_err(|e| self.call_error(&store, e))
    }

    /// The semantics a table's version record calls for (see the contract's
    /// `limiter-from-version-record`), in a fresh instance.
    pub async fn limiter_from_version_record(
        &self,
        item: Option<&str>,
    ) -> Result<Result<LimiterChoice, ConfigError>, CallError> {
        let (mut store, instance) = self.instantiate().await?;
        let result = instance.zae_aggregator_planner().call_limiter_from_version_record(&mut store, item).await;
        result.map_err(|e| self.call_error(&store, e))
    }

    /// The dead-letter write for records that can never be applied (see the
    /// contract's `dead-letter`), in a fresh instance.
    pub async fn dead_letter(
        &self,
        batch: &Batch<'_>,
        failures: &[RecordFailure<'_>],
    ) -> Result<Result<Option<Write>, PlanError>, CallError> {
        let (mut store, instance) = self.instantiate().await?;
        let result = instance.zae_aggregator_planner().call_dead_letter(&mut store, batch.clone(), failures).await;
        result.map_err(|e| self.call_error(&store, e))
    }

    /// Build and validate the planner configuration from `vars` with the
    /// component's `config-from-env`.
    pub async fn config_from_env(
        &self,
        vars: &[(String, String)],
    ) -> Result<Result<wit::Config, ConfigError>, CallError> {
        let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let (mut store, instance) = self.instantiate().await?;
        let result = instance.zae_aggregator_planner().call_config_from_env(&mut store, &vars).await;
        result.map_err(|e| self.call_error(&store, e))
    }

    /// The canonical JSON of an answer of `plan` or `replan-snapshots`,
    /// rendered by the component (`render-plan` / `render-error`), so every
    /// host prints the same bytes.
    pub async fn render(&self, answer: &Result<BatchPlan, PlanError>) -> Result<String, CallError> {
        let (mut store, instance) = self.instantiate().await?;
        let planner = instance.zae_aggregator_planner();
        let result = match answer {
            Ok(plan) => planner.call_render_plan(&mut store, plan).await,
            Err(error) => planner.call_render_error(&mut store, error).await,
        };
        result.map_err(|e| self.call_error(&store, e))
    }

    /// The usage rows of `items` matching `query` (the contract's `reader.rows`).
    pub async fn usage_rows(
        &self,
        items: &[&str],
        query: reader::UsageQuery<'_>,
    ) -> Result<Result<reader::UsageRows, reader::ReaderError>, CallError> {
        let (mut store, instance) = self.instantiate().await?;
        let result = instance.zae_aggregator_reader().call_rows(&mut store, items, query).await;
        result.map_err(|e| self.call_error(&store, e))
    }

    /// Totals per entity, resource and window (the contract's `reader.summaries`).
    pub async fn usage_summaries(
        &self,
        items: &[&str],
        query: reader::UsageQuery<'_>,
    ) -> Result<Result<reader::UsageSummaries, reader::ReaderError>, CallError> {
        let (mut store, instance) = self.instantiate().await?;
        let result = instance.zae_aggregator_reader().call_summaries(&mut store, items, query).await;
        result.map_err(|e| self.call_error(&store, e))
    }

    /// The last `months` complete months before `now_ms` (the contract's
    /// `reader.average-period`).
    pub async fn average_period(
        &self,
        months: u32,
        now_ms: i64,
    ) -> Result<Result<reader::Period, reader::ReaderError>, CallError> {
        let (mut store, instance) = self.instantiate().await?;
        let result = instance.zae_aggregator_reader().call_average_period(&mut store, months, now_ms).await;
        result.map_err(|e| self.call_error(&store, e))
    }

    /// The average monthly usage over the last `months` complete months (the
    /// contract's `reader.monthly-average`).
    pub async fn monthly_average(
        &self,
        items: &[&str],
        query: reader::UsageQuery<'_>,
        months: u32,
        now_ms: i64,
        whole_period: bool,
    ) -> Result<Result<reader::MonthlyAverages, reader::ReaderError>, CallError> {
        let (mut store, instance) = self.instantiate().await?;
        let result = instance
            .zae_aggregator_reader()
            .call_monthly_average(&mut store, items, query, months, now_ms, whole_period)
            .await;
        result.map_err(|e| self.call_error(&store, e))
    }

    /// Each daily and monthly item against the sum of its finer items (the
    /// contract's `reader.reconcile`).
    pub async fn reconcile(
        &self,
        items: &[&str],
        query: reader::UsageQuery<'_>,
    ) -> Result<Result<reader::Reconciliation, reader::ReaderError>, CallError> {
        let (mut store, instance) = self.instantiate().await?;
        let result = instance.zae_aggregator_reader().call_reconcile(&mut store, items, query).await;
        result.map_err(|e| self.call_error(&store, e))
    }

    /// A window's items built from the next finer window's (the contract's
    /// `reader.backfill`).
    pub async fn backfill(
        &self,
        items: &[&str],
        window: crate::bindings::Window,
        query: reader::UsageQuery<'_>,
        now_ms: i64,
        ttl_days: u32,
    ) -> Result<Result<reader::BackfillPlan, reader::ReaderError>, CallError> {
        let (mut store, instance) = self.instantiate().await?;
        let result =
            instance.zae_aggregator_reader().call_backfill(&mut store, items, window, query, now_ms, ttl_days).await;
        result.map_err(|e| self.call_error(&store, e))
    }

    /// The canonical JSON of a reader answer, rendered by the component.
    pub async fn render_reading(&self, answer: &Reading) -> Result<String, CallError> {
        let (mut store, instance) = self.instantiate().await?;
        let r = instance.zae_aggregator_reader();
        let result = match answer {
            Reading::Rows(Ok(x)) => r.call_render_rows(&mut store, x).await,
            Reading::Summaries(Ok(x)) => r.call_render_summaries(&mut store, x).await,
            Reading::Period(Ok(x)) => r.call_render_period(&mut store, x).await,
            Reading::Average(Ok(x)) => r.call_render_average(&mut store, x).await,
            Reading::Reconciliation(Ok(x)) => r.call_render_reconciliation(&mut store, x).await,
            Reading::Backfill(Ok(x)) => r.call_render_backfill(&mut store, x).await,
            Reading::Rows(Err(e))
            | Reading::Summaries(Err(e))
            | Reading::Period(Err(e))
            | Reading::Average(Err(e))
            | Reading::Reconciliation(Err(e))
            | Reading::Backfill(Err(e)) => r.call_render_reader_error(&mut store, e).await,
        };
        result.map_err(|e| self.call_error(&store, e))
    }

    /// A fresh store with this handle's limits, and a fresh instance in it.
    async fn instantiate(&self) -> Result<(Store<State>, wit::Aggregator), CallError> {
        let mut store = Store::new(&self.shared.engine, State::new(self.limits.memory_bytes));
        store.limiter(|state| &mut state.cap);
        // `None`: a deadline too far away to represent, i.e. no deadline.
        let deadline_at = Instant::now().checked_add(self.limits.deadline);
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| match deadline_at {
            Some(at) if Instant::now() >= at => Ok(UpdateDeadline::Interrupt),
            // Let other tasks of the async runtime run between ticks.
            _ => Ok(UpdateDeadline::Yield(1)),
        });
        match self.shared.pre.instantiate_async(&mut store).await {
            Ok(instance) => Ok((store, instance)),
            Err(e) => Err(classify(&e, Phase::Instantiate, store.data(), self.limits)),
        }
    }

    fn call_error(&self, store: &Store<State>, e: wasmtime::Error) -> CallError {
        classify(&e, Phase::Call, store.data(), self.limits)
    }
}

/// An answer of one of the contract's `reader` functions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reading {
    /// `rows`.
    Rows(Result<reader::UsageRows, reader::ReaderError>),
    /// `summaries`.
    Summaries(Result<reader::UsageSummaries, reader::ReaderError>),
    /// `average-period`.
    Period(Result<reader::Period, reader::ReaderError>),
    /// `monthly-average`.
    Average(Result<reader::MonthlyAverages, reader::ReaderError>),
    /// `reconcile`.
    Reconciliation(Result<reader::Reconciliation, reader::ReaderError>),
    /// `backfill`.
    Backfill(Result<reader::BackfillPlan, reader::ReaderError>),
}

/// The interfaces the planner may import: its contract's types, and the WASI
/// interfaces Rust's standard library links on `wasm32-wasip2` (environment,
/// exit, stdio, streams, clocks and the hash-seed random). The planner uses
/// none of them but stderr for a panic message; every one is given nothing
/// (see [`State::new`]). A component that imports anything else (files,
/// sockets, secure random) is refused at load, and of these only the ones
/// the component actually imports are linked ([`link_imports`]).
pub const ALLOWED_IMPORTS: &[&str] = &[
    "wasi:cli/environment",
    "wasi:cli/exit",
    "wasi:cli/stdin",
    "wasi:cli/stdout",
    "wasi:cli/stderr",
    "wasi:cli/terminal-input",
    "wasi:cli/terminal-output",
    "wasi:cli/terminal-stdin",
    "wasi:cli/terminal-stdout",
    "wasi:cli/terminal-stderr",
    "wasi:io/error",
    "wasi:io/poll",
    "wasi:io/streams",
    "wasi:clocks/wall-clock",
    "wasi:clocks/monotonic-clock",
    "wasi:random/insecure-seed",
    // The contract's own type-only interface.
    "zae:aggregator/types",
];

/// `HasData` projection for the `wasi:io` interfaces, whose host state is
/// the store's resource table.
struct IoTable;

impl wasmtime::component::HasData for IoTable {
    type Data<'a> = &'a mut ResourceTable;
}

/// Link into `linker` exactly the WASI interfaces `component` imports, and
/// nothing else: an interface the component does not import is not there to
/// be reached, whatever the component does. Refuses a component that imports
/// an interface outside [`ALLOWED_IMPORTS`].
fn link_imports(linker: &mut Linker<State>, engine: &Engine, component: &Component) -> anyhow::Result<()> {
    use wasmtime_wasi::cli::{WasiCli, WasiCliView as _};
    use wasmtime_wasi::clocks::{WasiClocks, WasiClocksView as _};
    use wasmtime_wasi::p2::bindings::{cli, clocks, io, random};
    use wasmtime_wasi::random::WasiRandom;

    fn table(s: &mut State) -> &mut ResourceTable {
        &mut s.table
    }
    let l = linker;
    let ty = component.component_type();
    for (name, _) in ty.imports(engine) {
        let linked = match name.split('@').next().unwrap_or(name) {
            "wasi:cli/environment" => cli::environment::add_to_linker::<State, WasiCli>(l, State::cli),
            "wasi:cli/exit" => cli::exit::add_to_linker::<State, WasiCli>(l, State::cli),
            "wasi:cli/stdin" => cli::stdin::add_to_linker::<State, WasiCli>(l, State::cli),
            "wasi:cli/stdout" => cli::stdout::add_to_linker::<State, WasiCli>(l, State::cli),
            "wasi:cli/stderr" => cli::stderr::add_to_linker::<State, WasiCli>(l, State::cli),
            "wasi:cli/terminal-input" => cli::terminal_input::add_to_linker::<State, WasiCli>(l, State::cli),
            "wasi:cli/terminal-output" => cli::terminal_output::add_to_linker::<State, WasiCli>(l, State::cli),
            "wasi:cli/terminal-stdin" => cli::terminal_stdin::add_to_linker::<State, WasiCli>(l, State::cli),
            "wasi:cli/terminal-stdout" => cli::terminal_stdout::add_to_linker::<State, WasiCli>(l, State::cli),
            "wasi:cli/terminal-stderr" => cli::terminal_stderr::add_to_linker::<State, WasiCli>(l, State::cli),
            "wasi:io/error" => io::error::add_to_linker::<State, IoTable>(l, table),
            "wasi:io/poll" => io::poll::add_to_linker::<State, IoTable>(l, table),
            "wasi:io/streams" => io::streams::add_to_linker::<State, IoTable>(l, table),
            "wasi:clocks/wall-clock" => clocks::wall_clock::add_to_linker::<State, WasiClocks>(l, State::clocks),
            "wasi:clocks/monotonic-clock" => {
                clocks::monotonic_clock::add_to_linker::<State, WasiClocks>(l, State::clocks)
            }
            "wasi:random/insecure-seed" => {
                random::insecure_seed::add_to_linker::<State, WasiRandom>(l, |s| s.wasi.random())
            }
            // Type-only: nothing to link.
            "zae:aggregator/types" => Ok(()),
            _ => anyhow::bail!("the component imports {name}, which the planner has no use for: refused"),
        };
        linked.map_err(|e| anyhow::Error::from(e).context(format!("linking {name}")))?;
    }
    Ok(())
}

/// Where a failure happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Instantiate,
    Call,
}

/// Turn a wasmtime error into a [`CallError`]: a refused memory growth wins
/// (whatever it turned into), then an epoch interrupt, then the phase.
fn classify(e: &wasmtime::Error, phase: Phase, state: &State, limits: Limits) -> CallError {
    if state.cap.denied {
        return CallError::MemoryLimit { limit: limits.memory_bytes, detail: chain_text(e) };
    }
    let trap = e.downcast_ref::<Trap>().copied();
    if trap == Some(Trap::Interrupt) {
        return CallError::DeadlineExceeded { deadline: limits.deadline };
    }
    let mut detail = chain_text(e);
    let stderr = state.stderr.contents();
    if !stderr.is_empty() {
        detail.push_str("\nguest stderr: ");
        detail.push_str(String::from_utf8_lossy(&stderr).trim_end());
    }
    match phase {
        Phase::Instantiate => CallError::Instantiate(detail),
        Phase::Call => CallError::Trap { code: trap.map(|t| t.to_string()), detail },
    }
}

/// The error and its causes (the wasm backtrace is one of them), without
/// the host-side Rust backtrace that `Debug` would add.
fn chain_text(e: &wasmtime::Error) -> String {
    let mut out = String::new();
    for (i, cause) in e.chain().enumerate() {
        if i > 0 {
            out.push_str("\ncaused by: ");
        }
        out.push_str(&cause.to_string());
    }
    out
}

/// Per-call store data.
struct State {
    wasi: WasiCtx,
    table: ResourceTable,
    cap: MemoryCap,
    stderr: MemoryOutputPipe,
}

impl State {
    fn new(memory_bytes: usize) -> State {
        let stderr = MemoryOutputPipe::new(STDERR_CAPACITY);
        // Nothing is granted: no args, no environment, no preopened
        // directories, no network, no host stdio. Clocks are frozen at zero
        // (the planner takes time as an argument); stderr is captured so a
        // guest panic message can be reported with the trap.
        let wasi = WasiCtxBuilder::new()
            .stderr(stderr.clone())
            // Fixed, so hash tables iterate alike in every call and host.
            .insecure_random_seed(0)
            .wall_clock(FrozenClock)
            .monotonic_clock(FrozenClock)
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        State { wasi, table: ResourceTable::new(), cap: MemoryCap::new(memory_bytes), stderr }
    }
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

/// A clock that always reads zero.
struct FrozenClock;

impl HostWallClock for FrozenClock {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }

    fn now(&self) -> Duration {
        Duration::ZERO
    }
}

impl HostMonotonicClock for FrozenClock {
    fn resolution(&self) -> u64 {
        1_000_000_000
    }

    fn now(&self) -> u64 {
        0
    }
}

/// [`StoreLimits`] that remembers whether it refused a memory growth, so a
/// failure can be attributed to the cap rather than reported as a plain trap.
struct MemoryCap {
    limits: StoreLimits,
    denied: bool,
}

impl MemoryCap {
    fn new(memory_bytes: usize) -> MemoryCap {
        let limits = StoreLimitsBuilder::new()
            .memory_size(memory_bytes)
            .instances(MAX_INSTANCES)
            .memories(MAX_MEMORIES)
            .tables(MAX_TABLES)
            .table_elements(MAX_TABLE_ELEMENTS)
            .trap_on_grow_failure(true)
            .build();
        MemoryCap { limits, denied: false }
    }
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        let verdict = self.limits.memory_growing(current, desired, maximum);
        if !matches!(verdict, Ok(true)) {
            self.denied = true;
        }
        verdict
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.denied = true;
        self.limits.memory_grow_failed(error)
    }

    fn table_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        self.limits.table_growing(current, desired, maximum)
    }

    fn table_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.limits.table_grow_failed(error)
    }

    fn instances(&self) -> usize {
        self.limits.instances()
    }

    fn tables(&self) -> usize {
        self.limits.tables()
    }

    fn memories(&self) -> usize {
        self.limits.memories()
    }
}

/// Background thread advancing the engine's epoch every [`EPOCH_TICK`];
/// stops (and is joined) when dropped.
struct Ticker {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Ticker {
    fn start(engine: Engine) -> anyhow::Result<Ticker> {
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = thread::Builder::new()
            .name("zae-epoch-ticker".into())
            .spawn(move || {
                while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(EPOCH_TICK) {
                    engine.increment_epoch();
                }
            })
            .context("starting the epoch ticker thread")?;
        Ok(Ticker { stop: Some(stop), thread: Some(thread) })
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt as _;

    fn limits() -> Limits {
        Limits { memory_bytes: 1 << 20, deadline: Duration::from_millis(5) }
    }

    fn component(wat: &str) -> (Engine, Component) {
        let engine = new_engine().unwrap();
        let component = Component::new(&engine, wat::parse_str(wat).unwrap()).unwrap();
        (engine, component)
    }

    #[test]
    fn only_the_interfaces_a_component_imports_are_linked() {
        let environment = r#"(component (import "wasi:cli/environment@0.2.0" (instance
            (export "get-environment" (func (result (list (tuple string string))))))))"#;
        let exit = r#"(component (import "wasi:cli/exit@0.2.0" (instance
            (export "exit" (func (param "status" (result)))))))"#;
        let (engine, with_environment) = component(environment);
        let with_exit = Component::new(&engine, wat::parse_str(exit).unwrap()).unwrap();
        let mut linker: Linker<State> = Linker::new(&engine);
        link_imports(&mut linker, &engine, &with_environment).unwrap();
        linker.instantiate_pre(&with_environment).expect("what it imports is linked");
        let err = linker.instantiate_pre(&with_exit).err().expect("wasi:cli/exit was not linked");
        assert!(format!("{err:#}").contains("wasi:cli/exit"), "{err:#}");
        // Linking for the second component adds its import.
        link_imports(&mut linker, &engine, &with_exit).unwrap();
        linker.instantiate_pre(&with_exit).expect("now linked");
    }

    #[test]
    fn a_component_importing_an_interface_outside_the_list_is_refused() {
        let (engine, random) = component(
            r#"(component (import "wasi:random/random@0.2.0" (instance
                (export "get-random-u64" (func (result u64))))))"#,
        );
        let mut linker: Linker<State> = Linker::new(&engine);
        let err = link_imports(&mut linker, &engine, &random).unwrap_err();
        assert!(format!("{err:#}").contains("imports wasi:random/random@0.2.0"), "{err:#}");
    }

    #[test]
    fn a_refused_growth_is_a_memory_limit_whatever_the_trap() {
        let mut state = State::new(1 << 20);
        assert!(state.cap.memory_growing(0, 1 << 20, None).unwrap());
        assert!(!state.cap.denied);
        assert!(state.cap.memory_growing(1 << 20, 2 << 20, None).is_err());
        assert!(state.cap.denied);
        let e = wasmtime::Error::from(Trap::UnreachableCodeReached);
        for phase in [Phase::Instantiate, Phase::Call] {
            match classify(&e, phase, &state, limits()) {
                CallError::MemoryLimit { limit, .. } => assert_eq!(limit, 1 << 20),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn an_interrupt_is_a_deadline() {
        let state = State::new(1 << 20);
        let e = wasmtime::Error::from(Trap::Interrupt).context("while planning");
        assert_eq!(
            classify(&e, Phase::Call, &state, limits()),
            CallError::DeadlineExceeded { deadline: Duration::from_millis(5) }
        );
    }

    #[tokio::test]
    async fn other_traps_carry_code_cause_and_guest_stderr() {
        let state = State::new(1 << 20);
        let mut stderr = state.stderr.clone();
        stderr.write_all(b"panicked at src/lib.rs:1:1:\nboom\n").await.unwrap();
        let e = wasmtime::Error::from(Trap::UnreachableCodeReached).context("error while executing at wasm backtrace");
        match classify(&e, Phase::Call, &state, limits()) {
            CallError::Trap { code, detail } => {
                assert_eq!(code.as_deref(), Some(Trap::UnreachableCodeReached.to_string().as_str()));
                assert!(detail.starts_with("error while executing at wasm backtrace\ncaused by: "), "{detail}");
                assert!(detail.ends_with("guest stderr: panicked at src/lib.rs:1:1:\nboom"), "{detail}");
            }
            other => panic!("{other:?}"),
        }
        match classify(&wasmtime::format_err!("import missing"), Phase::Instantiate, &state, limits()) {
            CallError::Instantiate(detail) => assert!(detail.starts_with("import missing"), "{detail}"),
            other => panic!("{other:?}"),
        }
    }
}
