"""A local stand-in for the Example API: images, checkouts, payments and signed notifications.

Run it with ``python -m nproxy_example.server --port 8765 --webhook-secret S``. The image
key chooses the answer: ``status-401-…`` (or any status) answers that error, ``slow-…`` waits
two seconds first; any other key gets a PNG drawn from the prompt, key and seed (the same
request gives the same image). A checkout's page (``GET /pay/{id}``) has a Pay button; it, or
``POST /checkouts/{id}/pay`` with ``{"status": "paid"}`` (any status), plays the buyer: it records
a payment and POSTs its signed notification to the checkout's callback.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import html
import io
import itertools
import json
import re
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from PIL import Image, ImageDraw

from nproxy_example.payments import SIGNATURE_HEADER, sign

ERRORS = {
    400: "bad_request",
    401: "invalid_key",
    402: "no_credit",
    403: "forbidden",
    422: "content_refused",
    429: "rate_limited",
    500: "internal",
    503: "overloaded",
}


def draw(prompt: str, key: str, seed: int, width: int, height: int) -> bytes:
    digest = hashlib.sha256(f"{prompt}\0{key}\0{seed}".encode()).digest()
    image = Image.new("RGB", (width, height), tuple(digest[:3]))
    ImageDraw.Draw(image).ellipse(
        [width // 4, height // 4, width * 3 // 4, height * 3 // 4], fill=tuple(digest[3:6])
    )
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


class ExampleAPI(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # the conformance kit connects 100 times at once

    def __init__(self, port: int = 0, webhook_secret: str = "example-webhook-secret") -> None:  # noqa: S107
        super().__init__(("127.0.0.1", port), Handler)
        self.webhook_secret = webhook_secret
        self.checkouts: dict[str, dict] = {}
        self.payments: dict[str, dict] = {}
        self.ids = itertools.count(1000)
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def start(self) -> ExampleAPI:
        threading.Thread(target=self.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()

    def pay(self, checkout_id: str, status: str) -> dict:
        """Record a payment of the checkout in ``status`` and notify its callback."""
        with self.lock:
            checkout = self.checkouts[checkout_id]
            payment_id = str(next(self.ids))
            payment = {
                "checkout_id": checkout_id,
                "order_id": checkout["order_id"],
                "payment_id": payment_id,
                "status": status,
                "amount": checkout["amount"],
                "currency": checkout["currency"],
            }
            self.payments[payment_id] = payment
        body = json.dumps(payment).encode()
        notify = urllib.request.Request(  # noqa: S310 - nproxy's callback URL
            checkout["callback_url"],
            data=body,
            method="POST",
            headers={
                "Content-Type": "application/json",
                SIGNATURE_HEADER: sign(self.webhook_secret, body),
            },
        )
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(notify, timeout=10) as answer:
                delivered = answer.status
        except urllib.error.HTTPError as error:
            delivered = error.code
        return {**payment, "delivered": delivered}


class Handler(BaseHTTPRequestHandler):
    server: ExampleAPI

    def log_message(self, format, *args):  # quiet
        pass

    def _answer(self, status: int, body: bytes, kind: str = "application/json", **headers):
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.end_headers()
        self.wfile.write(body)

    def _error(self, status: int, message: str = "", **headers):
        code = ERRORS.get(status, "error")
        body = json.dumps({"error": {"code": code, "message": message or code}}).encode()
        self._answer(status, body, **headers)

    def _json(self) -> dict:
        length = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(length) or b"{}")

    def _key(self) -> str:
        return (self.headers.get("Authorization") or "").removeprefix("Bearer ").strip()

    def do_POST(self):
        if self.path == "/images":
            return self._image()
        if self.path == "/checkouts":
            data = self._json()
            with self.server.lock:
                checkout_id = f"chk_{next(self.server.ids)}"
                self.server.checkouts[checkout_id] = data
            url = f"{self.server.url}/pay/{checkout_id}"
            return self._answer(200, json.dumps({"id": checkout_id, "url": url}).encode())
        match = re.fullmatch(r"/checkouts/([^/]+)/pay", self.path)
        if match and match.group(1) in self.server.checkouts:
            paid = self.server.pay(match.group(1), self._json().get("status", "paid"))
            return self._answer(200, json.dumps(paid).encode())
        match = re.fullmatch(r"/pay/([^/]+)", self.path)
        if match and match.group(1) in self.server.checkouts:
            # The buyer pressed the button on the checkout page: pay, go back to the shop.
            self.server.pay(match.group(1), "paid")
            self.send_response(303)
            self.send_header("Location", self.server.checkouts[match.group(1)]["success_url"])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        return self._error(404, "no such path")

    def do_GET(self):
        match = re.fullmatch(r"/pay/([^/]+)", self.path)
        if match and match.group(1) in self.server.checkouts:
            checkout = self.server.checkouts[match.group(1)]
            page = (
                f"<h1>Example Pay</h1><p>{html.escape(checkout['description'])}: "
                f"{html.escape(checkout['amount'])} {html.escape(checkout['currency'])}</p>"
                '<form method="post"><button>Pay</button></form>'
            )
            return self._answer(200, page.encode(), "text/html; charset=utf-8")
        match = re.fullmatch(r"/payments/([^/]+)", self.path)
        payment = self.server.payments.get(match.group(1)) if match else None
        if payment is None:
            return self._error(404, "no such payment")
        return self._answer(200, json.dumps(payment).encode())

    def _image(self):
        key = self._key()
        data = self._json()
        if not key:
            return self._error(401, "no key")
        match = re.match(r"status-(\d{3})", key)
        if match:
            status = int(match.group(1))
            return self._error(status, retry_after="7") if status == 429 else self._error(status)
        if key.startswith("slow"):
            time.sleep(2)
        try:
            size = int(data["width"]), int(data["height"])
            png = draw(data["prompt"], key, int(data["seed"]), *size)
        except (KeyError, TypeError, ValueError):
            return self._error(400, "prompt, seed, width and height are required")
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client gave up
            self._answer(200, png, "image/png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--webhook-secret", default="example-webhook-secret")
    args = parser.parse_args()
    server = ExampleAPI(args.port, args.webhook_secret)
    print(f"Example API on {server.url}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
