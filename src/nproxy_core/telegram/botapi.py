"""Plain HTTP ``sendMessage`` to the Telegram Bot API, for workers (the bot process uses
python-telegram-bot). The token is part of every URL, so no URL and no transport error text
is ever logged or stored without the token scrubbed from it."""

from __future__ import annotations

import dataclasses
import json
import logging
from typing import Any

import httpx
from zope.interface import implementer

from nproxy_core.telegram.interfaces import IBotAPI

# httpx logs every request URL at INFO, and the URL carries the bot token.
logging.getLogger("httpx").setLevel(logging.WARNING)

MAX_TEXT = 4096


@dataclasses.dataclass(frozen=True)
class SendResult:
    ok: bool
    #: Telegram asked to wait this many seconds (429).
    retry_after: float | None = None
    #: Sending again will not help (the chat blocked the bot, a bad request).
    permanent: bool = False
    error: str | None = None


def clip(text: str) -> str:
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


@implementer(IBotAPI)
class BotAPI:
    """A Telegram bot's HTTP API, one method at a time."""

    def __init__(self, api_base: str, token: str, *, timeout: float = 10.0) -> None:
        self._base = f"{api_base.rstrip('/')}/bot{token}"
        self._token = token
        self._timeout = timeout

    @property
    def configured(self) -> bool:
        return bool(self._token)

    def scrub(self, text: str) -> str:
        return text.replace(self._token, "<token>") if self._token else text

    def send_message(
        self, chat_id: int, text: str, *, reply_markup: dict[str, Any] | None = None
    ) -> SendResult:
        body: dict[str, Any] = {"chat_id": chat_id, "text": clip(text)}
        if reply_markup is not None:
            body["reply_markup"] = reply_markup
        return self.call("sendMessage", body)

    def call(self, method: str, body: dict[str, Any]) -> SendResult:
        try:
            with httpx.Client(timeout=self._timeout, trust_env=False) as client:
                response = client.post(f"{self._base}/{method}", json=body)
        except httpx.HTTPError as exc:
            return SendResult(False, error=self.scrub(f"{type(exc).__name__}: {exc}")[:255])
        try:
            answer = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            answer = {}
        if not isinstance(answer, dict):
            answer = {}
        if response.status_code == 200 and answer.get("ok") is True:
            return SendResult(True)
        description = self.scrub(str(answer.get("description") or f"HTTP {response.status_code}"))
        if response.status_code == 429:
            parameters = answer.get("parameters") or {}
            try:
                retry_after = float(parameters.get("retry_after") or 1)
            except (TypeError, ValueError):
                retry_after = 1.0
            return SendResult(False, retry_after=max(retry_after, 0.0), error=description[:255])
        permanent = response.status_code in (400, 401, 403, 404)
        return SendResult(False, permanent=permanent, error=description[:255])
