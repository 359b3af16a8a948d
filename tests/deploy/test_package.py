"""deploy/package.sh without the cross build (which runs outside CI: see
deploy/README.md#building-the-package): the packaging and its checks, on
binaries made here.

    ZAE_BIN=target/debug/zae-aggregator CARGO_LAMBDA=.../cargo-lambda python test_package.py

* `--arch x86_64 --binary ZAE_BIN --verify`: the ELF and glibc checks pass,
  bootstrap.zip holds one executable `bootstrap` equal to the binary, and
  deploy/verify_package.py finds every plannable conformance vector planned
  byte for byte and the precompiled component loaded; the same binary
  packaged twice gives the same zip;
* `--arch arm64` on that x86_64 binary fails (wrong ELF machine);
* a binary that needs glibc 2.36 (a C program calling `arc4random`, built
  with this machine's gcc; skipped where the C library is older) fails the
  glibc check;
* bad arguments exit 2;
* `[package.metadata.lambda]` (host/Cargo.toml), as `cargo lambda system`
  reads it, builds the arm64 glibc-2.34 target in release; `cargo lambda
  deploy` against moto creates the function with the templates' defaults
  (runtime, memory, timeout, tracing, log retention).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import ROOT, SAM_TEMPLATE, Checks, Moto, load_template  # noqa: E402

c = Checks("package")
binary = Path(os.environ.get("ZAE_BIN", ROOT / "target" / "debug" / "zae-aggregator"))
if not binary.is_file():
    raise SystemExit(f"no zae-aggregator binary at {binary} (cargo build --bin zae-aggregator, or set ZAE_BIN)")
cargo_lambda = os.environ.get("CARGO_LAMBDA", "cargo-lambda")


def c_program(path: Path, source: str) -> bool:
    """Build a small C program with this machine's gcc; False if it does not compile."""
    return subprocess.run(["gcc", "-o", str(path), "-x", "c", "-"], input=source, text=True,
                          capture_output=True).returncode == 0


HELLO = "int main(void){return 0;}\n"


def package(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(ROOT / "deploy" / "package.sh"), *args], capture_output=True, text=True,
                          timeout=1800)


with tempfile.TemporaryDirectory() as tmp:
    tmp = Path(tmp)
    out = tmp / "lambda"
    p = package("--arch", "x86_64", "--binary", str(binary), "--lambda-dir", str(out), "--verify", "--reference",
                str(binary))
    print(p.stdout, end="")
    if not c.eq(p.returncode, 0, f"package.sh --arch x86_64 --verify exit code\n{p.stderr}"):
        c.finish()
    c.ok("x86_64 ELF, needs glibc <=" in p.stdout, "the ELF and glibc checks ran")
    c.ok("precompiled code for x86_64-unknown-linux-gnu loaded" in p.stdout, "the precompiled component was used")
    c.ok(" vectors planned byte for byte like " in p.stdout, "verify_package.py checked the vectors")
    z = zipfile.ZipFile(out / "zae-aggregator" / "bootstrap.zip")
    infos = z.infolist()
    c.eq([i.filename for i in infos], ["bootstrap"], "bootstrap.zip holds only bootstrap")
    c.eq(infos[0].external_attr >> 16, 0o100755, "bootstrap is an executable regular file in the zip")
    c.ok(z.read("bootstrap") == binary.read_bytes(), "the zipped bootstrap is the binary")
    c.ok((out / "zae-aggregator" / "bootstrap-x86_64.zip").is_file(), "the per-architecture copy exists")

    # Small C programs: one that any glibc since 2.2.5 runs (for the
    # repeatability check; zipping the 500 MB debug build twice would only
    # cost time), one that needs glibc 2.36.
    hello = tmp / "hello"
    c.ok(c_program(hello, HELLO), "gcc builds a small program")
    zips = []
    for n in (1, 2):
        p = package("--arch", "x86_64", "--binary", str(hello), "--lambda-dir", str(tmp / f"hello{n}"))
        c.eq(p.returncode, 0, f"package.sh of a small binary, run {n}: {p.stderr}")
        zips.append((tmp / f"hello{n}" / "zae-aggregator" / "bootstrap.zip").read_bytes())
    c.ok(zips[0] == zips[1], "the same binary gives the same zip")

    p = package("--arch", "arm64", "--binary", str(binary), "--lambda-dir", str(tmp / "wrong"))
    c.ok(p.returncode == 1 and "not arm64 (AArch64)" in p.stderr, f"an x86_64 binary is refused as arm64: {p.stderr}")

    newer = tmp / "new_glibc"
    if c_program(newer, "#include <stdlib.h>\n#include <stdio.h>\nint main(void){printf(\"%u\\n\", arc4random());}\n"):
        p = package("--arch", "x86_64", "--binary", str(newer), "--lambda-dir", str(tmp / "newer"))
        c.ok(p.returncode == 1 and "needs glibc 2.36" in p.stderr, f"a glibc-2.36 binary is refused: {p.stderr}")
    else:
        print("package: gcc cannot build an arc4random program here (glibc < 2.36); glibc refusal not checked")

    for args in (["--arch", "sparc"], ["--bogus"], ["--binary", str(tmp / "missing")]):
        p = package(*args, "--lambda-dir", str(tmp / "bad"))
        c.eq(p.returncode, 2, f"package.sh {' '.join(args)} exit code")

# cargo-lambda's view of the package metadata.
p = subprocess.run([cargo_lambda, "lambda", "system", "--package", "zae-aggregator", "--output-format", "json"],
                   cwd=ROOT, capture_output=True, text=True, timeout=300)
if c.eq(p.returncode, 0, f"cargo lambda system exit code: {p.stderr}"):
    cfg = json.loads(p.stdout)["config"]["package"]
    c.eq(cfg["build"]["target"], ["aarch64-unknown-linux-gnu.2.34"], "cargo lambda build's target")
    c.eq(cfg["build"].get("release"), True, "cargo lambda build is a release build")
    params = load_template(SAM_TEMPLATE)["Parameters"]
    deploy = cfg["deploy"]
    c.eq(deploy["runtime"], "provided.al2023", "cargo lambda deploy's runtime")
    c.eq(deploy["memory"], params["MemorySize"]["Default"], "cargo lambda deploy's memory = the template's default")
    c.eq(deploy["timeout"], params["Timeout"]["Default"], "cargo lambda deploy's timeout = the template's default")
    c.eq(deploy["log_retention"], params["LogRetentionDays"]["Default"], "log retention = the template's default")
    c.ok("env_var" not in deploy, "no environment in the metadata: --env-var would replace it, not add to it")

# `cargo lambda deploy` itself, against moto's Lambda: the function it creates
# from a package laid out by package.sh gets the metadata's settings.
with tempfile.TemporaryDirectory() as tmp, Moto(Path(tmp) / "moto.log") as moto:
    tmp = Path(tmp)
    hello = tmp / "hello"
    c.ok(c_program(hello, HELLO), "gcc builds a small program")
    p = package("--arch", "x86_64", "--binary", str(hello), "--lambda-dir", str(tmp / "lambda"))
    c.eq(p.returncode, 0, f"package.sh for cargo lambda deploy: {p.stderr}")
    role = moto.client("iam").create_role(RoleName="zae", AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
                                                "Action": "sts:AssumeRole"}]}))["Role"]["Arn"]
    p = subprocess.run([cargo_lambda, "lambda", "deploy", "--endpoint-url", moto.url, "--region", "us-east-1",
                        "--lambda-dir", str(tmp / "lambda"), "--binary-name", "zae-aggregator", "--role", role,
                        "--env-var", "TABLE_NAME=rate-limits", "rate-limits-zae-aggregator"],
                       cwd=ROOT, env=moto.env(), capture_output=True, text=True, timeout=300)
    if c.eq(p.returncode, 0, f"cargo lambda deploy exit code: {p.stderr[-2000:]}"):
        fn = moto.client("lambda").get_function(FunctionName="rate-limits-zae-aggregator")["Configuration"]
        params = load_template(SAM_TEMPLATE)["Parameters"]
        c.eq(fn["Runtime"], "provided.al2023", "deployed runtime")
        c.eq(fn["MemorySize"], params["MemorySize"]["Default"], "deployed memory = the template's default")
        c.eq(fn["Timeout"], params["Timeout"]["Default"], "deployed timeout = the template's default")
        c.eq(fn["TracingConfig"], {"Mode": "Active"}, "deployed tracing")
        c.eq(fn["Environment"]["Variables"], {"TABLE_NAME": "rate-limits"}, "deployed environment")
        groups = moto.client("logs").describe_log_groups(logGroupNamePrefix="/aws/lambda/rate-limits-zae-aggregator")
        c.eq([g.get("retentionInDays") for g in groups["logGroups"]], [params["LogRetentionDays"]["Default"]],
             "log group retention = the template's default")
c.finish()
