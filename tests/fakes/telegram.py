"""A fake Telegram Bot API (a real HTTP server on 127.0.0.1) speaking the wire format of
DESIGN section 8, for the real bot process and the alert sender::

    with FakeTelegram(token="123:abc") as fake:   # settings: telegram.api_base = fake.api_base
        fake.send_text(user_id=42, text="/start")  # an update the next getUpdates returns
        msg = fake.wait_for_message(chat_id=42)   # what the bot sent with sendMessage
        fake.press_button(user_id=42, data="k:restore:3", message=msg)
        fake.rate_limit(retry_after=2, times=1)    # the next sendMessage answers 429
        fake.fail(times=3)                         # the next 3 sendMessage answer 502
        fake.down = True                           # every call answers 502 until reset

Requests are form-encoded (python-telegram-bot) or JSON (plain HTTP senders); both are read.
A request with another token answers 401 ``Unauthorized``, as Telegram does.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["FakeTelegram", "SentMessage"]


@dataclass
class SentMessage:
    message_id: int
    chat_id: int
    text: str
    reply_markup: dict[str, Any] | None
    method: str = "sendMessage"
    at: float = field(default_factory=time.monotonic)
    #: Pictures sent with sendPhoto or sendMediaGroup (one message each), and documents.
    photo: bytes | None = None
    document: bytes | None = None
    media_group: bool = False
    #: The fields of a sendInvoice.
    invoice: dict[str, Any] | None = None

    def buttons(self) -> list[dict[str, Any]]:
        rows = (self.reply_markup or {}).get("inline_keyboard") or []
        return [button for row in rows for button in row]


class FakeTelegram:
    """The Bot API of one bot. Thread safe; use as a context manager."""

    def __init__(self, token: str = "123456:TEST-token") -> None:  # noqa: S107 - a fake
        self.token = token
        self.down = False
        #: Files are known (getFile answers) but fetching one answers 502.
        self.downloads_failing = False
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.messages: list[SentMessage] = []
        self.callback_answers: list[dict[str, Any]] = []
        self.commands: list[dict[str, Any]] = []
        #: setMyCommands by its ``language_code`` ("" for the menu of every other language).
        self.commands_by_language: dict[str, list[dict[str, Any]]] = {}
        #: Files users sent (file_id -> bytes), served through getFile and /file/bot.../path.
        self.files: dict[str, bytes] = {}
        self.chat_actions: list[dict[str, Any]] = []
        self.pre_checkout_answers: list[dict[str, Any]] = []
        self._media_limited: list[int] = []
        #: Other bots' fakes served on this one's address (their own tokens and state).
        self._mounted: dict[str, FakeTelegram] = {}
        self._file_ids = itertools.count(1)
        self._updates: list[dict[str, Any]] = []
        self._limited: list[int] = []
        self._edits_limited: list[int] = []
        self._failing = 0
        #: refundStarPayment calls Telegram took: {"user_id", "telegram_payment_charge_id"}.
        self.refunds: list[dict[str, Any]] = []
        #: sendMessage calls answered 429 or 502 (by ``rate_limit`` and ``fail``).
        self.refused = 0
        self._update_ids = itertools.count(1000)
        self._message_ids = itertools.count(1)
        self._lock = threading.Condition()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    # --- lifecycle --------------------------------------------------------------------------

    @property
    def api_base(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> FakeTelegram:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        with self._lock:
            self._lock.notify_all()
        self._server.shutdown()
        self._server.server_close()

    # --- what the test feeds ----------------------------------------------------------------

    def _push(self, update: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            update["update_id"] = next(self._update_ids)
            self._updates.append(update)
            self._lock.notify_all()
        return update

    @staticmethod
    def _user(user_id: int, username: str | None, first_name: str) -> dict[str, Any]:
        user: dict[str, Any] = {"id": user_id, "is_bot": False, "first_name": first_name}
        if username:
            user["username"] = username
        return user

    def send_text(
        self, user_id: int, text: str, *, username: str | None = None, first_name: str = "Ada"
    ) -> dict[str, Any]:
        """A private message from a user; a leading ``/word`` carries a bot_command entity."""
        message = self._message(user_id, username, first_name, text=text)
        if text.startswith("/"):
            length = len(text.split()[0])
            message["entities"] = [{"type": "bot_command", "offset": 0, "length": length}]
        return self._push({"message": message})

    def press_button(
        self,
        user_id: int,
        data: str,
        *,
        message: SentMessage | None = None,
        username: str | None = None,
    ) -> dict[str, Any]:
        """A callback query, as when the user presses an inline button (or forges one)."""
        query: dict[str, Any] = {
            "id": str(next(self._update_ids)),
            "from": self._user(user_id, username, "Ada"),
            "chat_instance": "1",
            "data": data,
        }
        if message is not None:
            query["message"] = {
                "message_id": message.message_id,
                "date": int(time.time()),
                "chat": {"id": message.chat_id, "type": "private"},
                "text": message.text,
            }
        return self._push({"callback_query": query})

    def _message(
        self, user_id: int, username: str | None, first_name: str, **fields: Any
    ) -> dict[str, Any]:
        return {
            "message_id": next(self._message_ids),
            "date": int(time.time()),
            "chat": {"id": user_id, "type": "private", "first_name": first_name},
            "from": self._user(user_id, username, first_name),
            **fields,
        }

    def add_file(self, data: bytes, *, size: int | None = None) -> dict[str, Any]:
        """Store ``data`` as a file users sent; ``size`` overrides the size Telegram reports."""
        number = next(self._file_ids)
        file_id = f"file-{number}"
        with self._lock:
            self.files[file_id] = data
        return {
            "file_id": file_id,
            "file_unique_id": f"u{number}",
            "file_size": len(data) if size is None else size,
        }

    def send_photo(
        self,
        user_id: int,
        data: bytes,
        *,
        caption: str | None = None,
        media_group_id: str | None = None,
        size: int | None = None,
        username: str | None = None,
        first_name: str = "Ada",
    ) -> dict[str, Any]:
        """A photo (sizes, largest last, as Telegram sends them), with an optional caption and
        album (media group) id."""
        big = self.add_file(data, size=size) | {"width": 1024, "height": 1024}
        small = self.add_file(data[:64]) | {"width": 90, "height": 90}
        fields: dict[str, Any] = {"photo": [small, big]}
        if caption is not None:
            fields["caption"] = caption
        if media_group_id is not None:
            fields["media_group_id"] = media_group_id
        return self._push({"message": self._message(user_id, username, first_name, **fields)})

    def send_document(
        self,
        user_id: int,
        data: bytes,
        *,
        mime_type: str,
        file_name: str,
        caption: str | None = None,
        size: int | None = None,
        first_name: str = "Ada",
    ) -> dict[str, Any]:
        document = self.add_file(data, size=size) | {"mime_type": mime_type, "file_name": file_name}
        fields: dict[str, Any] = {"document": document}
        if caption is not None:
            fields["caption"] = caption
        return self._push({"message": self._message(user_id, None, first_name, **fields)})

    def send_sticker(self, user_id: int, *, first_name: str = "Ada") -> dict[str, Any]:
        sticker = self.add_file(b"RIFF-sticker") | {
            "width": 512,
            "height": 512,
            "is_animated": False,
            "is_video": False,
            "type": "regular",
        }
        return self._push({"message": self._message(user_id, None, first_name, sticker=sticker)})

    def send_update(self, update: dict[str, Any]) -> dict[str, Any]:
        """Any update as given (payments, hand-made shapes); the update_id is set here."""
        return self._push(update)

    def mount(self, other: FakeTelegram) -> None:
        """Serve ``other`` (another bot, another token) on this fake's address too, as
        Telegram serves every bot on one host: ``telegram.api_base`` is shared by both bots."""
        self._mounted[other.token] = other

    def rate_limit_media(self, retry_after: int, times: int = 1) -> None:
        """The next ``times`` sendPhoto/sendMediaGroup calls answer 429 with ``retry_after``."""
        with self._lock:
            self._media_limited.extend([retry_after] * times)

    def rate_limit(self, retry_after: int, times: int = 1) -> None:
        """The next ``times`` sendMessage calls answer 429 with ``retry_after``."""
        with self._lock:
            self._limited.extend([retry_after] * times)

    def rate_limit_edits(self, retry_after: int, times: int = 1) -> None:
        """The next ``times`` editMessageText calls answer 429 with ``retry_after``."""
        with self._lock:
            self._edits_limited.extend([retry_after] * times)

    def fail(self, times: int = 1) -> None:
        """The next ``times`` sendMessage calls answer 502, as when Telegram has an outage."""
        with self._lock:
            self._failing += times

    # --- what the test reads ----------------------------------------------------------------

    def sent_to(self, chat_id: int) -> list[SentMessage]:
        with self._lock:
            return [m for m in self.messages if m.chat_id == chat_id]

    def wait_for_message(
        self, chat_id: int, *, after: int = 0, contains: str = "", timeout: float = 15
    ) -> SentMessage:
        """The first message to ``chat_id`` past the first ``after`` ones that has ``contains``."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                found = [m for m in self.messages if m.chat_id == chat_id][after:]
                for message in found:
                    if contains in message.text:
                        return message
                left = deadline - time.monotonic()
                if left <= 0:
                    texts = [m.text for m in self.messages if m.chat_id == chat_id]
                    raise AssertionError(f"no message with {contains!r} to {chat_id}: {texts}")
                self._lock.wait(left)

    def wait_for(
        self, chat_id: int, *, method: str, after: int = 0, timeout: float = 30
    ) -> SentMessage:
        """The first message to ``chat_id`` sent with ``method`` past the first ``after`` ones."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                found = [m for m in self.messages if m.chat_id == chat_id][after:]
                for message in found:
                    if message.method == method:
                        return message
                left = deadline - time.monotonic()
                if left <= 0:
                    methods = [m.method for m in self.messages if m.chat_id == chat_id]
                    raise AssertionError(f"no {method} to {chat_id}: {methods}")
                self._lock.wait(left)

    def wait_for_polling(self, timeout: float = 30) -> None:
        """Until a bot has called getUpdates (it is up and listening)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while not any(name == "getUpdates" for name, _ in self.calls):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("the bot never called getUpdates")
                self._lock.wait(left)

    # --- the server -------------------------------------------------------------------------

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)
                prefix = f"/file/bot{fake.token}/"
                if path.startswith(prefix):
                    if fake.downloads_failing:
                        return self._answer(502, {"ok": False, "description": "Bad Gateway"})
                    data = fake.files.get(path[len(prefix) :])
                    if data is None:
                        return self._answer(404, {"ok": False, "description": "Not Found"})
                    self.send_response(200)
                    self.send_header("Content-Type", "application/octet-stream")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return None
                self._dispatch({})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                kind = self.headers.get("Content-Type", "")
                if "json" in kind:
                    params = json.loads(raw or b"{}")
                elif "multipart/form-data" in kind:
                    params = _multipart(kind, raw)
                else:
                    params = {k: v[-1] for k, v in urllib.parse.parse_qs(raw.decode()).items()}
                self._dispatch(params)

            def _dispatch(self, params: dict[str, Any]) -> None:
                path = urllib.parse.urlsplit(self.path).path
                prefix = f"/bot{fake.token}/"
                if fake.down:
                    return self._answer(
                        502, {"ok": False, "error_code": 502, "description": "Bad Gateway"}
                    )
                target = fake
                for token, other in fake._mounted.items():
                    if path.startswith(f"/bot{token}/"):
                        target, prefix = other, f"/bot{token}/"
                if not path.startswith(prefix):
                    return self._answer(
                        401, {"ok": False, "error_code": 401, "description": "Unauthorized"}
                    )
                method = path[len(prefix) :]
                status, body = target._call(method, params)
                self._answer(status, body)

            def _answer(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                # A client that gave up (the bot stopping mid long poll) is not an error.
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.wfile.write(data)

        return Handler

    def _call(self, method: str, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        with self._lock:
            self.calls.append((method, params))
            self._lock.notify_all()
        if method == "getMe":
            return 200, _ok(
                {
                    "id": 1,
                    "is_bot": True,
                    "first_name": "nproxy",
                    "username": "nproxy_bot",
                    "can_join_groups": False,
                    "can_read_all_group_messages": False,
                    "supports_inline_queries": False,
                }
            )
        if method in ("deleteWebhook", "setMyCommands"):
            if method == "setMyCommands":
                commands = _json(params.get("commands")) or []
                self.commands_by_language[str(params.get("language_code") or "")] = commands
                if not params.get("language_code"):
                    self.commands = commands
            return 200, _ok(True)
        if method == "getUpdates":
            return 200, _ok(self._get_updates(params))
        if method in ("sendMessage", "editMessageText"):
            return self._send(method, params)
        if method in ("sendPhoto", "sendMediaGroup", "sendDocument"):
            return self._send_media(method, params)
        if method == "getFile":
            file_id = str(params.get("file_id") or "")
            if file_id not in self.files:
                return 400, {
                    "ok": False,
                    "error_code": 400,
                    "description": "Bad Request: invalid file_id",
                }
            data = self.files[file_id]
            if len(data) > 20 * 1024 * 1024:
                return 400, {
                    "ok": False,
                    "error_code": 400,
                    "description": "Bad Request: file is too big",
                }
            return 200, _ok(
                {
                    "file_id": file_id,
                    "file_unique_id": file_id,
                    "file_size": len(data),
                    "file_path": file_id,
                }
            )
        if method == "sendChatAction":
            with self._lock:
                self.chat_actions.append(params)
                self._lock.notify_all()
            return 200, _ok(True)
        if method == "sendInvoice":
            with self._lock:
                sent = SentMessage(
                    next(self._message_ids),
                    int(params["chat_id"]),
                    str(params.get("title") or ""),
                    None,
                    method,
                )
                sent.invoice = dict(params)
                self.messages.append(sent)
                self._lock.notify_all()
            return 200, _ok({"message_id": sent.message_id, "date": int(time.time())})
        if method == "answerPreCheckoutQuery":
            with self._lock:
                self.pre_checkout_answers.append(params)
                self._lock.notify_all()
            return 200, _ok(True)
        if method == "refundStarPayment":
            with self._lock:
                self.refunds.append(
                    {
                        "user_id": int(params.get("user_id") or 0),
                        "telegram_payment_charge_id": str(params.get("telegram_payment_charge_id")),
                    }
                )
            return 200, _ok(True)
        if method == "answerCallbackQuery":
            with self._lock:
                self.callback_answers.append(params)
                self._lock.notify_all()
            return 200, _ok(True)
        return 404, {"ok": False, "error_code": 404, "description": "Not Found: method not found"}

    def _get_updates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        offset = int(params.get("offset") or 0)
        timeout = min(float(params.get("timeout") or 0), 5.0)
        deadline = time.monotonic() + timeout
        with self._lock:
            # Confirmed updates (below offset) are forgotten, as Telegram does.
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
            while not self._updates and time.monotonic() < deadline:
                self._lock.wait(deadline - time.monotonic())
            return list(self._updates)

    def _send(self, method: str, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        text = str(params.get("text") or "")
        if not text or len(text) > 4096:
            return 400, {
                "ok": False,
                "error_code": 400,
                "description": "Bad Request: message text is empty or too long",
            }
        with self._lock:
            if method == "sendMessage" and self._failing:
                self._failing -= 1
                self.refused += 1
                return 502, {"ok": False, "error_code": 502, "description": "Bad Gateway"}
            limited = self._limited if method == "sendMessage" else self._edits_limited
            if limited:
                self.refused += 1
                retry_after = limited.pop(0)
                return 429, {
                    "ok": False,
                    "error_code": 429,
                    "description": f"Too Many Requests: retry after {retry_after}",
                    "parameters": {"retry_after": retry_after},
                }
            chat_id = int(params["chat_id"])
            if method == "editMessageText":
                message_id = int(params["message_id"])
            else:
                message_id = next(self._message_ids)
            sent = SentMessage(message_id, chat_id, text, _json(params.get("reply_markup")), method)
            self.messages.append(sent)
            self._lock.notify_all()
        return 200, _ok(
            {
                "message_id": message_id,
                "date": int(time.time()),
                "chat": {"id": chat_id, "type": "private"},
                "text": text,
            }
        )

    def _send_media(self, method: str, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        chat_id = int(params["chat_id"])
        with self._lock:
            if method != "sendDocument" and self._media_limited:
                self.refused += 1
                retry_after = self._media_limited.pop(0)
                return 429, {
                    "ok": False,
                    "error_code": 429,
                    "description": f"Too Many Requests: retry after {retry_after}",
                    "parameters": {"retry_after": retry_after},
                }
        if method == "sendMediaGroup":
            media = _json(params.get("media")) or []
            if not 2 <= len(media) <= 10:
                return 400, {
                    "ok": False,
                    "error_code": 400,
                    "description": "Bad Request: wrong number of media in the group",
                }
            items = []
            for item in media:
                ref = str(item.get("media") or "")
                data = params.get(ref[len("attach://") :]) if ref.startswith("attach://") else None
                if not isinstance(data, bytes):
                    return 400, {
                        "ok": False,
                        "error_code": 400,
                        "description": "Bad Request: no media",
                    }
                items.append(data)
            sent = []
            with self._lock:
                for data in items:
                    message = SentMessage(
                        next(self._message_ids),
                        chat_id,
                        "",
                        None,
                        method,
                        photo=data,
                        media_group=True,
                    )
                    self.messages.append(message)
                    sent.append(message)
                self._lock.notify_all()
            return 200, _ok(
                [
                    {
                        "message_id": m.message_id,
                        "date": int(time.time()),
                        "chat": {"id": chat_id, "type": "private"},
                        "photo": [
                            {
                                "file_id": f"sent-{m.message_id}",
                                "file_unique_id": f"s{m.message_id}",
                                "width": 1,
                                "height": 1,
                            }
                        ],
                    }
                    for m in sent
                ]
            )
        field_name = "photo" if method == "sendPhoto" else "document"
        data = params.get(field_name)
        if not isinstance(data, bytes):
            return 400, {
                "ok": False,
                "error_code": 400,
                "description": f"Bad Request: no {field_name}",
            }
        with self._lock:
            message = SentMessage(
                next(self._message_ids),
                chat_id,
                str(params.get("caption") or ""),
                _json(params.get("reply_markup")),
                method,
                **{field_name: data},
            )
            self.messages.append(message)
            self._lock.notify_all()
        result: dict[str, Any] = {
            "message_id": message.message_id,
            "date": int(time.time()),
            "chat": {"id": chat_id, "type": "private"},
        }
        if method == "sendPhoto":
            result["photo"] = [
                {
                    "file_id": f"sent-{message.message_id}",
                    "file_unique_id": f"s{message.message_id}",
                    "width": 1,
                    "height": 1,
                }
            ]
        else:
            result["document"] = {
                "file_id": f"sent-{message.message_id}",
                "file_unique_id": f"s{message.message_id}",
            }
        return 200, _ok(result)


def _multipart(content_type: str, raw: bytes) -> dict[str, Any]:
    """Form fields as text and file parts as bytes (python-telegram-bot's uploads)."""
    import email.parser
    import email.policy

    parser = email.parser.BytesParser(policy=email.policy.HTTP)
    message = parser.parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode() + raw)
    params: dict[str, Any] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        data = part.get_payload(decode=True) or b""
        if part.get_filename() is not None:
            params[name] = data
        else:
            params[name] = data.decode()
    return params


def _ok(result: Any) -> dict[str, Any]:
    return {"ok": True, "result": result}


def _json(value: Any) -> Any:
    if isinstance(value, str):
        return json.loads(value)
    return value
