"""Image tools (DESIGN 4.17, issue 26): thumbnails made once, downloads converted on the way out,
vary and upscale as charged submissions, favourites, search, share links and deleting one
image; another user's image is a 404 everywhere."""

from __future__ import annotations

import io
import re
import uuid
from typing import Any

import pytest
import sqlalchemy as sa
from PIL import Image

from generation_support import fresh_cycle
from nproxy_core.generation.models import Generation, GenerationImage
from nproxy_core.generation.tasks import run_generation
from nproxy_core.storage import IStorage
from nproxy_core.tasks import run_now
from nproxy_core.wiring import find_service


@pytest.fixture
def alice(app, customer_factory, add_key) -> Any:
    add_key(app.app.registry, "demo-key-1")
    return customer_factory(app)


@pytest.fixture
def mallory(app, customer_factory) -> Any:
    return customer_factory(app)


class CountedPuts:
    """Counts the objects the app's own storage writes, by key (the real backend still
    stores them)."""

    def __init__(self, storage: Any, monkeypatch: pytest.MonkeyPatch) -> None:
        self.keys: list[str] = []
        put = storage.put

        def counted(key: str, data: bytes, content_type: str) -> None:
            self.keys.append(key)
            put(key, data, content_type)

        monkeypatch.setattr(storage, "put", counted)

    def thumbs(self) -> list[str]:
        return [key for key in self.keys if key.startswith("thumbs/")]


def _made(app: Any, customer: Any, conversation: str | None = None, **controls: Any) -> dict:
    conversation = conversation or customer.conversation()
    submitted = customer.submit(conversation, **{"resolution": "square", **controls})
    assert submitted.status_int == 202, submitted.text
    assert run_now(app.app.registry, run_generation, submitted.json["id"]) == "succeeded"
    return customer.poll(submitted.json["id"]) | {"conversation_id": conversation}


def _run(app: Any, customer: Any, answer: Any) -> dict:
    assert answer.status_int == 202, answer.text
    assert run_now(app.app.registry, run_generation, answer.json["id"]) == "succeeded"
    return customer.poll(answer.json["id"])


def _row(db: Any, image_id: str) -> GenerationImage | None:
    db.expire_all()
    return db.get(GenerationImage, uuid.UUID(image_id))


def _image(response: Any) -> Image.Image:
    return Image.open(io.BytesIO(response.body))


# --- thumbnails -----------------------------------------------------------------------------------


def test_each_image_gets_its_thumbnail_once_when_stored(app, alice, db, monkeypatch):
    storage = find_service(app.app.registry, IStorage)
    puts = CountedPuts(storage, monkeypatch)
    made = _made(app, alice, model="demo-pro", resolution="landscape", batch_size=2)
    assert len(puts.thumbs()) == 2
    for image in made["images"]:
        row = _row(db, image["id"])
        assert row.thumb_key == f"thumbs/{row.storage_key.rsplit('.', 1)[0]}.webp"
        assert image["thumb_url"] == f"/media/{image['id']}?size=thumb"
        for _ in range(2):
            thumb = alice.api.get(image["thumb_url"])
            assert thumb.status_int == 200 and thumb.content_type == "image/webp"
            assert _image(thumb).format == "WEBP"
            assert _image(thumb).size == (384, 288)  # 1024 x 768, at most 384 a side
            assert len(thumb.body) < len(alice.api.get(image["url"]).body) / 4
    # Viewing them made none again.
    assert len(puts.thumbs()) == 2


def test_an_image_stored_before_thumbnails_gets_one_on_its_first_view(app, alice, db, monkeypatch):
    storage = find_service(app.app.registry, IStorage)
    image = _made(app, alice)["images"][0]
    row = _row(db, image["id"])
    storage.delete(row.thumb_key)
    db.execute(
        sa.update(GenerationImage).where(GenerationImage.id == row.id).values(thumb_key=None)
    )
    db.commit()
    puts = CountedPuts(storage, monkeypatch)

    first = alice.api.get(image["thumb_url"])
    assert first.status_int == 200 and first.content_type == "image/webp"
    assert _image(first).size == (384, 384)
    assert _row(db, image["id"]).thumb_key is not None
    assert alice.api.get(image["thumb_url"]).body == first.body
    assert len(puts.thumbs()) == 1


def test_a_thumbnail_lost_from_the_storage_folder_is_made_again(app, alice, db):
    storage = find_service(app.app.registry, IStorage)
    image = _made(app, alice)["images"][0]
    thumb_key = _row(db, image["id"]).thumb_key
    storage.delete(thumb_key)
    answer = alice.api.get(image["thumb_url"])
    assert answer.status_int == 200 and answer.content_type == "image/webp"
    assert storage.exists(thumb_key)


def test_every_answer_listing_images_gives_thumb_urls(app, alice, db):
    made = _made(app, alice)
    image_id = made["images"][0]["id"]
    thumb = f"/media/{image_id}?size=thumb"
    conversation = alice.api.get(f"/api/v1/conversations/{made['conversation_id']}").json
    assert conversation["messages"][0]["generations"][0]["images"][0]["thumb_url"] == thumb
    assert alice.api.get("/api/v1/images").json["images"][0]["thumb_url"] == thumb
    assert alice.api.get(f"/api/v1/images/{image_id}").json["thumb_url"] == thumb


def test_the_developer_api_gives_signed_thumb_urls(app, alice, db):
    key = alice.api.post("/api/v1/api-keys", {"name": "tools"}).json["key"]
    headers = {"Authorization": f"Bearer {key}"}
    made = _made(app, alice)
    api = app.get(f"/v1/generations/{made['id']}", headers=headers).json
    thumb_url = api["images"][0]["thumb_url"]
    assert thumb_url.startswith("http://localhost/media/") and thumb_url.endswith("&size=thumb")
    # Without cookies: the signature is the permission.
    anonymous = app.__class__(app.app, extra_environ={"HTTP_HOST": "localhost"})
    answer = anonymous.get(thumb_url.removeprefix("http://localhost"))
    assert answer.content_type == "image/webp"
    tampered = thumb_url.replace("signature=", "signature=0")
    assert anonymous.get(tampered.removeprefix("http://localhost"), status=404)


# --- downloads in another format ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("wanted", "mime", "extension", "pillow"),
    [
        ("png", "image/png", "png", "PNG"),
        ("jpeg", "image/jpeg", "jpg", "JPEG"),
        ("webp", "image/webp", "webp", "WEBP"),
    ],
)
def test_media_converts_on_download(app, alice, wanted, mime, extension, pillow):
    image = _made(app, alice)["images"][0]
    answer = alice.api.get(f"{image['url']}?format={wanted}")
    assert answer.status_int == 200
    assert answer.content_type == mime
    assert answer.headers["Content-Disposition"] == (
        f'attachment; filename="nproxy-{image["id"]}.{extension}"'
    )
    assert _image(answer).format == pillow
    assert _image(answer).size == (512, 512)


def test_bad_format_or_size_is_refused_naming_it(app, alice, mallory):
    image = _made(app, alice)["images"][0]
    json = {"Accept": "application/json"}
    assert alice.api.get(f"{image['url']}?format=gif").status_int == 400  # a page, for a link
    answer = alice.api.get(f"{image['url']}?format=gif", headers=json)
    assert answer.status_int == 400
    assert answer.json["error"]["fields"] == {"format": "invalid"}
    assert "gif" in answer.json["error"]["message"]
    answer = alice.api.get(f"{image['url']}?size=huge", headers=json)
    assert answer.status_int == 400
    assert answer.json["error"]["fields"] == {"size": "invalid"}
    # Someone else's image in any format or size: 404, as if it did not exist.
    for query in ("?format=png", "?size=thumb", ""):
        assert mallory.api.get(image["url"] + query).status_int == 404


# --- vary and upscale -----------------------------------------------------------------------------


def test_vary_makes_a_new_generation_from_the_image_and_charges_it(app, alice, db):
    made = _made(app, alice, prompt="a fox in the snow")
    image_id = made["images"][0]["id"]
    used = fresh_cycle(db, alice.cycle.id).used

    varied = _run(app, alice, alice.api.post(f"/api/v1/images/{image_id}/vary"))
    assert varied["status"] == "succeeded" and len(varied["images"]) == 1
    generation = db.get(Generation, uuid.UUID(varied["id"]))
    message = generation.message
    assert str(generation.conversation_id) == made["conversation_id"]
    assert (message.mode, message.prompt) == ("image_to_image", "a fox in the snow")
    assert len(message.input_upload_ids) == 1
    assert fresh_cycle(db, alice.cycle.id).used == used + 1
    assert varied["images"][0]["thumb_url"].endswith("?size=thumb")


def test_vary_and_upscale_of_someone_elses_image_are_not_found_and_hold_nothing(
    app, alice, mallory, db
):
    image_id = _made(app, alice, model="demo-pro")["images"][0]["id"]
    for image in (image_id, str(uuid.uuid4()), "not-an-id"):
        for path, body in (("vary", None), ("upscale", {"resolution": "square_2k"})):
            answer = mallory.api.post(f"/api/v1/images/{image}/{path}", body)
            assert answer.status_int == 404, (image, path)
            assert answer.json["error"] == {"code": "not_found", "message": "Not found."}
    cycle = fresh_cycle(db, mallory.cycle.id)
    assert (cycle.reserved, cycle.used) == (0, 0)


def test_upscale_makes_a_larger_preset_at_its_price(app, alice, db):
    image_id = _made(app, alice, model="demo-pro", prompt="a lighthouse")["images"][0]["id"]
    offered = alice.api.get(f"/api/v1/images/{image_id}").json["upscales"]
    # The same shape, larger: the 1024 x 1024 image has one, at its price.
    assert [(o["id"], o["width"], o["height"], o["units"]) for o in offered] == [
        ("square_2k", 2048, 2048, 6)
    ]
    used = fresh_cycle(db, alice.cycle.id).used

    answer = alice.api.post(f"/api/v1/images/{image_id}/upscale", {"resolution": "square_2k"})
    upscaled = _run(app, alice, answer)
    row = _row(db, upscaled["images"][0]["id"])
    assert (row.width, row.height) == (2048, 2048)
    assert fresh_cycle(db, alice.cycle.id).used == used + 6
    message = db.get(Generation, uuid.UUID(upscaled["id"])).message
    assert message.mode == "image_to_image" and message.prompt.endswith("a lighthouse")


def test_upscale_to_a_size_not_larger_or_not_offered_is_refused_naming_resolution(app, alice, db):
    pro = _made(app, alice, model="demo-pro")["images"][0]["id"]
    small = _made(app, alice)["images"][0]["id"]  # demo-image-1 has no larger preset
    assert alice.api.get(f"/api/v1/images/{small}").json["upscales"] == []
    before = db.scalar(sa.select(sa.func.count()).select_from(Generation))
    reserved = fresh_cycle(db, alice.cycle.id).reserved
    for image, body in (
        (pro, {"resolution": "square"}),  # its own size
        (pro, {"resolution": "landscape"}),  # smaller
        (pro, {"resolution": "tall_2k"}),  # larger, another shape
        (pro, {"resolution": "huge"}),  # not a preset
        (pro, {}),
        (pro, {"resolution": 7}),
        (small, {"resolution": "square_2k"}),  # another model's preset
    ):
        answer = alice.api.post(f"/api/v1/images/{image}/upscale", body)
        assert answer.status_int == 400, body
        assert answer.json["error"]["code"] == "validation_error"
        assert list(answer.json["error"]["fields"]) == ["resolution"]
    db.expire_all()
    assert db.scalar(sa.select(sa.func.count()).select_from(Generation)) == before
    assert fresh_cycle(db, alice.cycle.id).reserved == reserved


# --- favourite and search -------------------------------------------------------------------------


def test_favourite_and_the_favourites_filter(app, alice, mallory):
    first = _made(app, alice, prompt="a blue whale")["images"][0]["id"]
    second = _made(app, alice, prompt="a green frog")["images"][0]["id"]
    answer = alice.api.patch(f"/api/v1/images/{first}", {"favorite": True})
    assert answer.status_int == 200 and answer.json["favorite"] is True

    ids = lambda query: [i["id"] for i in alice.api.get(f"/api/v1/images{query}").json["images"]]  # noqa: E731
    assert ids("?favorite=true") == [first]
    assert ids("?favorite=false") == [second]
    assert ids("") == [second, first]
    assert alice.api.patch(f"/api/v1/images/{first}", {"favorite": False}).json["favorite"] is False
    assert ids("?favorite=true") == []

    for body, field in (
        ({}, "favorite"),
        ({"favorite": "yes"}, "favorite"),
        ({"title": "x"}, "title"),
    ):
        answer = alice.api.patch(f"/api/v1/images/{second}", body)
        assert answer.status_int == 400, body
        assert field in answer.json["error"]["fields"]
    assert alice.api.get("/api/v1/images?favorite=maybe").json["error"]["fields"] == {
        "favorite": "invalid"
    }
    assert mallory.api.patch(f"/api/v1/images/{second}", {"favorite": True}).status_int == 404
    assert mallory.api.get(f"/api/v1/images/{second}").status_int == 404


def test_search_by_prompt_words_keeps_the_keyset_pages(app, alice, mallory):
    made = [
        _made(app, alice, prompt=prompt)["images"][0]["id"]
        for prompt in ("A Red fox", "a red fox at dusk", "a blue whale", "100% red_fox")
    ]
    _made(app, mallory, prompt="a red fox of mallory's")

    def search(query: str) -> list[str]:
        return [i["id"] for i in alice.api.get(f"/api/v1/images?{query}").json["images"]]

    assert search("q=red%20fox") == [made[1], made[0]]
    assert search("q=RED") == [made[3], made[1], made[0]]
    # The search's own % and _ are letters, not wildcards.
    assert search("q=100%25") == [made[3]]
    assert search("q=red_fox") == [made[3]]
    assert search("q=whale&favorite=true") == []
    page = alice.api.get("/api/v1/images?q=red&limit=2").json
    assert [i["id"] for i in page["images"]] == [made[3], made[1]]
    rest = alice.api.get(f"/api/v1/images?q=red&limit=2&before={page['next']}").json
    assert [i["id"] for i in rest["images"]] == [made[0]] and rest["next"] is None
    answer = alice.api.get("/api/v1/images?q=" + "x" * 201)
    assert answer.status_int == 400 and answer.json["error"]["fields"] == {"q": "too_long"}


# --- share ----------------------------------------------------------------------------------------


def _og(html: str) -> dict[str, str]:
    return dict(re.findall(r'<meta property="(og:[a-z:_]+)" content="([^"]*)"', html))


def test_share_page_has_open_graph_tags_and_no_prompt_until_chosen(app, alice, db):
    image = _made(app, alice, prompt="my secret prompt words")["images"][0]
    answer = alice.api.post(f"/api/v1/images/{image['id']}/share")
    assert answer.status_int == 200
    url = answer.json["url"]
    assert answer.json["show_prompt"] is False
    token = url.rsplit("/", 1)[1]
    assert url == f"http://localhost/s/{token}" and len(token) >= 32

    visitor = app.__class__(app.app, extra_environ={"HTTP_HOST": "localhost"})
    page = visitor.get(f"/s/{token}")
    og = _og(page.text)
    assert og["og:type"] == "website"
    assert og["og:title"] == "An image made with nproxy"
    assert og["og:image"] == f"http://localhost/s/{token}/image"
    assert "secret prompt" not in page.text
    shared = visitor.get(f"/s/{token}/image")
    assert shared.content_type == "image/png"
    assert shared.body == alice.api.get(image["url"]).body

    # The owner shows the prompt: the same link now carries it.
    again = alice.api.post(f"/api/v1/images/{image['id']}/share", {"show_prompt": True})
    assert again.json == {"url": url, "show_prompt": True}
    page = visitor.get(f"/s/{token}")
    assert _og(page.text)["og:title"] == "my secret prompt words"
    assert "my secret prompt words" in page.text
    detail = alice.api.get(f"/api/v1/images/{image['id']}").json
    assert detail["share"] == {"url": url, "show_prompt": True} and detail["shared"] is True


def test_revoked_share_is_gone_and_a_new_share_is_a_new_link(app, alice, mallory, db):
    image = _made(app, alice)["images"][0]
    url = alice.api.post(f"/api/v1/images/{image['id']}/share").json["url"]
    path = url.removeprefix("http://localhost")
    # Someone else can neither share nor revoke it.
    assert mallory.api.post(f"/api/v1/images/{image['id']}/share").status_int == 404
    assert mallory.api.delete(f"/api/v1/images/{image['id']}/share").status_int == 404
    assert app.get(path).status_int == 200

    assert alice.api.delete(f"/api/v1/images/{image['id']}/share").status_int == 204
    visitor = app.__class__(app.app, extra_environ={"HTTP_HOST": "localhost"})
    assert visitor.get(path, status=404)
    assert visitor.get(f"{path}/image", status=404)
    assert visitor.get("/s/unknown-token", status=404)
    assert alice.api.get(f"/api/v1/images/{image['id']}").json["share"] is None

    fresh = alice.api.post(f"/api/v1/images/{image['id']}/share").json["url"]
    assert fresh != url
    assert visitor.get(path, status=404)
    assert visitor.get(fresh.removeprefix("http://localhost")).status_int == 200


def test_share_takes_show_prompt_as_a_boolean_only(app, alice):
    image = _made(app, alice)["images"][0]
    answer = alice.api.post(f"/api/v1/images/{image['id']}/share", {"show_prompt": "yes"})
    assert answer.status_int == 400
    assert answer.json["error"]["fields"] == {"show_prompt": "invalid"}
    assert alice.api.get(f"/api/v1/images/{image['id']}").json["share"] is None


# --- delete ---------------------------------------------------------------------------------------


def test_deleting_an_image_removes_its_media_and_gives_no_units_back(app, alice, mallory, db):
    storage = find_service(app.app.registry, IStorage)
    made = _made(app, alice, batch_size=2)
    gone, kept = made["images"]
    row = _row(db, gone["id"])
    keys = (row.storage_key, row.thumb_key)
    url = alice.api.post(f"/api/v1/images/{gone['id']}/share").json["url"]
    used = fresh_cycle(db, alice.cycle.id).used

    assert mallory.api.delete(f"/api/v1/images/{gone['id']}").status_int == 404
    assert alice.api.delete(f"/api/v1/images/{gone['id']}").status_int == 204
    for path in (gone["url"], gone["thumb_url"], f"{gone['url']}?format=jpeg"):
        assert alice.api.get(path).status_int == 404
    assert app.get(url.removeprefix("http://localhost"), status=404)
    assert not any(storage.exists(key) for key in keys)
    assert alice.api.delete(f"/api/v1/images/{gone['id']}").status_int == 404
    assert alice.api.get(kept["url"]).status_int == 200
    assert [i["id"] for i in alice.api.get("/api/v1/images").json["images"]] == [kept["id"]]
    assert [i["id"] for i in alice.poll(made["id"])["images"]] == [kept["id"]]
    assert fresh_cycle(db, alice.cycle.id).used == used


def test_deleting_a_conversation_deletes_the_thumbnails_too(app, alice, db):
    storage = find_service(app.app.registry, IStorage)
    made = _made(app, alice)
    thumb_key = _row(db, made["images"][0]["id"]).thumb_key
    assert storage.exists(thumb_key)
    assert alice.api.delete(f"/api/v1/conversations/{made['conversation_id']}").status_int == 204
    assert not storage.exists(thumb_key)


# --- S3 -------------------------------------------------------------------------------------------


def test_thumbnails_downloads_and_delete_on_s3(make_app, customer_factory, add_key, s3_server, db):
    import httpx

    bucket = s3_server.new_bucket()
    app = make_app(**s3_server.settings(bucket))
    add_key(app.app.registry, "demo-key-1")
    bob = customer_factory(app)
    image = _made(app, bob, model="demo-pro", resolution="portrait")["images"][0]
    row = _row(db, image["id"])
    assert sorted(s3_server.keys(bucket)) == sorted([row.storage_key, row.thumb_key])

    thumb = bob.api.get(image["thumb_url"])
    assert thumb.status_int == 302  # to a presigned URL of the thumbnail
    assert f"/{bucket}/{row.thumb_key}?" in thumb.headers["Location"]
    with httpx.Client(trust_env=False, timeout=10) as http:
        fetched = http.get(thumb.headers["Location"])
    assert fetched.status_code == 200
    assert Image.open(io.BytesIO(fetched.content)).size == (288, 384)  # 768 x 1024

    jpeg = bob.api.get(f"{image['url']}?format=jpeg")
    assert jpeg.status_int == 200 and _image(jpeg).format == "JPEG"

    assert bob.api.delete(f"/api/v1/images/{image['id']}").status_int == 204
    assert s3_server.keys(bucket) == []
    assert bob.api.get(image["thumb_url"]).status_int == 404


# --- money: the submission path's rules hold for vary and upscale --------------------------------


def test_concurrent_varies_never_hold_more_than_the_units_left(app, customer_factory, add_key, db):
    add_key(app.app.registry, "demo-key-1")
    carol = customer_factory(app, request_limit=2)
    image_id = _made(app, carol)["images"][0]["id"]  # 1 of 2 units used
    answers = carol.post_concurrently(f"/api/v1/images/{image_id}/vary", 4)
    statuses = sorted(answer.status_int for answer in answers)
    assert statuses == [202, 402, 402, 402], [a.text for a in answers]
    refused = [a.json["error"]["code"] for a in answers if a.status_int == 402]
    assert refused == ["quota_exhausted"] * 3
    cycle = fresh_cycle(db, carol.cycle.id)
    assert (cycle.used, cycle.reserved) == (1, 1)
    db.expire_all()
    assert db.scalar(sa.select(sa.func.count()).where(Generation.user_id == carol.user.id)) == 2


def test_a_vary_resent_with_its_idempotency_key_is_made_and_held_once(app, alice, db):
    image_id = _made(app, alice)["images"][0]["id"]
    reserved = fresh_cycle(db, alice.cycle.id).reserved
    answers = alice.post_concurrently(
        f"/api/v1/images/{image_id}/vary", 4, headers={"Idempotency-Key": "vary-once"}
    )
    assert {a.status_int for a in answers} == {202}
    assert len({a.json["id"] for a in answers}) == 1
    assert fresh_cycle(db, alice.cycle.id).reserved == reserved + 1


# --- orphaned thumbnails --------------------------------------------------------------------------


def test_thumbnails_no_image_names_are_swept_after_the_grace_period(
    make_app, customer_factory, add_key, db, tmp_path
):
    import datetime as dt
    import os

    from nproxy_core.db import utcnow
    from nproxy_core.storage.orphans import sweep_orphans
    from nproxy_core.wiring import prepare_request

    app = make_app(**{"storage.local.path": str(tmp_path)})
    add_key(app.app.registry, "demo-key-1")
    dave = customer_factory(app)
    kept = _row(db, _made(app, dave)["images"][0]["id"]).thumb_key
    orphan = tmp_path / "thumbs" / "generations" / "1" / "gone" / "0.webp"
    orphan.parent.mkdir(parents=True)
    orphan.write_bytes(b"webp")
    two_days_ago = (utcnow() - dt.timedelta(days=2)).timestamp()
    for path in tmp_path.rglob("*"):
        if path.is_file():
            os.utime(path, (two_days_ago, two_days_ago))

    request = prepare_request(app.app.registry)
    with request.tm:
        assert sweep_orphans(request) == 1
    assert not orphan.exists()
    assert (tmp_path / kept).exists()
