"""``POST /api/v1/uploads`` and ``GET /media/{id}`` through the real app, database and storage."""

from __future__ import annotations

import uuid

import httpx
import pytest
import sqlalchemy as sa
import webtest

from apiclient import ApiClient
from nproxy_core.uploads.models import Upload

URL = "/api/v1/uploads"


def count_uploads(db) -> int:
    db.expire_all()
    return db.scalar(sa.select(sa.func.count()).select_from(Upload))


def stored_files(folder) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


@pytest.fixture
def media_dir(tmp_path):
    return tmp_path / "media"


@pytest.fixture
def make_uploads_app(make_app, media_dir):
    """The app with its own media folder, so "nothing stored" can be checked exactly."""

    def factory(**overrides):
        return make_app(storage__local__path=str(media_dir), **overrides)

    return factory


@pytest.fixture
def app(make_uploads_app):
    return make_uploads_app()


def logged_in(app: webtest.TestApp, email: str) -> ApiClient:
    client = ApiClient(app)
    assert client.register(email).status_int == 201
    return client


def browser(app: webtest.TestApp) -> webtest.TestApp:
    """Another visitor of the same app, with a cookie jar of its own."""
    return webtest.TestApp(app.app, extra_environ={"HTTP_HOST": "localhost"})


def upload(client: ApiClient, data: bytes, filename: str = "picture.png", field: str = "file"):
    return client.post(URL, upload_files=[(field, filename, data)])


# --- accepted ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "mime", "ext"),
    [("PNG", "image/png", "png"), ("JPEG", "image/jpeg", "jpg"), ("WEBP", "image/webp", "webp")],
)
def test_png_jpeg_and_webp_are_accepted(app, db, media_dir, make_image, fmt, mime, ext):
    client = logged_in(app, "alice@example.com")
    data = make_image(fmt, 120, 80)
    # The name says nothing: the content decides.
    res = upload(client, data, filename="whatever.bin")
    assert res.status_int == 201, res.text
    body = res.json
    assert body["mime"] == mime
    assert (body["width"], body["height"]) == (120, 80)
    assert body["url"] == f"/media/{body['id']}"

    row = db.get(Upload, uuid.UUID(body["id"]))
    assert row.mime == mime
    assert row.size_bytes == len(data)
    assert len(row.sha256) == 64
    assert row.storage_key == f"uploads/{row.user_id}/{row.id}.{ext}"
    assert (media_dir / row.storage_key).read_bytes() == data
    assert stored_files(media_dir) == [row.storage_key]


def test_an_image_at_exactly_the_limits_is_accepted(make_uploads_app, make_image):
    data = make_image("PNG", 64, 64)
    app = make_uploads_app(
        nproxy__uploads__max_side="64", nproxy__uploads__max_bytes=str(len(data))
    )
    res = upload(logged_in(app, "edge@example.com"), data)
    assert res.status_int == 201, res.text


# --- refused -------------------------------------------------------------------------------------


def _truncated_png(make_image, make_bomb):
    data = make_image("PNG", 200, 200, noisy=True)
    return data[: len(data) // 2]


def _truncated_jpeg(make_image, make_bomb):
    data = make_image("JPEG", 200, 200, noisy=True)
    return data[: len(data) // 2]


REFUSALS = {
    "gif": (lambda mi, mb: mi("GIF"), {}, "The file is not a PNG, JPEG or WebP image."),
    "text named .png": (
        lambda mi, mb: b"just some text, honestly\n" * 20,
        {},
        "The file is not a PNG, JPEG or WebP image.",
    ),
    "png magic then garbage": (
        lambda mi, mb: b"\x89PNG\r\n\x1a\n" + b"garbage" * 50,
        {},
        "the PNG file is damaged or incomplete",
    ),
    "truncated png": (_truncated_png, {}, "the PNG file is damaged or incomplete"),
    "truncated jpeg": (_truncated_jpeg, {}, "the JPEG file is damaged or incomplete"),
    "empty file": (lambda mi, mb: b"", {}, "The file sent in the 'file' field is empty."),
    "over max_side": (
        lambda mi, mb: mi("PNG", 100, 30),
        {"nproxy__uploads__max_side": "64"},
        "The image is 100\u00d730 px; the limit is 64 px a side.",
    ),
    "over max_bytes, read in full": (
        lambda mi, mb: mi("PNG", 60, 60, noisy=True),
        {"nproxy__uploads__max_bytes": "2048"},
        "The image is larger than 2 KB.",
    ),
    "over max_bytes, announced": (
        lambda mi, mb: mi("PNG", 300, 300, noisy=True),
        {"nproxy__uploads__max_bytes": "2048"},
        "The image is larger than 2 KB.",
    ),
    # Beyond twice Pillow's pixel limit: refused as soon as the header is read.
    "decompression bomb": (
        lambda mi, mb: mb(20000),
        {},
        "too many pixels to be processed safely",
    ),
    # Beyond Pillow's pixel limit, within a (too) generous max_side: still refused, not decoded.
    "decompression bomb under a generous max_side": (
        lambda mi, mb: mb(10000),
        {"nproxy__uploads__max_side": "20000"},
        "too many pixels to be processed safely",
    ),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_bad_files_are_refused_and_nothing_is_stored(
    make_uploads_app, db, media_dir, make_image, make_bomb, case
):
    build, overrides, message = REFUSALS[case]
    app = make_uploads_app(**overrides)
    client = logged_in(app, "mallory@example.com")
    res = upload(client, build(make_image, make_bomb))
    assert res.status_int == 400, res.text
    assert res.json["error"]["code"] == "validation_error"
    assert message in res.json["error"]["message"]
    assert "file" in res.json["error"]["fields"]
    assert count_uploads(db) == 0
    assert stored_files(media_dir) == []


def test_the_default_limits_are_10_mb_and_4096_px(app, db, make_image):
    client = logged_in(app, "big@example.com")
    res = upload(client, make_image("PNG", 4097, 8))
    assert (
        res.json["error"]["message"] == "The image is 4097\u00d78 px; the limit is 4096 px a side."
    )
    res = upload(client, b"\x89PNG\r\n\x1a\n" + b"\x00" * (10 * 1024 * 1024))
    assert res.json["error"]["message"] == "The image is larger than 10 MB."
    assert count_uploads(db) == 0


@pytest.mark.parametrize(
    "send",
    [
        lambda c, data: c.post(URL, upload_files=[("image", "a.png", data)]),
        lambda c, data: c.post(URL, params={"file": "a.png"}, content_type="multipart/form-data"),
        lambda c, data: c.post(URL, params={"file": "a.png"}),
        lambda c, data: c.post(URL, {"file": "a.png"}),
        lambda c, data: c.post(URL),
    ],
    ids=["other field", "text field", "form-encoded", "json", "empty body"],
)
def test_no_file_in_the_file_field_is_refused(app, db, media_dir, make_image, send):
    client = logged_in(app, "nofile@example.com")
    res = send(client, make_image("PNG"))
    assert res.status_int == 400, res.text
    assert res.json["error"]["code"] == "validation_error"
    assert res.json["error"]["message"] == "No file was sent in the 'file' field."
    assert count_uploads(db) == 0
    assert stored_files(media_dir) == []


def test_not_logged_in_is_401_and_stores_nothing(app, db, media_dir, make_image):
    res = upload(ApiClient(app), make_image("PNG"))
    assert res.status_int == 401
    assert res.json["error"]["code"] == "not_authenticated"
    assert count_uploads(db) == 0
    assert stored_files(media_dir) == []


def test_missing_csrf_token_is_refused(app, db, media_dir, make_image):
    logged_in(app, "csrf@example.com")
    res = app.post(URL, upload_files=[("file", "a.png", make_image("PNG"))], status="*")
    assert res.status_int == 403
    assert "CSRF" in res.json["error"]["message"]
    assert count_uploads(db) == 0
    assert stored_files(media_dir) == []


# --- media ---------------------------------------------------------------------------------------


@pytest.fixture
def alice_upload(app, make_image):
    client = logged_in(app, "alice@example.com")
    data = make_image("WEBP", 50, 40)
    res = upload(client, data)
    assert res.status_int == 201
    return client, res.json, data


def test_owner_gets_the_bytes(alice_upload):
    client, body, data = alice_upload
    res = client.get(body["url"])
    assert res.status_int == 200
    assert res.body == data
    assert res.content_type == "image/webp"
    assert res.headers["Cache-Control"].startswith("private, max-age=")
    assert res.headers["X-Content-Type-Options"] == "nosniff"


def test_admin_gets_the_bytes(app, alice_upload, user_factory):
    _, body, data = alice_upload
    admin = ApiClient(browser(app))
    user_factory("root@example.com", admin=True)
    assert admin.login("root@example.com").status_int == 200
    res = admin.get(body["url"])
    assert res.status_int == 200
    assert res.body == data


def test_another_user_gets_404(app, alice_upload):
    _, body, _ = alice_upload
    bob = logged_in(browser(app), "bob@example.com")
    res = bob.get(body["url"], headers={"Accept": "application/json"})
    assert res.status_int == 404
    assert res.json["error"]["code"] == "not_found"
    # The page a person sees is the same 404 page as for an id that never existed.
    page = bob.get(body["url"], headers={"Accept": "text/html"})
    nowhere = f"/media/{uuid.uuid4()}"
    missing = bob.get(nowhere, headers={"Accept": "text/html"})
    assert page.status_int == missing.status_int == 404
    assert page.content_type == "text/html"
    # Each page names only its own address (the language picker comes back to it).
    assert page.text.replace(body["url"], "ADDRESS") == missing.text.replace(nowhere, "ADDRESS")


def test_anonymous_gets_404(app, alice_upload):
    _, body, _ = alice_upload
    anonymous = browser(app)
    res = anonymous.get(body["url"], headers={"Accept": "application/json"}, status="*")
    assert res.status_int == 404
    assert res.json["error"]["code"] == "not_found"
    assert anonymous.get(body["url"], status="*").status_int == 404  # not a login redirect


@pytest.mark.parametrize(
    "asset_id",
    # A stable id for the random UUID: every xdist worker must collect the same tests.
    ["not-a-uuid", pytest.param(str(uuid.uuid4()), id="unknown-uuid"), "..%2F..%2Fetc%2Fpasswd"],
)
def test_unknown_or_malformed_ids_are_404(alice_upload, asset_id):
    client, _, _ = alice_upload
    res = client.get(f"/media/{asset_id}", headers={"Accept": "application/json"})
    assert res.status_int == 404
    assert res.json["error"]["code"] == "not_found"


# --- the same on S3 (SeaweedFS) ------------------------------------------------------------------


@pytest.fixture
def s3_bucket(s3_server):
    return s3_server.new_bucket()


@pytest.fixture
def s3_app(make_app, s3_server, s3_bucket):
    return make_app(**s3_server.settings(s3_bucket))


def test_s3_upload_and_media_redirect_to_a_presigned_url(s3_app, s3_server, s3_bucket, make_image):
    client = logged_in(s3_app, "s3@example.com")
    data = make_image("JPEG", 64, 48)
    res = upload(client, data)
    assert res.status_int == 201, res.text
    key = f"uploads/{client.get('/api/v1/session').json['user']['id']}/{res.json['id']}.jpg"
    assert s3_server.keys(s3_bucket) == [key]

    media = client.get(res.json["url"])
    assert media.status_int == 302
    assert media.headers["Cache-Control"] == "no-store"
    location = media.headers["Location"]
    assert location.startswith(s3_server.endpoint_url)
    assert "X-Amz-Signature=" in location
    with httpx.Client(trust_env=False, timeout=10) as http:
        fetched = http.get(location)
    assert fetched.status_code == 200
    assert fetched.content == data
    assert fetched.headers["content-type"] == "image/jpeg"

    other = logged_in(browser(s3_app), "other@example.com")
    assert other.get(res.json["url"]).status_int == 404
    assert browser(s3_app).get(res.json["url"], status="*").status_int == 404


def test_s3_refused_upload_stores_nothing(s3_app, s3_server, s3_bucket, db):
    client = logged_in(s3_app, "s3bad@example.com")
    res = upload(client, b"GIF89a" + b"\x00" * 100)
    assert res.status_int == 400
    assert count_uploads(db) == 0
    assert s3_server.keys(s3_bucket) == []


def test_storage_down_is_a_clear_503_and_stores_nothing(
    make_app, s3_server, s3_bucket, db, make_image
):
    settings = s3_server.settings(s3_bucket, **{"storage.s3.endpoint_url": "http://127.0.0.1:9"})
    app = make_app(**settings)
    client = logged_in(app, "down@example.com")
    res = upload(client, make_image("PNG"))
    assert res.status_int == 503
    assert res.json["error"]["code"] == "storage_unavailable"
    assert "127.0.0.1" not in res.json["error"]["message"]
    assert count_uploads(db) == 0
