//! Every conformance vector under `tests/conformance/` gives byte-identical
//! canonical plans natively, through the wasm component, and in its
//! `plan.json`.

mod common;

use zae_planner::vector::{default_root, load_all};

#[tokio::test]
async fn wasm_and_native_plans_match_every_vector() {
    let root = default_root();
    let vectors = load_all(&root).unwrap_or_else(|e| panic!("loading vectors from {}: {e}", root.display()));
    assert!(!vectors.is_empty(), "no conformance vectors found under {}", root.display());

    let mismatches = common::check_vectors(common::planner(), &vectors).await;
    assert!(
        mismatches.is_empty(),
        "{} mismatch(es) over {} vectors:\n{}",
        mismatches.len(),
        vectors.len(),
        mismatches.join("\n")
    );
}

/// Every reader vector (`tests/conformance/reader/`) through the wasm
/// component's `reader` interface, rendered by the component, equals its
/// `answer.json` and the native reader's answer.
#[tokio::test]
async fn wasm_reader_matches_every_reader_vector() {
    use zae_aggregator::bindings::{reader, Window};
    use zae_aggregator::engine::Reading;
    use zae_planner::vector::{load_reader_all, run_reader_native, ReaderCall};

    let root = default_root().join("reader");
    let vectors = load_reader_all(&root).unwrap_or_else(|e| panic!("loading reader vectors: {e}"));
    assert!(!vectors.is_empty(), "no reader vectors under {}", root.display());
    fn query(q: &zae_planner::usage::Query) -> reader::UsageQuery<'_> {
        reader::UsageQuery {
            namespace: q.namespace.as_deref(),
            entity: q.entity.as_deref(),
            resource: q.resource.as_deref(),
            window: q.window.map(wasm_window),
            from: q.from.as_deref(),
            to: q.to.as_deref(),
        }
    }
    fn wasm_window(w: zae_planner::window::Window) -> Window {
        match w {
            zae_planner::window::Window::Hourly => Window::Hourly,
            zae_planner::window::Window::Daily => Window::Daily,
            zae_planner::window::Window::Monthly => Window::Monthly,
        }
    }
    fn texts(items: &[String]) -> Vec<&str> {
        items.iter().map(String::as_str).collect()
    }
    let planner = common::planner();
    let mut mismatches = Vec::new();
    for v in &vectors {
        let answer = match &v.call {
            ReaderCall::Rows { items, query: q } => {
                planner.usage_rows(&texts(items), query(q)).await.map(Reading::Rows)
            }
            ReaderCall::Summaries { items, query: q } => {
                planner.usage_summaries(&texts(items), query(q)).await.map(Reading::Summaries)
            }
            ReaderCall::Period { months, now_ms } => {
                planner.average_period(*months, *now_ms).await.map(Reading::Period)
            }
            ReaderCall::Average { items, query: q, months, now_ms, whole_period } => planner
                .monthly_average(&texts(items), query(q), *months, *now_ms, *whole_period)
                .await
                .map(Reading::Average),
            ReaderCall::Backfill { items, window, query: q, now_ms, ttl_days } => planner
                .backfill(&texts(items), wasm_window(*window), query(q), *now_ms, *ttl_days)
                .await
                .map(Reading::Backfill),
            ReaderCall::Reconcile { items, query: q } => {
                planner.reconcile(&texts(items), query(q)).await.map(Reading::Reconciliation)
            }
        };
        let rendered = match answer {
            Ok(a) => planner.render_reading(&a).await,
            Err(e) => Err(e),
        };
        match rendered {
            Err(e) => mismatches.push(format!("reader/{}: the wasm call failed: {e}", v.name)),
            Ok(wasm) => {
                let native = run_reader_native(v);
                if wasm != native {
                    mismatches.push(format!("reader/{}: wasm {wasm}\n  native {native}", v.name));
                }
                if v.expected.as_deref() != Some(wasm.as_str()) {
                    mismatches.push(format!("reader/{}: wasm {wasm}\n  expected {:?}", v.name, v.expected));
                }
            }
        }
    }
    assert!(mismatches.is_empty(), "{} mismatch(es):\n{}", mismatches.len(), mismatches.join("\n"));
}
