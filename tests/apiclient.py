"""A client for the JSON API that behaves like the chat UI: cookies plus X-CSRF-Token."""

from __future__ import annotations

from typing import Any

import webtest

PASSWORD = "correct horse battery"


class ApiClient:
    """Talks to the JSON API the way the chat UI does: session cookie plus X-CSRF-Token."""

    def __init__(self, testapp: webtest.TestApp) -> None:
        self.app = testapp

    def csrf(self) -> str:
        return self.app.get("/api/v1/session").json["csrf_token"]

    def get(self, url: str, **kw: Any) -> webtest.TestResponse:
        kw.setdefault("status", "*")
        return self.app.get(url, **kw)

    def post(self, url: str, data: Any = None, **kw: Any) -> webtest.TestResponse:
        kw.setdefault("status", "*")
        headers = {"X-CSRF-Token": self.csrf(), **kw.pop("headers", {})}
        if data is None:
            return self.app.post(url, headers=headers, **kw)
        return self.app.post_json(url, data, headers=headers, **kw)

    def register(self, email: str, password: str = PASSWORD) -> webtest.TestResponse:
        return self.post("/api/v1/auth/register", {"email": email, "password": password})

    def login(self, email: str, password: str = PASSWORD) -> webtest.TestResponse:
        return self.post("/api/v1/auth/login", {"email": email, "password": password})

    def logout(self) -> webtest.TestResponse:
        return self.post("/api/v1/auth/logout")

    def patch(self, url: str, data: Any, **kw: Any) -> webtest.TestResponse:
        kw.setdefault("status", "*")
        headers = {"X-CSRF-Token": self.csrf(), **kw.pop("headers", {})}
        return self.app.patch_json(url, data, headers=headers, **kw)

    def delete(self, url: str, **kw: Any) -> webtest.TestResponse:
        kw.setdefault("status", "*")
        headers = {"X-CSRF-Token": self.csrf(), **kw.pop("headers", {})}
        return self.app.delete(url, headers=headers, **kw)
