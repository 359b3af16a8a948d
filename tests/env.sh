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

# zae_venv VENV REQUIREMENTS EXECUTABLE WHAT: (re)install VENV from the
# pinned REQUIREMENTS file unless it has EXECUTABLE and was made from the
# same file (a copy is kept in VENV). Also used by tests/deploy/run.sh.
zae_venv() {
    local venv=$1 req=$2 exe=$3 what=$4 copy
    copy="$venv/$(basename "$req")"
    if [ ! -x "$venv/bin/$exe" ] || ! cmp -s "$req" "$copy"; then
        echo "== installing $what into $venv" >&2
        python3 -m venv "$venv" >&2
        "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$req" >&2
        cp "$req" "$copy"
    fi
}

ZAE_MOTO_VENV="${ZAE_MOTO_VENV:-$_zae_root/target/moto-venv}"
zae_venv "$ZAE_MOTO_VENV" "$_zae_root/tests/requirements-moto.txt" moto_server "the moto server"
export ZAE_MOTO_VENV
export ZAE_MOTO_SERVER="$ZAE_MOTO_VENV/bin/moto_server"
unset _zae_root
