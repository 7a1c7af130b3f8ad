"""The S3 storage backend (boto3): AWS S3 or any S3-compatible server such as SeaweedFS."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from zope.interface import implementer

from nproxy_core.storage.interfaces import (
    IStorage,
    ObjectBytes,
    ObjectNotFound,
    StorageError,
    StoredObject,
)
from nproxy_core.storage.keys import validate_key

T = TypeVar("T")

_MISSING = {"404", "NoSuchKey", "NotFound", "NoSuchBucket"}


@dataclass(frozen=True)
class S3Settings:
    bucket: str
    access_key: str
    secret_key: str
    endpoint_url: str | None = None
    region: str = "us-east-1"
    create_bucket: bool = True
    presign_seconds: int = 300
    #: Where browsers reach the server, when it differs from ``endpoint_url`` (e.g. the app
    #: talks to http://seaweedfs:8333 inside compose but users fetch https://media.example).
    #: Presigned URLs are signed for this host, since SigV4 signs the Host header.
    public_endpoint_url: str | None = None
    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    max_attempts: int = 3

    def __repr__(self) -> str:
        # Never the secret key, whatever prints this.
        return (
            f"S3Settings(bucket={self.bucket!r}, endpoint_url={self.endpoint_url!r}, "
            f"region={self.region!r})"
        )


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


@implementer(IStorage)
class S3Storage:
    """Objects in one bucket. The boto3 client is thread-safe and shared by every request."""

    def __init__(self, settings: S3Settings) -> None:
        self.settings = settings
        self.bucket = settings.bucket
        self.client = self._client(settings.endpoint_url)
        self._presigner = (
            self._client(settings.public_endpoint_url)
            if settings.public_endpoint_url
            else self.client
        )
        self._bucket_ready = not settings.create_bucket
        self._bucket_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<S3Storage bucket={self.bucket!r} endpoint={self.settings.endpoint_url!r}>"

    def _client(self, endpoint_url: str | None) -> Any:
        s = self.settings
        config = Config(
            # Without s3v4, boto3 presigns custom endpoints with legacy SigV2.
            signature_version="s3v4",
            # Path-style: local servers have no wildcard DNS for bucket subdomains.
            s3={"addressing_style": "path"},
            retries={"max_attempts": s.max_attempts, "mode": "standard"},
            connect_timeout=s.connect_timeout,
            read_timeout=s.read_timeout,
        )
        return boto3.session.Session().client(
            "s3",
            endpoint_url=endpoint_url,
            region_name=s.region,
            aws_access_key_id=s.access_key,
            aws_secret_access_key=s.secret_key,
            config=config,
        )

    def _fail(self, action: str, key: str | None, exc: Exception) -> StorageError:
        # botocore messages name the operation and the server's error code, never credentials.
        where = f" {key!r}" if key else ""
        return StorageError(f"S3 {action}{where} in bucket {self.bucket!r} failed: {exc}")

    def ensure_bucket(self) -> None:
        """Create the bucket on first use if it is missing (``storage.s3.create_bucket``)."""
        if self._bucket_ready:
            return
        with self._bucket_lock:
            if self._bucket_ready:
                return
            try:
                self.client.head_bucket(Bucket=self.bucket)
            except ClientError as exc:
                if _error_code(exc) not in _MISSING:
                    raise self._fail("head_bucket", None, exc) from exc
                self._create_bucket()
            except BotoCoreError as exc:
                raise self._fail("head_bucket", None, exc) from exc
            self._bucket_ready = True

    def _create_bucket(self) -> None:
        params: dict[str, Any] = {"Bucket": self.bucket}
        if self.settings.region != "us-east-1":
            params["CreateBucketConfiguration"] = {"LocationConstraint": self.settings.region}
        try:
            self.client.create_bucket(**params)
        except ClientError as exc:
            # Another process may have created it between our HEAD and CREATE.
            if _error_code(exc) not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise self._fail("create_bucket", None, exc) from exc
        except BotoCoreError as exc:
            raise self._fail("create_bucket", None, exc) from exc

    def put(self, key: str, data: bytes, content_type: str) -> None:
        validate_key(key)
        self.ensure_bucket()
        try:
            self.client.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type)
        except (ClientError, BotoCoreError) as exc:
            raise self._fail("put", key, exc) from exc

    def _on_object(self, action: str, key: str, call: Callable[[], T]) -> T:
        """Run ``call`` on the object at ``key``: :class:`ObjectNotFound` when it is missing,
        a :class:`StorageError` naming ``action`` for any other failure."""
        validate_key(key)
        self.ensure_bucket()
        try:
            return call()
        except ClientError as exc:
            if _error_code(exc) in _MISSING:
                raise ObjectNotFound(f"no object stored under {key!r}") from None
            raise self._fail(action, key, exc) from exc
        except BotoCoreError as exc:
            raise self._fail(action, key, exc) from exc

    def get(self, key: str) -> bytes:
        return self.read(key).data

    def read(self, key: str) -> ObjectBytes:
        def read() -> ObjectBytes:
            answer = self.client.get_object(Bucket=self.bucket, Key=key)
            with answer["Body"] as body:
                data = body.read()
            return ObjectBytes(data, answer.get("ContentType") or "application/octet-stream")

        return self._on_object("get", key, read)

    def delete(self, key: str) -> None:
        with contextlib.suppress(ObjectNotFound):
            self._on_object(
                "delete", key, lambda: self.client.delete_object(Bucket=self.bucket, Key=key)
            )

    def exists(self, key: str) -> bool:
        try:
            self._on_object(
                "head", key, lambda: self.client.head_object(Bucket=self.bucket, Key=key)
            )
        except ObjectNotFound:
            return False
        return True

    @property
    def media_origin(self) -> str | None:
        """Where presigned URLs point: the public endpoint's origin (path-style addressing)."""
        parts = urlsplit(self._presigner.meta.endpoint_url)
        return f"{parts.scheme}://{parts.netloc}"

    def list_keys(self, prefix: str) -> Iterator[StoredObject]:
        self.ensure_bucket()
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=prefix
            )
            for page in pages:
                for item in page.get("Contents", ()):
                    yield StoredObject(item["Key"], item["LastModified"])
        except (ClientError, BotoCoreError) as exc:
            raise self._fail("list", prefix, exc) from exc

    def url_for(self, key: str, expires_in: int | None = None) -> str | None:
        validate_key(key)
        seconds = self.settings.presign_seconds if expires_in is None else int(expires_in)
        if seconds <= 0:
            raise ValueError("expires_in must be positive")
        try:
            # Signing is local: no request reaches the server here.
            return self._presigner.generate_presigned_url(
                "get_object",
                Params={"Bucket": self.bucket, "Key": key},
                ExpiresIn=seconds,
            )
        except (ClientError, BotoCoreError) as exc:
            raise self._fail("presign", key, exc) from exc
