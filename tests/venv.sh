# Sourced by tests/env.sh and deploy/package.sh: one way to install a pinned
# Python tool into its own venv.
#
# zae_venv VENV REQUIREMENTS EXECUTABLE WHAT: (re)install VENV from the
# pinned REQUIREMENTS file unless it has EXECUTABLE and was made from the
# same file (a copy is kept in VENV).
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

# zae_moto_wrapper VENV: write VENV/bin/zae-moto-server, which starts that
# venv's moto server through tests/moto_server.py (unique stream sequence
# numbers under concurrent writes), and print its path.
zae_moto_wrapper() {
    local venv=$1 root wrapper
    root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
    wrapper="$venv/bin/zae-moto-server"
    printf '#!/bin/sh\nexec "%s" "%s" "$@"\n' "$venv/bin/python" "$root/tests/moto_server.py" > "$wrapper"
    chmod +x "$wrapper"
    echo "$wrapper"
}
