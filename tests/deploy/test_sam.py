"""SAM's own tools on deploy/template.yaml, against moto: `sam build` keeps
the prebuilt package (the template's CodeUri is deploy/package.sh's zip),
and `sam package` uploads exactly that zip and points the function at it.

    SAM=.../sam ZAE_BIN=target/debug/zae-aggregator python test_sam.py

The package is made by `deploy/package.sh --binary ZAE_BIN` in a scratch
copy of the layout (deploy/template.yaml beside target/lambda/), so the
repository's own target/lambda is left alone. moto's CloudFormation cannot
run SAM's transform, so `sam deploy` itself is not run; the transformed
template is cfn-lint's business (tests/deploy/run.sh) and the plain twin is
deployed on moto by test_stack.py.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import ROOT, SAM_TEMPLATE, Checks, Moto, load_template  # noqa: E402

c = Checks("sam")
sam = os.environ.get("SAM", "sam")
binary = Path(os.environ.get("ZAE_BIN", ROOT / "target" / "debug" / "zae-aggregator"))
if not binary.is_file():
    raise SystemExit(f"no zae-aggregator binary at {binary} (cargo build --bin zae-aggregator, or set ZAE_BIN)")

with tempfile.TemporaryDirectory() as tmp, Moto(Path(tmp) / "moto.log") as moto:
    tmp = Path(tmp)
    (tmp / "deploy").mkdir()
    shutil.copy(SAM_TEMPLATE, tmp / "deploy" / "template.yaml")
    p = subprocess.run(["bash", str(ROOT / "deploy" / "package.sh"), "--arch", "x86_64", "--binary", str(binary),
                        "--lambda-dir", str(tmp / "target" / "lambda")], capture_output=True, text=True)
    if not c.eq(p.returncode, 0, f"package.sh exit code: {p.stderr}"):
        c.finish()
    package = (tmp / "target" / "lambda" / "zae-aggregator" / "bootstrap.zip").read_bytes()
    env = {**moto.env(), "SAM_CLI_TELEMETRY": "0"}

    p = subprocess.run([sam, "build", "--template-file", "template.yaml", "--build-dir", str(tmp / "build")],
                       cwd=tmp / "deploy", env=env, capture_output=True, text=True, timeout=600)
    c.eq(p.returncode, 0, f"sam build exit code: {p.stdout[-2000:]}{p.stderr[-2000:]}")
    built = load_template(tmp / "build" / "template.yaml")
    fn = next(r for r in built["Resources"].values() if r["Type"] == "AWS::Serverless::Function")
    c.ok(str(fn["Properties"]["CodeUri"]).endswith("target/lambda/zae-aggregator/bootstrap.zip"),
         f"sam build kept the prebuilt zip: {fn['Properties']['CodeUri']}")

    moto.client("s3").create_bucket(Bucket="artifacts")
    p = subprocess.run([sam, "package", "--template-file", str(tmp / "build" / "template.yaml"),
                        "--s3-bucket", "artifacts", "--output-template-file", str(tmp / "packaged.yaml")],
                       cwd=tmp / "deploy", env=env, capture_output=True, text=True, timeout=600)
    if c.eq(p.returncode, 0, f"sam package exit code: {p.stdout[-2000:]}{p.stderr[-2000:]}"):
        packaged = load_template(tmp / "packaged.yaml")
        fn = next(r for r in packaged["Resources"].values() if r["Type"] == "AWS::Serverless::Function")
        uri = fn["Properties"]["CodeUri"]
        c.ok(isinstance(uri, str) and uri.startswith("s3://artifacts/"), f"CodeUri is the uploaded object: {uri}")
        key = uri.removeprefix("s3://artifacts/")
        body = moto.client("s3").get_object(Bucket="artifacts", Key=key)["Body"].read()
        c.ok(body == package, "the uploaded object is bootstrap.zip byte for byte (not re-zipped)")
        c.ok(packaged["Parameters"] == load_template(SAM_TEMPLATE)["Parameters"], "packaging changed no parameter")
c.finish()
