# Sourced by tests/run.sh, tests/local/demo.sh and .ci/run: makes sure the
# tools the tests need are installed, from scratch on a fresh machine.
#
# * the wasm32-wasip2 Rust target (the host's build script compiles the
#   planner component with it);
# * a Python venv with the pinned moto server (tests/requirements-moto.txt),
#   at $ZAE_MOTO_VENV (default: target/moto-venv); its server, started through
#   tests/moto_server.py (unique stream sequence numbers), is exported as
#   ZAE_MOTO_SERVER for the integration tests.
#
# Idempotent: a second run only checks.

_zae_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2; then
    echo "== installing the wasm32-wasip2 Rust target" >&2
    rustup target add wasm32-wasip2 >&2
fi

# shellcheck source=tests/venv.sh
source "$_zae_root/tests/venv.sh"

ZAE_MOTO_VENV="${ZAE_MOTO_VENV:-$_zae_root/target/moto-venv}"
zae_venv "$ZAE_MOTO_VENV" "$_zae_root/tests/requirements-moto.txt" moto_server "the moto server"
export ZAE_MOTO_VENV
ZAE_MOTO_SERVER="$(zae_moto_wrapper "$ZAE_MOTO_VENV")"
export ZAE_MOTO_SERVER
unset _zae_root
