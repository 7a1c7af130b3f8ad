"""Chat pages: ``/chat`` and ``/chat/{conversation_id}`` render the same shell.

The page holds no conversation data: ``chat.js`` loads it from the JSON API, so a conversation
that is not the user's simply fails to load there (404) like any other API call.
"""

from __future__ import annotations

from typing import Any

from pyramid.request import Request

from nproxy_core.accounts.security import user_view
from nproxy_core.uploads.interfaces import IUploadLimits

#: What an upload may be: said to the page, so a file is checked before it is sent.
UPLOAD_TYPES = "image/png,image/jpeg,image/webp"


@user_view("chat", "GET", "chat/chat.html")
@user_view("chat.conversation", "GET", "chat/chat.html")
def chat_page(request: Request) -> dict[str, Any]:
    """The chat shell; ``conversation_id`` (if any) is the thread to open first. The upload
    limits are the server's own, so the browser refuses what the server would."""
    limits = request.find_service(IUploadLimits)
    return {
        "conversation_id": request.matchdict.get("conversation_id") or "",
        "upload_max_bytes": limits.max_bytes,
        "upload_types": UPLOAD_TYPES,
    }


@user_view("library", "GET", "chat/library.html")
def library_page(request: Request) -> dict[str, Any]:
    """Every image of the user, newest first: a shell that ``library.js`` fills from
    ``GET /api/v1/images`` as the person scrolls."""
    return {}
