"""The S3 backend against a real SeaweedFS: objects, bucket creation, presigned URLs."""

from __future__ import annotations

import time
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx
import pytest

from nproxy_core.storage import ObjectNotFound, StorageError, make_storage
from nproxy_core.storage.s3 import S3Storage
from waiting import wait_until

PNG = b"\x89PNG\r\n\x1a\n" + b"not really pixels" * 10


@pytest.fixture
def bucket(s3_server) -> str:
    return s3_server.new_bucket()


@pytest.fixture
def storage(s3_server, bucket) -> S3Storage:
    return make_storage(s3_server.settings(bucket))


@pytest.fixture
def http():
    with httpx.Client(trust_env=False, timeout=10) as client:
        yield client


def test_put_get_exists_delete(storage, s3_server, bucket):
    key = "uploads/1/a.png"
    assert not storage.exists(key)  # the first use creates the bucket
    storage.put(key, PNG, "image/png")
    assert storage.exists(key)
    assert storage.get(key) == PNG
    head = s3_server.client().head_object(Bucket=bucket, Key=key)
    assert head["ContentType"] == "image/png"
    assert s3_server.keys(bucket) == [key]
    storage.delete(key)
    assert not storage.exists(key)
    storage.delete(key)  # deleting twice is fine
    with pytest.raises(ObjectNotFound):
        storage.get(key)
    assert s3_server.keys(bucket) == []


def test_existing_bucket_is_used_as_is(s3_server, bucket):
    s3_server.client().create_bucket(Bucket=bucket)
    s3_server.client().put_object(Bucket=bucket, Key="uploads/1/old.png", Body=b"old")
    storage = make_storage(s3_server.settings(bucket))
    assert storage.get("uploads/1/old.png") == b"old"


def test_missing_bucket_without_create_bucket_is_a_storage_error(s3_server, bucket):
    storage = make_storage(s3_server.settings(bucket, **{"storage.s3.create_bucket": "false"}))
    with pytest.raises(StorageError):
        storage.put("uploads/1/a.png", PNG, "image/png")
    assert s3_server.keys(bucket) == []


def test_presigned_url_serves_the_object(storage, http):
    storage.put("generations/1/9/0.png", PNG, "image/png")
    url = storage.url_for("generations/1/9/0.png")
    assert "X-Amz-Signature=" in url  # SigV4, not the legacy v2 "Signature="
    assert "X-Amz-Expires=300" in url  # storage.s3.presign_seconds defaults to 300
    answer = http.get(url)
    assert answer.status_code == 200
    assert answer.content == PNG
    assert answer.headers["content-type"] == "image/png"


def test_presigned_url_lifetime_follows_the_setting(s3_server, bucket):
    storage = make_storage(s3_server.settings(bucket, **{"storage.s3.presign_seconds": "42"}))
    assert "X-Amz-Expires=42" in storage.url_for("uploads/1/a.png")
    assert "X-Amz-Expires=7" in storage.url_for("uploads/1/a.png", expires_in=7)


def test_expired_presigned_url_is_refused(storage, http):
    storage.put("uploads/1/a.png", PNG, "image/png")
    url = storage.url_for("uploads/1/a.png", expires_in=1)

    def answer_once_expired() -> httpx.Response | None:
        # Good for a second from its signing time (whole seconds): served until then.
        answer = http.get(url)
        return None if answer.status_code == 200 else answer

    answer = wait_until(answer_once_expired, timeout=30, what="the presigned URL to expire")
    assert answer.status_code == 403
    assert PNG not in answer.content


def _with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    query.update(changes)
    return urlunsplit(parts._replace(query=urlencode(query)))


def test_tampered_presigned_url_is_refused(storage, http):
    storage.put("uploads/1/a.png", PNG, "image/png")
    storage.put("uploads/2/b.png", b"someone else's", "image/png")
    url = storage.url_for("uploads/1/a.png")
    signature = dict(parse_qsl(urlsplit(url).query))["X-Amz-Signature"]
    forged = ("0" if signature[0] != "0" else "1") + signature[1:]
    assert http.get(_with_query(url, **{"X-Amz-Signature": forged})).status_code == 403
    # A longer lifetime, or the same signature on another key, is not covered by the signature.
    assert http.get(_with_query(url, **{"X-Amz-Expires": "604800"})).status_code == 403
    assert http.get(url.replace("uploads/1/a.png", "uploads/2/b.png")).status_code == 403
    # The untouched URL still works.
    assert http.get(url).status_code == 200


def test_wrong_secret_key_is_refused(s3_server, bucket, http):
    good = make_storage(s3_server.settings(bucket))
    good.put("uploads/1/a.png", PNG, "image/png")
    wrong_secret = "not-the-secret-" + "y" * 24
    bad = make_storage(s3_server.settings(bucket, **{"storage.s3.secret_key": wrong_secret}))
    with pytest.raises(StorageError) as info:
        bad.get("uploads/1/a.png")
    assert wrong_secret not in str(info.value)
    assert s3_server.secret_key not in str(info.value)
    with pytest.raises(StorageError):
        bad.put("uploads/1/evil.png", b"evil", "image/png")
    assert http.get(bad.url_for("uploads/1/a.png")).status_code == 403
    assert s3_server.keys(bucket) == ["uploads/1/a.png"]


def test_unreachable_server_is_a_storage_error(s3_server, bucket):
    settings = s3_server.settings(bucket, **{"storage.s3.endpoint_url": "http://127.0.0.1:9"})
    storage = make_storage(settings)
    with pytest.raises(StorageError):
        storage.put("uploads/1/a.png", PNG, "image/png")


def test_objects_are_listed_by_prefix_with_their_age(storage):
    for key in ("uploads/1/a.png", "uploads/2/b.png", "generations/1/g/0.png"):
        storage.put(key, PNG, "image/png")
    listed = {item.key: item.modified_at for item in storage.list_keys("uploads/")}
    assert set(listed) == {"uploads/1/a.png", "uploads/2/b.png"}
    now = time.time()
    assert all(abs(moment.timestamp() - now) < 120 for moment in listed.values())


def test_the_media_origin_is_where_presigned_urls_point(s3_server, bucket):
    public = make_storage(
        {**s3_server.settings(bucket), "storage.s3.public_endpoint_url": "https://media.example"}
    )
    assert public.media_origin == "https://media.example"
    assert public.url_for("uploads/1/a.png").startswith("https://media.example/")
