#!/usr/bin/env bash
# The deployment tests: both templates linted with cfn-lint (informational
# checks included), compared with each other and with the code, the plain one
# deployed on a moto server, the README's required settings compared with
# the templates, deploy/switch-over.sh run against upstream's own stack,
# deploy/package.sh on the debug build (the arm64 cross build itself runs
# outside CI), and the Lambda loop under cargo-lambda's Runtime API emulator.
#
#   bash tests/deploy/run.sh
#
# Installs cfn-lint (tests/deploy/requirements.txt, exact versions) into
# target/deploy-venv; the other scripts run in the moto venv of tests/env.sh
# (boto3, PyYAML, moto). moto listens on 127.0.0.1 only and is killed by PID;
# the only network use is pip (and one `pip download` of zae-limiter 0.13.0's
# wheel, cached in target/deploy-upstream/). Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
root=$(pwd)

# shellcheck source=tests/env.sh
source tests/env.sh
venv="$root/target/deploy-venv"
zae_venv "$venv" "$root/tests/deploy/requirements.txt" cfn-lint cfn-lint
# cargo-lambda (its Runtime API emulator and its view of the package
# metadata), the venv deploy/package.sh builds with.
package_venv="$root/target/package-venv"
zae_venv "$package_venv" "$root/deploy/requirements-package.txt" cargo-lambda "cargo-lambda and zig"
py="$ZAE_MOTO_VENV/bin/python"
# The debug build of the binary (tests/run.sh's cargo test made it).
bin="$root/target/debug/zae-aggregator"
[ -x "$bin" ] || cargo build --locked -p zae-aggregator --bin zae-aggregator

failed=0
step() {
    local name=$1
    shift
    echo "== deploy: $name"
    if ! "$@"; then
        echo "FAILED: $name" >&2
        failed=$((failed + 1))
    fi
}

# Every rule, informational ones included; a justified exception is a
# per-resource Metadata cfn-lint ignore in the template, with its reason.
step "cfn-lint" "$venv/bin/cfn-lint" --include-checks I -- deploy/template.yaml deploy/cloudformation.yaml
step "templates are twins and match the code" "$py" tests/deploy/test_templates.py
step "README settings table = templates" "$py" tests/deploy/test_settings_table.py
step "plain template on moto" "$py" tests/deploy/test_stack.py
step "switch-over on upstream 0.13.0's stack" env PYTHON="$py" "$py" tests/deploy/test_switch_over.py
step "package.sh on the debug build, and cargo-lambda's metadata" \
    env ZAE_BIN="$bin" CARGO_LAMBDA="$package_venv/bin/cargo-lambda" "$py" tests/deploy/test_package.py
step "the Lambda loop under cargo-lambda's Runtime API emulator" \
    env ZAE_BIN="$bin" CARGO_LAMBDA="$package_venv/bin/cargo-lambda" "$py" tests/deploy/test_runtime_emulator.py
# SAM's CLI takes minutes to install: only when asked (outside CI).
if [ "${ZAE_DEPLOY_SAM:-0}" = 1 ]; then
    zae_venv "$root/target/sam-venv" "$root/tests/deploy/requirements-sam.txt" sam "the SAM CLI"
    step "sam build and sam package of the SAM template" \
        env ZAE_BIN="$bin" SAM="$root/target/sam-venv/bin/sam" "$py" tests/deploy/test_sam.py
fi

if [ "$failed" -ne 0 ]; then
    echo "== deploy tests: $failed step(s) failed" >&2
    exit 1
fi
echo "== deploy tests passed"
