"""The upload service functions the generation pipeline relies on, and the storage clean-up when
the transaction that records an upload does not commit."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from nproxy_core.errors import NotFound, describe_size
from nproxy_core.storage import IStorage
from nproxy_core.uploads.models import Upload
from nproxy_core.uploads.services import (
    create_upload,
    load_user_uploads,
    read_upload_bytes,
)
from nproxy_core.wiring import prepare_request


@pytest.fixture
def media_dir(tmp_path):
    return tmp_path / "media"


@pytest.fixture
def registry(make_app, media_dir):
    return make_app(storage__local__path=str(media_dir)).app.registry


def new_request(registry):
    """A request outside HTTP with its own transaction manager, as a task gets one."""
    return prepare_request(registry)


def stored_files(folder) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def store(registry, user_id: int, data: bytes) -> Upload:
    request = new_request(registry)
    with request.tm:
        upload = create_upload(request, user_id, data)
    request.db.close()
    return upload


def test_committed_upload_keeps_its_object(registry, media_dir, user_factory, make_image, db):
    user = user_factory()
    upload = store(registry, user.id, make_image("PNG"))
    assert stored_files(media_dir) == [upload.storage_key]
    assert db.get(Upload, upload.id) is not None


def test_a_failed_transaction_deletes_the_stored_object(registry, media_dir, make_image, db):
    request = new_request(registry)
    # No such user: the row breaks the foreign key when it is flushed, after the object was
    # written. The transaction aborts, and the object must go with it.
    with pytest.raises(IntegrityError), request.tm:
        create_upload(request, 424242, make_image("PNG"))
    request.db.close()
    assert stored_files(media_dir) == []
    assert db.scalar(sa.select(sa.func.count()).select_from(Upload)) == 0


def test_an_error_after_the_upload_also_deletes_it(
    registry, media_dir, user_factory, make_image, db
):
    user = user_factory()
    request = new_request(registry)
    with pytest.raises(RuntimeError), request.tm:
        create_upload(request, user.id, make_image("PNG"))
        assert len(stored_files(media_dir)) == 1  # stored first ...
        raise RuntimeError("something later in the same request failed")
    request.db.close()
    assert stored_files(media_dir) == []  # ... and removed when the row never came to be
    assert db.scalar(sa.select(sa.func.count()).select_from(Upload)) == 0


def test_load_user_uploads_answers_in_the_order_asked(registry, user_factory, make_image, db):
    alice = user_factory()
    first = store(registry, alice.id, make_image("PNG"))
    second = store(registry, alice.id, make_image("JPEG"))
    found = load_user_uploads(db, alice.id, [str(second.id), first.id])
    assert [u.id for u in found] == [second.id, first.id]
    assert load_user_uploads(db, alice.id, []) == []


@pytest.mark.parametrize("kind", ["other user's", "unknown", "malformed", "not a string"])
def test_load_user_uploads_refuses_what_the_user_does_not_own(
    registry, user_factory, make_image, db, kind
):
    alice, bob = user_factory(), user_factory()
    own = store(registry, alice.id, make_image("PNG"))
    bobs = store(registry, bob.id, make_image("PNG"))
    wrong = {
        "other user's": str(bobs.id),
        "unknown": str(uuid.uuid4()),
        "malformed": "../../etc/passwd",
        "not a string": 12,
    }[kind]
    with pytest.raises(NotFound) as info:
        load_user_uploads(db, alice.id, [str(own.id), wrong])
    assert info.value.fields == {"input_upload_ids": "not_found"}
    assert "was not found" in info.value.message


def test_read_upload_bytes_from_a_request_or_a_storage(registry, user_factory, make_image, db):
    data = make_image("WEBP")
    upload = store(registry, user_factory().id, data)
    request = new_request(registry)
    assert read_upload_bytes(request, upload) == data
    assert read_upload_bytes(request.find_service(IStorage), upload) == data


@pytest.mark.parametrize(
    ("size", "words"),
    [(10 * 1024 * 1024, "10 MB"), (2048, "2 KB"), (1536 * 1024, "1536 KB"), (1000, "1000 bytes")],
)
def test_limits_are_described_in_words(size, words):
    assert describe_size(size) == words
