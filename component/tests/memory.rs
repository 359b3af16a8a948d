//! Heap used by shard propagation, counted by a global allocator
//! (docs/benchmarks.md#wide-images). Bytes, not time: deterministic.
//!
//! A propagation's new shard items share one copy of shard 0's raised
//! NewImage (the contract's `put-item.base`, since 0.7.0): each carries only
//! the four attributes that name its shard, so the plan grows with the image
//! plus a few hundred bytes per shard, not with shards x image. What the
//! planner may add on top is bounded by the image, whatever the shard count.
//!
//! ```text
//! cargo test --release -p zae-planner --test memory -- --include-ignored --nocapture
//! ```

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use zae_planner::config::Config;
use zae_planner::plan::{Batch, Operation, Purpose};
use zae_planner::window::Window;

struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(by: usize) {
    let now = CURRENT.fetch_add(by, Ordering::Relaxed) + by;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

// SAFETY: every call is passed on to the system allocator unchanged; the
// counters are only bookkeeping.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract is System's.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract is System's.
        unsafe { System.dealloc(ptr, layout) };
        CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller's contract is System's.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
            grew(new_size);
        }
        p
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// One measurement at a time (the counters are process-wide).
static SERIAL: Mutex<()> = Mutex::new(());

/// Heap figures of one `plan` call, bytes.
#[derive(Debug)]
struct Heap {
    /// The event text.
    event: usize,
    /// Highest heap during the call, above what was live before it.
    peak: usize,
    /// What the returned plan holds.
    plan: usize,
    /// Propagation PutItems in the plan.
    clones: usize,
}

/// `wide_event` with consumption on its first ten limits only: a record whose every limit
/// changed needs a snapshot expression beyond DynamoDB's 4 KB once it has a few hundred
/// limits, and is then invalid (docs/specification.md#dynamodb-limits), with nothing to
/// propagate.
fn wide_event_few_deltas(attrs: usize, shards: u32) -> String {
    let mut event: serde_json::Value = serde_json::from_str(&zae_planner::vector::wide_event(attrs, shards)).unwrap();
    let record = &mut event["Records"][0]["dynamodb"];
    let new = record["NewImage"].as_object().unwrap().clone();
    for (name, value) in record["OldImage"].as_object_mut().unwrap() {
        let limit: Option<usize> =
            name.strip_prefix("b_l").and_then(|r| r.strip_suffix("_tc")).and_then(|k| k.parse().ok());
        if limit.is_some_and(|k| k >= 10) {
            *value = new[name].clone();
        }
    }
    event.to_string()
}

fn measure(attrs: usize, shards: u32) -> Heap {
    let event_json = wide_event_few_deltas(attrs, shards);
    let config = Config {
        table_name: "zae-limiter".into(),
        windows: vec![Window::Hourly, Window::Daily],
        snapshot_ttl_days: 90,
        archive_bucket: None,
        max_shard_count: shards,
        dead_letter_bucket: None,
        limiter: Some(zae_planner::config::Limiter::V013),
    };
    let batch = Batch { event_json: &event_json, config: &config, now_ms: 1_704_067_260_000, invocation_id: "m" };
    let before = CURRENT.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    let plan = zae_planner::plan(&batch).expect("plan");
    let heap = Heap {
        event: event_json.len(),
        peak: PEAK.load(Ordering::Relaxed) - before,
        plan: CURRENT.load(Ordering::Relaxed) - before,
        clones: plan
            .writes
            .iter()
            .filter(|w| w.purpose == Purpose::ShardPropagate && matches!(w.operation, Operation::PutItem(_)))
            .count(),
    };
    drop(plan);
    println!("{attrs} attributes, {shards} shards: {heap:?}, above the plan {}", heap.peak - heap.plan);
    heap
}

#[test]
fn propagation_adds_at_most_a_few_images_to_the_plan_whatever_the_shard_count() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let few = measure(2_048, 4);
    let many = measure(2_048, 128);
    assert_eq!((few.clones, many.clones), (3, 127));
    // 124 more clones, each a write of four small attributes over the shared image.
    let per_clone = (many.plan - few.plan) / 124;
    assert!(per_clone < 4_096, "{per_clone} bytes per clone: {few:?} {many:?}");
    assert!(many.plan < 10 * few.event, "the plan holds the image once, not once per clone: {few:?} {many:?}");
    // The planner's working memory above its output: the record's parse tree
    // and one rendered image, the same for 3 or 127 clones.
    for h in [&few, &many] {
        assert!(h.peak - h.plan <= 16 * h.event, "{h:?}");
    }
    assert!(many.peak - many.plan <= few.peak - few.plan + few.event, "{few:?} {many:?}");
}

/// The largest case: a 400 KB item (16,384 attributes) raised to the
/// largest accepted `MAX_SHARD_COUNT` (1,024). Slow in a debug build.
#[test]
#[ignore = "slow in a debug build; run with --release --include-ignored"]
fn a_400_kb_image_raised_to_1024_shards() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let h = measure(16_384, 1_024);
    assert_eq!(h.clones, 1_023);
    assert!(h.peak - h.plan <= 16 * h.event, "{h:?}");
    assert!(h.plan < 10 * h.event, "the plan holds the image once, not once per clone: {h:?}");
}
