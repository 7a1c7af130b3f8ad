"""The local-folder backend, the key layout, and choosing a backend from the settings."""

from __future__ import annotations

import os
import uuid

import pytest

from conftest import registry_service
from nproxy_core.config import ConfigurationError, configure
from nproxy_core.db import IDatabase
from nproxy_core.storage import (
    InvalidKey,
    IStorage,
    ObjectNotFound,
    generation_key,
    make_storage,
    upload_key,
)
from nproxy_core.storage.local import LocalStorage
from nproxy_core.wiring import find_service


@pytest.fixture
def storage(tmp_path):
    return LocalStorage(tmp_path / "media")


def files_under(folder) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def test_round_trip(storage):
    key = "uploads/7/a.png"
    assert not storage.exists(key)
    storage.put(key, b"\x89PNG data", "image/png")
    assert storage.exists(key)
    assert storage.get(key) == b"\x89PNG data"
    assert (storage.root / "uploads" / "7" / "a.png").read_bytes() == b"\x89PNG data"
    assert storage.url_for(key) is None  # the app serves local files itself
    storage.delete(key)
    assert not storage.exists(key)
    storage.delete(key)  # deleting twice is fine
    with pytest.raises(ObjectNotFound):
        storage.get(key)


@pytest.mark.parametrize(
    "key",
    [
        "../outside.png",
        "uploads/../../outside.png",
        "uploads/7/..",
        "/etc/passwd",
        "uploads//7/a.png",
        "uploads/./a.png",
        "uploads\\..\\a.png",
        ".hidden",
        "uploads/7/a.png/",
        "",
        "uploads/\x00.png",
        "uploads/ä.png",
        "uploads/7/a.png\n",
    ],
)
def test_unsafe_keys_are_refused(storage, tmp_path, key):
    for operation in (
        lambda: storage.put(key, b"x", "image/png"),
        lambda: storage.get(key),
        lambda: storage.exists(key),
        lambda: storage.delete(key),
    ):
        with pytest.raises(InvalidKey):
            operation()
    assert files_under(tmp_path) == []


def test_a_symlink_inside_the_folder_cannot_lead_out(storage, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    storage.root.mkdir(parents=True)
    (storage.root / "uploads").symlink_to(outside)
    with pytest.raises(InvalidKey):
        storage.put("uploads/a.png", b"x", "image/png")
    assert list(outside.iterdir()) == []


def test_replacing_an_object_is_atomic(storage):
    key = "uploads/1/a.png"
    storage.put(key, b"old" * 1000, "image/png")
    path = storage.path_for(key)
    # A reader that opened the old object keeps reading all of it: the new bytes arrive as a
    # new file renamed over the old name, never by rewriting the old file in place.
    with path.open("rb") as reader:
        storage.put(key, b"new" * 5, "image/png")
        assert reader.read() == b"old" * 1000
    assert storage.get(key) == b"new" * 5
    assert files_under(storage.root) == ["uploads/1/a.png"]


def test_a_failed_write_leaves_the_old_object_and_no_temporary_file(storage):
    key = "uploads/1/a.png"
    storage.put(key, b"old", "image/png")
    with pytest.raises(TypeError):
        storage.put(key, object(), "image/png")  # type: ignore[arg-type]
    assert storage.get(key) == b"old"
    assert files_under(storage.root) == ["uploads/1/a.png"]


def test_key_layout():
    upload_id = uuid.UUID("0f8fad5b-d9cb-469f-a165-70867728950e")
    assert upload_key(7, upload_id, "png") == f"uploads/7/{upload_id}.png"
    assert upload_key(7, upload_id, ".JPG") == f"uploads/7/{upload_id}.jpg"
    assert generation_key(7, upload_id, 2, "webp") == f"generations/7/{upload_id}/2.webp"
    assert generation_key(3, 45, 0, "png") == "generations/3/45/0.png"
    for bad in ("", "p/ng", "../x", "png\n"):
        with pytest.raises(InvalidKey):
            upload_key(7, upload_id, bad)
    with pytest.raises(InvalidKey):
        generation_key(7, "../../etc", 0, "png")


def test_local_is_the_default_and_the_path_defaults_to_var_media(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    storage = make_storage({})
    assert isinstance(storage, LocalStorage)
    assert storage.root == (tmp_path / "var" / "media").resolve()


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({}, "storage.s3.bucket"),
        ({"storage.s3.bucket": "b"}, "storage.s3.access_key"),
        ({"storage.s3.bucket": "b", "storage.s3.access_key": "a"}, "storage.s3.secret_key"),
        (
            {
                "storage.s3.bucket": "b",
                "storage.s3.access_key": "a",
                "storage.s3.secret_key": "s",
                "storage.s3.presign_seconds": "soon",
            },
            "storage.s3.presign_seconds",
        ),
        (
            {
                "storage.s3.bucket": "b",
                "storage.s3.access_key": "a",
                "storage.s3.secret_key": "s",
                "storage.s3.endpoint_url": "localhost:8333",
            },
            "storage.s3.endpoint_url",
        ),
    ],
)
def test_s3_settings_missing_or_malformed_stop_start_up(base_settings, settings, named):
    with pytest.raises(ConfigurationError) as info:
        configure({**base_settings, "nproxy.storage": "s3", **settings})
    assert named in str(info.value)
    assert "\n" not in str(info.value)


def test_s3_environment_overrides_reach_the_backend(base_settings, monkeypatch):
    monkeypatch.setenv("S3_ENDPOINT_URL", "http://127.0.0.1:1")
    monkeypatch.setenv("S3_BUCKET", "from-env")
    monkeypatch.setenv("S3_ACCESS_KEY", "env-access")
    monkeypatch.setenv("S3_SECRET_KEY", "env-secret")
    config = configure({**base_settings, "nproxy.storage": "s3"})
    config.commit()
    storage = registry_service(config.registry, IStorage)
    assert storage.bucket == "from-env"
    assert storage.settings.endpoint_url == "http://127.0.0.1:1"
    assert "env-secret" not in repr(storage) + repr(storage.settings)
    find_service(config.registry, IDatabase).engine.dispose()


def test_configure_refuses_an_unknown_backend(base_settings):
    with pytest.raises(ConfigurationError, match=r"nproxy\.storage"):
        configure({**base_settings, "nproxy.storage": "ftp"})


def test_local_folder_is_created_on_first_write(tmp_path):
    storage = make_storage({"storage.local.path": str(tmp_path / "deep" / "media")})
    assert not os.path.exists(tmp_path / "deep")
    storage.put("uploads/1/x.png", b"x", "image/png")
    assert (tmp_path / "deep" / "media" / "uploads" / "1" / "x.png").exists()


def test_local_objects_are_listed_by_prefix_and_serve_no_origin(tmp_path):
    from nproxy_core.storage.local import LocalStorage

    storage = LocalStorage(tmp_path)
    storage.put("uploads/1/a.png", b"x", "image/png")
    storage.put("generations/1/g/0.png", b"y", "image/png")
    (tmp_path / "uploads" / "1" / ".tmp-abc.part").write_bytes(b"half")
    assert [item.key for item in storage.list_keys("uploads/")] == ["uploads/1/a.png"]
    assert storage.media_origin is None
