#!/usr/bin/env bash
# The whole test suite: lint (rustfmt, clippy with warnings denied), unit,
# property, conformance, integration (against a real moto server on
# 127.0.0.1) and end-to-end tests of the binary.
#
#   bash tests/run.sh            # from the repository root, on a fresh machine
#
# Installs what it needs first (tests/env.sh). Extra arguments go to
# `cargo test` (e.g. `bash tests/run.sh -p zae-planner`). Then the
# conformance kit over the native, wasmtime, Node and Python hosts
# (tests/hosts/run-all.sh; npm ci and a pip venv on first use), the local main
# job checked by counts (tests/local/check.sh), the deployment
# tests (tests/deploy/run.sh: cfn-lint, the templates on moto, switch-over;
# ZAE_SKIP_DEPLOY=1 skips them), and the parity
# check against the Python aggregator (tests/parity/run.sh; it installs
# zae-limiter 0.13.0 and 0.17.0 from PyPI, each into its oracle's venv;
# ZAE_SKIP_PARITY=1 skips it, ZAE_SKIP_PARITY17=1 only the 0.17 part).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
start=$(date +%s)
# shellcheck source=tests/env.sh
source tests/env.sh

# step NAME COMMAND...: runs one step and prints how long it took (the
# time CI spends is visible step by step in its log).
step() {
    local name=$1 t0
    shift
    echo "== $name"
    t0=$(date +%s)
    "$@"
    echo "== $name: $(( $(date +%s) - t0 )) s"
}

step "cargo fmt --check" cargo fmt --all --check
step "cargo clippy --workspace --all-targets -- -D warnings" cargo clippy --workspace --all-targets -- -D warnings
step "cargo test --workspace $*" cargo test --workspace "$@"
step "the component in every host (tests/hosts/run-all.sh)" bash tests/hosts/run-all.sh
step "the local main job, checked by counts (tests/local/check.sh)" bash tests/local/check.sh
# The demo's venv holds the zae-limiter client: usage answers must equal its get_usage_summary.
step "usage against zae-limiter's get_usage_summary" env ZAE_DEMO_PYTHON="$PWD/target/demo-venv/bin/python" \
    cargo test -p zae-aggregator --test usage the_python_library_agrees -- --ignored
if [ "${ZAE_SKIP_DEPLOY:-0}" != 1 ]; then
    step "deployment templates and switch-over (tests/deploy/run.sh)" bash tests/deploy/run.sh
fi
if [ "${ZAE_SKIP_PARITY:-0}" != 1 ]; then
    step "parity with the Python aggregator (tests/parity/run.sh)" bash tests/parity/run.sh
fi

echo "== tests finished in $(( $(date +%s) - start )) s"
