//! Heap used by shard propagation, counted by a global allocator
//! (docs/benchmarks.md#wide-images). Bytes, not time: deterministic.
//!
//! A propagation's new shard items are each a full copy of shard 0's
//! NewImage in the plan (the contract's `put-item` carries `item:
//! list<attribute>`), so the plan itself grows with shards x image. What the
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

fn measure(attrs: usize, shards: u32) -> Heap {
    let event_json = zae_planner::vector::wide_event(attrs, shards);
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
    assert!(many.plan > 100 * few.event, "each clone is a full item in the plan");
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
#[ignore = "builds a plan of ~2 GB; run with --release --include-ignored"]
fn a_400_kb_image_raised_to_1024_shards() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let h = measure(16_384, 1_024);
    assert_eq!(h.clones, 1_023);
    assert!(h.peak - h.plan <= 16 * h.event, "{h:?}");
}
