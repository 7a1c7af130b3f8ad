"""``GET /media/{asset_id}`` with a resolver of another feature: the extension point the
generation pipeline uses for generated images."""

from __future__ import annotations

import pytest
import webtest
from pyramid.exceptions import ConfigurationConflictError

from apiclient import ApiClient
from conftest import registry_service
from nproxy_core.config import configure
from nproxy_core.db import IDatabase
from nproxy_core.storage import IStorage, MediaAsset
from nproxy_core.wiring import find_service


@pytest.fixture
def generated_app(base_settings, tmp_path, db):
    """The real app plus a resolver for made-up generated images of ``owner["id"]``."""
    owner: dict[str, int] = {}

    def resolve(request, asset_id):
        if asset_id == "gen-asset-1":
            return MediaAsset(owner["id"], "generations/1/77/0.png", "image/png")
        if asset_id == "gen-asset-missing":
            # A plain (owner, key, mime) tuple works too.
            return (owner["id"], "generations/1/77/9.png", "image/png")
        if asset_id == "gen-asset-unreadable":
            # A folder where the object should be: the backend cannot read it.
            return MediaAsset(owner["id"], "generations/1/77", "image/png")
        return None

    config = configure({**base_settings, "storage.local.path": str(tmp_path / "media")})
    config.add_media_resolver(resolve)
    app = webtest.TestApp(config.make_wsgi_app(), extra_environ={"HTTP_HOST": "localhost"})
    yield app, owner
    find_service(config.registry, IDatabase).engine.dispose()


def test_a_registered_resolver_serves_its_assets(generated_app):
    app, asset_owner = generated_app
    storage = registry_service(app.app.registry, IStorage)
    storage.put("generations/1/77/0.png", b"\x89PNG generated", "image/png")
    owner = ApiClient(app)
    asset_owner["id"] = owner.register("first@example.com").json["user"]["id"]
    stranger = ApiClient(webtest.TestApp(app.app, extra_environ={"HTTP_HOST": "localhost"}))
    stranger.register("second@example.com")
    assert stranger.get("/media/gen-asset-1").status_int == 404
    res = owner.get("/media/gen-asset-1")
    assert res.status_int == 200
    assert res.body == b"\x89PNG generated"
    assert res.content_type == "image/png"
    # An asset whose object is gone is a plain 404, not an error page.
    assert owner.get("/media/gen-asset-missing").status_int == 404
    assert owner.get("/media/nobody-knows-this").status_int == 404


def test_a_storage_failure_is_a_503_that_names_no_path(generated_app):
    app, asset_owner = generated_app
    registry_service(app.app.registry, IStorage).put("generations/1/77/0.png", b"png", "image/png")
    owner = ApiClient(app)
    asset_owner["id"] = owner.register("first@example.com").json["user"]["id"]
    res = owner.get("/media/gen-asset-unreadable", headers={"Accept": "application/json"})
    assert res.status_int == 503
    assert res.json["error"]["code"] == "storage_unavailable"
    assert "generations" not in res.json["error"]["message"]


def test_the_same_resolver_twice_is_a_configuration_conflict(base_settings):
    def resolve(request, asset_id):
        return None

    config = configure(base_settings)
    config.add_media_resolver(resolve)
    config.add_media_resolver(resolve)
    with pytest.raises(ConfigurationConflictError):
        config.commit()
    # Nothing was registered, and the engine never connected: nothing to close.
