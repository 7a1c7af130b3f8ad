"""Chat pages: ``/chat`` and ``/chat/{conversation_id}`` render the same shell.

The page holds no conversation data: ``chat.js`` loads it from the JSON API, so a conversation
that is not the user's simply fails to load there (404) like any other API call.
"""

from __future__ import annotations

from typing import Any

from pyramid.request import Request

from nproxy_core.accounts.security import user_view


@user_view("chat", "GET", "chat/chat.html")
@user_view("chat.conversation", "GET", "chat/chat.html")
def chat_page(request: Request) -> dict[str, Any]:
    """The chat shell; ``conversation_id`` (if any) is the thread to open first."""
    return {"conversation_id": request.matchdict.get("conversation_id") or ""}


@user_view("library", "GET", "chat/library.html")
def library_page(request: Request) -> dict[str, Any]:
    """Every image of the user, newest first: a shell that ``library.js`` fills from
    ``GET /api/v1/images`` as the person scrolls."""
    return {}
