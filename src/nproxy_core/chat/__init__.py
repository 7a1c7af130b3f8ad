"""The chat: the page where a logged-in user generates images. The page is a shell; the
conversation, the composer and the polling all run in ``static/chat.js`` over the JSON API."""

from __future__ import annotations

from typing import Any


def includeme(config: Any) -> None:
    config.add_route("chat", "/chat")
    config.add_route("chat.conversation", "/chat/{conversation_id}")
    config.scan("nproxy_core.chat.views")
