#!/usr/bin/env bash
# Builds the Lambda package: the release binary for provided.al2023, named
# `bootstrap`, with the planner component precompiled for the target's CPU.
#
#   bash deploy/package.sh [--arch arm64|x86_64] [--verify [--reference BIN]] [--binary PATH]
#                          [--lambda-dir DIR]
#
#   --arch      arm64 (default; Graviton, the cheaper architecture) or x86_64
#   --verify    afterwards, run deploy/verify_package.py: the package plans every
#               conformance vector byte for byte like an x86_64 build and
#               loads the precompiled code (arm64 runs under qemu-aarch64)
#   --reference the x86_64 build to compare with (default target/debug, then
#               target/release zae-aggregator)
#   --binary    package an already built binary instead of building one (it is
#               checked the same way); tests/deploy uses it with the debug build
#   --lambda-dir  where the package goes (default target/lambda)
#
# Writes target/lambda/zae-aggregator/bootstrap and bootstrap.zip (the layout
# of `cargo lambda build`, which SAM's template and `cargo lambda deploy`
# read). Each architecture is also kept as bootstrap-<arch>.zip.
#
# The cross build uses `cargo lambda build` with zig as the C compiler and
# linker (cargo-lambda and ziglang from PyPI, pinned in
# deploy/requirements-package.txt, installed into target/package-venv) for the
# target `<cpu>-unknown-linux-gnu.2.34`: glibc 2.34 is Amazon Linux 2023's, so
# the binary cannot ask for a newer symbol. The package step checks that
# anyway (readelf) and fails if a symbol needs glibc > 2.34 or the ELF
# machine is not the requested one.
#
# Cost: the arm64 release build from clean took 939 s on 2 cores; CI builds
# none (tests/deploy runs `--binary` on the debug build). See
# deploy/README.md#building-the-package.
set -euo pipefail
caller=$(pwd)
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$(pwd)

arch=arm64
verify=false
reference=
binary=
lambda_dir=
while [ $# -gt 0 ]; do
    case "$1" in
        --arch) arch=${2:-}; shift 2 ;;
        --arch=*) arch=${1#--arch=}; shift ;;
        --verify) verify=true; shift ;;
        --reference) reference=${2:-}; shift 2 ;;
        --reference=*) reference=${1#--reference=}; shift ;;
        --binary) binary=${2:-}; shift 2 ;;
        --binary=*) binary=${1#--binary=}; shift ;;
        --lambda-dir) lambda_dir=${2:-}; shift 2 ;;
        --lambda-dir=*) lambda_dir=${1#--lambda-dir=}; shift ;;
        -h|--help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; exit 0 ;;
        *) echo "package.sh: unknown argument $1 (try --help)" >&2; exit 2 ;;
    esac
done
case "$arch" in
    arm64) cpu=aarch64; elf_machine=AArch64 ;;
    x86_64) cpu=x86_64; elf_machine="Advanced Micro Devices X86-64" ;;
    *) echo "package.sh: --arch must be arm64 or x86_64, not '$arch'" >&2; exit 2 ;;
esac
triple="$cpu-unknown-linux-gnu"
max_glibc=2.34
# Paths given on the command line are relative to where it was typed.
lambda_dir=$(cd "$caller" && realpath -m -- "${lambda_dir:-$root/target/lambda}")
[ -z "$binary" ] || binary=$(cd "$caller" && realpath -m -- "$binary")
[ -z "$reference" ] || reference=$(cd "$caller" && realpath -m -- "$reference")
out="$lambda_dir/zae-aggregator"
start=$(date +%s)

if [ -z "$binary" ]; then
    # shellcheck source=tests/venv.sh
    source tests/venv.sh
    venv="$root/target/package-venv"
    zae_venv "$venv" "$root/deploy/requirements-package.txt" cargo-lambda "cargo-lambda and zig"
    for t in wasm32-wasip2 "$triple"; do
        if ! rustup target list --installed | grep -qx "$t"; then
            echo "== installing the $t Rust target" >&2
            rustup target add "$t" >&2
        fi
    done
    # cargo-lambda runs zig through `python3 -m ziglang` of this venv.
    export PATH="$venv/bin:$PATH"
    echo "== cargo lambda build --release --target $triple.$max_glibc (zig $(python3 -m ziglang version))"
    cargo lambda build --release --locked --package zae-aggregator --bin zae-aggregator \
        --compiler cargo-zigbuild --target "$triple.$max_glibc" --lambda-dir "$lambda_dir"
    binary="$out/bootstrap"
    echo "== built in $(( $(date +%s) - start )) s"
else
    [ -f "$binary" ] || { echo "package.sh: --binary $binary: no such file" >&2; exit 2; }
    mkdir -p "$out"
    if [ "$(realpath "$binary")" != "$(realpath -m "$out/bootstrap")" ]; then
        install -m 0755 "$binary" "$out/bootstrap"
    fi
fi

# The binary must be for the requested CPU and need nothing newer than
# Amazon Linux 2023's glibc.
machine=$(LC_ALL=C readelf --file-header "$out/bootstrap" | sed -n 's/^ *Machine: *//p')
if [ "$machine" != "$elf_machine" ]; then
    echo "package.sh: $out/bootstrap is for '$machine', not $arch ($elf_machine)" >&2
    exit 1
fi
newest=$(LC_ALL=C readelf --version-info --wide "$out/bootstrap" | grep -o 'GLIBC_[0-9][0-9.]*' |
    sed 's/GLIBC_//' | sort -uV | tail -n 1)
if [ -z "$newest" ]; then
    echo "package.sh: $out/bootstrap asks for no glibc symbol version; is it a dynamic glibc binary?" >&2
    exit 1
fi
if [ "$(printf '%s\n%s\n' "$newest" "$max_glibc" | sort -V | tail -n 1)" != "$max_glibc" ]; then
    echo "package.sh: $out/bootstrap needs glibc $newest; Amazon Linux 2023 (provided.al2023) has $max_glibc:" >&2
    LC_ALL=C readelf --version-info --wide "$out/bootstrap" | grep -o "GLIBC_$newest" | head -n 3 >&2
    exit 1
fi
echo "== $arch ELF, needs glibc <= $newest (provided.al2023 has $max_glibc)"

# A zip that Lambda runs: one executable `bootstrap`, a fixed timestamp so
# the same binary gives the same zip.
python3 - "$out/bootstrap" "$out/bootstrap.zip" <<'EOF'
import sys, zipfile
src, dst = sys.argv[1], sys.argv[2]
info = zipfile.ZipInfo("bootstrap", date_time=(1980, 1, 1, 0, 0, 0))
info.external_attr = (0o100755 << 16)
info.create_system = 3  # Unix, so the mode bits count
info.compress_type = zipfile.ZIP_DEFLATED
with open(src, "rb") as f, zipfile.ZipFile(dst, "w") as z:
    z.writestr(info, f.read())
EOF
cp "$out/bootstrap.zip" "$out/bootstrap-$arch.zip"
echo "== $out/bootstrap: $(stat -c %s "$out/bootstrap") bytes; bootstrap.zip: $(stat -c %s "$out/bootstrap.zip") bytes"

if $verify; then
    python3 deploy/verify_package.py --arch "$arch" ${reference:+--reference "$reference"} "$out/bootstrap"
fi
echo "== package.sh finished in $(( $(date +%s) - start )) s"
