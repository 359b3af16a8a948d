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
