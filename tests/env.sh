# Sourced by tests/run.sh, tests/local/demo.sh and .ci/run: makes sure the
# tools the tests need are installed, from scratch on a fresh machine.
#
# * the wasm32-wasip2 Rust target (the host's build script compiles the
#   planner component with it);
# * a Python venv with the pinned moto server (tests/requirements-moto.txt),
#   at $ZAE_MOTO_VENV (default: target/moto-venv), exported as
#   ZAE_MOTO_SERVER for the integration tests.
#
# Idempotent: a second run only checks.

_zae_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2; then
    echo "== installing the wasm32-wasip2 Rust target" >&2
    rustup target add wasm32-wasip2 >&2
fi

ZAE_MOTO_VENV="${ZAE_MOTO_VENV:-$_zae_root/target/moto-venv}"
_zae_req="$_zae_root/tests/requirements-moto.txt"
if [ ! -x "$ZAE_MOTO_VENV/bin/moto_server" ] || ! cmp -s "$_zae_req" "$ZAE_MOTO_VENV/requirements-moto.txt"; then
    echo "== installing the moto server into $ZAE_MOTO_VENV" >&2
    python3 -m venv "$ZAE_MOTO_VENV" >&2
    "$ZAE_MOTO_VENV/bin/pip" install --quiet --disable-pip-version-check -r "$_zae_req" >&2
    cp "$_zae_req" "$ZAE_MOTO_VENV/requirements-moto.txt"
fi
export ZAE_MOTO_VENV
export ZAE_MOTO_SERVER="$ZAE_MOTO_VENV/bin/moto_server"
unset _zae_root _zae_req
