"""Shared by the deploy tests: paths, a CloudFormation-aware YAML loader, a
moto server on a free 127.0.0.1 port (stopped by PID), boto3 clients for it,
and a check counter that makes a failed check a non-zero exit.

Only the standard library, PyYAML and boto3 (both in the moto venv)."""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
CFN_TEMPLATE = ROOT / "deploy" / "cloudformation.yaml"
SAM_TEMPLATE = ROOT / "deploy" / "template.yaml"
REGION = "us-east-1"


# ---------------------------------------------------------------- YAML


class CfnLoader(yaml.SafeLoader):
    """SafeLoader that reads CloudFormation's short forms (!Ref, !Sub, ...)
    as their long forms ({"Ref": ...}, {"Fn::Sub": ...})."""


def _short_form(loader: yaml.Loader, suffix: str, node: yaml.Node):
    name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {name: value}


CfnLoader.add_multi_constructor("!", _short_form)


def load_template(path: Path) -> dict:
    with open(path, encoding="utf-8") as f:
        return yaml.load(f, Loader=CfnLoader)


# ---------------------------------------------------------------- checks


class Checks:
    """Counts checks; `ok(cond, what)` prints a failure and remembers it."""

    def __init__(self, name: str):
        self.name = name
        self.passed = 0
        self.failed: list[str] = []

    def ok(self, cond: bool, what: str) -> bool:
        if cond:
            self.passed += 1
        else:
            self.failed.append(what)
            print(f"FAIL [{self.name}] {what}", file=sys.stderr)
        return cond

    def eq(self, got, want, what: str) -> bool:
        return self.ok(got == want, f"{what}: got {got!r}, want {want!r}")

    def finish(self) -> None:
        print(f"{self.name}: {self.passed} checks passed, {len(self.failed)} failed")
        sys.exit(1 if self.failed else 0)


# ---------------------------------------------------------------- moto


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Moto:
    """The pinned moto server (tests/deploy/moto_server.py: moto_server plus
    Lambda's Architectures) on a free loopback port, killed by PID on exit.
    Run by the moto venv's Python, the one that runs the tests."""

    def __init__(self, log_path: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(log_path, "wb")
        server = Path(__file__).with_name("moto_server.py")
        self.proc = subprocess.Popen([sys.executable, str(server), "-H", "127.0.0.1", "-p", str(self.port)],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"moto_server exited with {self.proc.returncode}; see {log_path}")
            try:
                urllib.request.urlopen(self.url + "/moto-api/", timeout=1).read()
                return
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise SystemExit(f"moto_server did not answer on {self.url} within 60 s; see {log_path}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.log.close()

    def __enter__(self) -> "Moto":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def env(self) -> dict:
        """Environment for a child process (boto3 or the AWS CLI) talking to it."""
        env = dict(os.environ)
        env.update(aws_env(self.url))
        return env

    def client(self, service: str):
        import boto3

        return boto3.client(service, endpoint_url=self.url, region_name=REGION, aws_access_key_id="testing",
                            aws_secret_access_key="testing")


def aws_env(url: str) -> dict:
    return {
        "AWS_ENDPOINT_URL": url,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    }


def create_limiter_table(ddb, name: str) -> str:
    """A table with zae-limiter's key schema and a NEW_AND_OLD_IMAGES stream,
    as zae-limiter's own stack creates it; returns the stream ARN."""
    ddb.create_table(
        TableName=name,
        AttributeDefinitions=[{"AttributeName": "PK", "AttributeType": "S"},
                              {"AttributeName": "SK", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "PK", "KeyType": "HASH"}, {"AttributeName": "SK", "KeyType": "RANGE"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )
    return ddb.describe_table(TableName=name)["Table"]["LatestStreamArn"]


def bootstrap_zip(content: bytes) -> bytes:
    """A Lambda package: one executable file named `bootstrap`."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        info = zipfile.ZipInfo("bootstrap")
        info.external_attr = 0o100755 << 16
        z.writestr(info, content)
    return buf.getvalue()
