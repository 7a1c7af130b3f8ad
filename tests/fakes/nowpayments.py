"""A fake NOWPayments API (a real HTTP server) and helpers that send signed IPNs like it does.

Used by the plugin's tests and by anyone testing the billing webhook::

    with FakeNowPayments() as fake:           # api_key="test-api-key", ipn_secret="test-ipn-secret"
        settings = {"nowpayments.api_base": fake.api_base, ...}
        fake.set_payment("5524759814", payment_status="finished", order_id="o-1")
        invoice = fake.invoices[0]             # what POST /v1/invoice created
        fake.pay_invoice(invoice["id"])        # payment + signed IPN to its ipn_callback_url

    body, headers = sign_ipn({"payment_id": 1, "payment_status": "finished"}, secret)
    testapp.post("/billing/webhooks/nowpayments", body, headers=headers)   # WebTest
    send_ipn(url, '{"price_amount":10.0,"payment_status":"finished"}', secret)  # real HTTP

Numbers are written exactly as given: ``Decimal("0.00012345678901234567")`` or
``RawNumber("1e-7")`` in a dict, or any text in a raw JSON string body. Python floats are
written with ``repr``. The signature code here is written independently of the plugin's.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = [
    "FakeNowPayments",
    "IpnResponse",
    "RawNumber",
    "RecordedRequest",
    "canonical_ipn_text",
    "ipn_payload",
    "send_ipn",
    "sign_ipn",
]

SIGNATURE_HEADER = "x-nowpayments-sig"


# --- Exact-number JSON ----------------------------------------------------------------------


class RawNumber:
    """A JSON number written exactly as this text (``"10.0"``, ``"1e-7"``, ``"9.990"``)."""

    def __init__(self, text: str | int | Decimal) -> None:
        self.text = str(text)
        # Refuse anything that would make the body invalid JSON.
        json.loads(self.text)

    def __repr__(self) -> str:
        return f"RawNumber({self.text!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RawNumber) and other.text == self.text

    def __hash__(self) -> int:
        return hash(self.text)


def _loads_raw(text: str | bytes) -> Any:
    return json.loads(text, parse_float=RawNumber, parse_int=RawNumber)


def _to_json(value: Any, *, sort: bool) -> str:
    """Compact JSON, non-ASCII unescaped (as JSON.stringify), numbers exactly as given."""
    parts: list[str] = []

    def emit(node: Any) -> None:
        if isinstance(node, RawNumber):
            parts.append(node.text)
        elif isinstance(node, bool) or node is None:
            parts.append({True: "true", False: "false", None: "null"}[node])
        elif isinstance(node, Decimal):
            parts.append(str(node))
        elif isinstance(node, int | float):
            parts.append(repr(node))
        elif isinstance(node, str):
            parts.append(json.dumps(node, ensure_ascii=False))
        elif isinstance(node, Mapping):
            keys = list(node.keys())
            if sort:
                # JS sortObject: array-index keys first numerically, then UTF-16 order.
                numeric = [k for k in keys if re.fullmatch(r"0|[1-9]\d{0,9}", k)]
                numeric = [k for k in numeric if int(k) < 2**32 - 1]
                others = [k for k in keys if k not in numeric]
                keys = sorted(numeric, key=int) + sorted(
                    others, key=lambda k: [ord(c) for c in k.encode("utf-16-be").decode("latin-1")]
                )
            parts.append("{")
            for position, key in enumerate(keys):
                if position:
                    parts.append(",")
                parts.append(json.dumps(key, ensure_ascii=False) + ":")
                emit(node[key])
            parts.append("}")
        elif isinstance(node, list | tuple):
            parts.append("[")
            for position, item in enumerate(node):
                if position:
                    parts.append(",")
                emit(item)
            parts.append("]")
        else:
            raise TypeError(f"cannot write {type(node).__name__} as JSON")

    emit(value)
    return "".join(parts)


def _plain(value: Any) -> Any:
    """Parsed JSON with RawNumber as Decimal, for assertions in tests."""
    if isinstance(value, RawNumber):
        return Decimal(value.text)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


# --- IPN helpers ----------------------------------------------------------------------------


def canonical_ipn_text(payload: Mapping[str, Any] | str | bytes) -> str:
    """What NOWPayments signs: the payload with keys sorted recursively, compact."""
    if isinstance(payload, str | bytes):
        payload = _loads_raw(payload)
    return _to_json(payload, sort=True)


def sign_ipn(
    payload: Mapping[str, Any] | str | bytes,
    secret: str,
    *,
    signature: str | None = None,
    sign: bool = True,
) -> tuple[bytes, dict[str, str]]:
    """The body and headers of an IPN as NOWPayments would POST it.

    A dict is written compactly in its own key order; a str/bytes body is sent byte for byte.
    ``signature`` overrides the computed one (forgeries); ``sign=False`` leaves the header out.
    """
    if isinstance(payload, bytes):
        body = payload
    elif isinstance(payload, str):
        body = payload.encode("utf-8")
    else:
        body = _to_json(payload, sort=False).encode("utf-8")
    headers = {"Content-Type": "application/json"}
    if sign:
        if signature is None:
            message = canonical_ipn_text(body).encode("utf-8")
            signature = hmac.new(secret.encode("utf-8"), message, hashlib.sha512).hexdigest()
        headers[SIGNATURE_HEADER] = signature
    return body, headers


@dataclass
class IpnResponse:
    status: int
    body: bytes
    headers: dict[str, str]


def send_ipn(
    url: str,
    payload: Mapping[str, Any] | str | bytes,
    secret: str,
    *,
    signature: str | None = None,
    sign: bool = True,
    timeout: float = 10.0,
) -> IpnResponse:
    """POST a signed IPN to ``url`` over real HTTP; 4xx/5xx answers are returned, not raised."""
    body, headers = sign_ipn(payload, secret, signature=signature, sign=sign)
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    # No proxies from the environment: the target is a local test server.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=timeout) as response:
            return IpnResponse(response.status, response.read(), dict(response.headers))
    except urllib.error.HTTPError as exc:
        return IpnResponse(exc.code, exc.read(), dict(exc.headers))


_ids = itertools.count(5524759814)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + "000Z"


def ipn_payload(**fields: Any) -> dict[str, Any]:
    """A realistic IPN / payment-status object; ``fields`` override the defaults."""
    payment_id = fields.get("payment_id", next(_ids))
    data: dict[str, Any] = {
        "payment_id": payment_id,
        "invoice_id": None,
        "payment_status": "waiting",
        "pay_address": "bc1qfakeaddress0000000000000000000000000",
        "price_amount": RawNumber("9.99"),
        "price_currency": "usd",
        "pay_amount": RawNumber("0.00012345678901234567"),
        "actually_paid": 0,
        "actually_paid_at_fiat": 0,
        "pay_currency": "btc",
        "order_id": None,
        "order_description": "Monthly",
        "purchase_id": str(payment_id + 1_000_000) if isinstance(payment_id, int) else "1",
        "outcome_amount": RawNumber("9.5"),
        "outcome_currency": "usdttrc20",
        "parent_payment_id": None,
        "payin_extra_id": None,
        "fee": {
            "currency": "btc",
            "depositFee": 0,
            "withdrawalFee": 0,
            "serviceFee": RawNumber("0.0000005"),
        },
        "created_at": _now(),
        "updated_at": _now(),
    }
    data.update(fields)
    return data


# --- The fake API server --------------------------------------------------------------------


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")

    def json(self) -> Any:
        """The body parsed with numbers as ``Decimal`` (exact)."""
        return _plain(_loads_raw(self.body))


@dataclass
class _Failure:
    status: int
    body: bytes
    delay: float
    content_type: str


@dataclass
class _State:
    invoices: list[dict[str, Any]] = field(default_factory=list)
    payments: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[RecordedRequest] = field(default_factory=list)
    failures: list[_Failure] = field(default_factory=list)


class FakeNowPayments:
    """NOWPayments' ``/v1/invoice`` and ``/v1/payment/{id}`` on 127.0.0.1, a random port."""

    def __init__(
        self,
        api_key: str = "test-api-key",
        ipn_secret: str = "test-ipn-secret",  # noqa: S107 - a test value, not a credential
    ) -> None:
        self.api_key = api_key
        self.ipn_secret = ipn_secret
        self._state = _State()
        self._lock = threading.Lock()
        self._invoice_ids = itertools.count(4522625843)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    # --- lifecycle --------------------------------------------------------------------------

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def api_base(self) -> str:
        """What to put in ``nowpayments.api_base``."""
        return f"{self.url}/v1"

    def start(self) -> FakeNowPayments:
        # A short poll interval keeps shutdown (once per test) fast.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeNowPayments:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- test control -----------------------------------------------------------------------

    @property
    def invoices(self) -> list[dict[str, Any]]:
        """Invoices created so far, as answered (``id``, ``invoice_url``, ``order_id``…)."""
        with self._lock:
            return list(self._state.invoices)

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._state.requests)

    def set_payment(self, payment_id: str | int, **fields: Any) -> dict[str, Any]:
        """Create or update what ``GET /v1/payment/{payment_id}`` answers."""
        key = str(payment_id)
        with self._lock:
            current = self._state.payments.get(key)
            if current is None:
                pid = int(key) if key.isdigit() else key
                current = ipn_payload(payment_id=pid)
            current.update(fields)
            current["updated_at"] = _now()
            self._state.payments[key] = current
            return dict(current)

    def fail_next(
        self,
        status: int = 500,
        body: bytes | str | Mapping[str, Any] | None = None,
        *,
        delay: float = 0.0,
        content_type: str = "application/json",
    ) -> None:
        """Answer the next request with this instead (queue several for several requests).

        ``delay`` sleeps before answering, to trigger client timeouts.
        """
        if body is None:
            body = {"status": False, "statusCode": status, "code": "INTERNAL_ERROR"}
        if isinstance(body, Mapping):
            body = _to_json(body, sort=False)
        if isinstance(body, str):
            body = body.encode("utf-8")
        with self._lock:
            self._state.failures.append(_Failure(status, body, delay, content_type))

    def pay_invoice(
        self, invoice_id: str, status: str = "finished", *, notify: bool = True, **fields: Any
    ) -> tuple[dict[str, Any], IpnResponse | None]:
        """Pay an invoice: store the payment and, if ``notify``, POST its signed IPN.

        Returns the payment and the callback's answer (None when not notified).
        """
        invoice = next((i for i in self.invoices if i["id"] == str(invoice_id)), None)
        if invoice is None:
            raise KeyError(f"no invoice {invoice_id}")
        payment_id = next(_ids)
        payment = self.set_payment(
            payment_id,
            invoice_id=int(invoice["id"]),
            payment_status=status,
            order_id=invoice["order_id"],
            order_description=invoice["order_description"],
            price_amount=RawNumber(invoice["price_amount"]),
            price_currency=invoice["price_currency"],
            **fields,
        )
        if not notify or not invoice.get("ipn_callback_url"):
            return payment, None
        return payment, send_ipn(invoice["ipn_callback_url"], payment, self.ipn_secret)

    # --- HTTP -------------------------------------------------------------------------------

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep test output quiet

            def do_GET(self) -> None:
                self._serve("GET")

            def do_POST(self) -> None:
                self._serve("POST")

            def _serve(self, method: str) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {k.lower(): v for k, v in self.headers.items()}
                with fake._lock:
                    fake._state.requests.append(RecordedRequest(method, self.path, headers, body))
                    failure = fake._state.failures.pop(0) if fake._state.failures else None
                if failure is not None:
                    if failure.delay:
                        time.sleep(failure.delay)
                    self._send(failure.status, failure.body, failure.content_type)
                    return
                status, answer = fake._route(method, self.path, headers, body)
                self._send(status, _to_json(answer, sort=False).encode("utf-8"))

            def _send(
                self, status: int, body: bytes, content_type: str = "application/json"
            ) -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", content_type)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout tests)

        return Handler

    @staticmethod
    def _error(status: int, code: str, message: str) -> tuple[int, dict[str, Any]]:
        return status, {"status": False, "statusCode": status, "code": code, "message": message}

    def _route(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, Any]:
        if headers.get("x-api-key") != self.api_key:
            return self._error(401, "INVALID_API_KEY", "Invalid api key")
        path = path.split("?", 1)[0]
        if method == "POST" and path == "/v1/invoice":
            return self._create_invoice(body)
        match = re.fullmatch(r"/v1/payment/([^/]+)", path)
        if method == "GET" and match:
            with self._lock:
                payment = self._state.payments.get(match.group(1))
            if payment is None:
                return self._error(404, "PAYMENT_NOT_FOUND", f"Payment {match.group(1)} not found")
            return 200, payment
        return self._error(404, "NOT_FOUND", f"Cannot {method} {path}")

    def _create_invoice(self, body: bytes) -> tuple[int, Any]:
        try:
            data = _loads_raw(body)
        except ValueError:
            return self._error(400, "INVALID_REQUEST_PARAMS", "body is not JSON")
        if not isinstance(data, dict):
            return self._error(400, "INVALID_REQUEST_PARAMS", "body is not an object")
        amount = data.get("price_amount")
        if not isinstance(amount, RawNumber) or Decimal(amount.text) <= 0:
            return self._error(
                400, "INVALID_REQUEST_PARAMS", '"price_amount" must be a positive number'
            )
        if not isinstance(data.get("price_currency"), str):
            return self._error(400, "INVALID_REQUEST_PARAMS", '"price_currency" is required')
        invoice_id = str(next(self._invoice_ids))
        now = _now()
        invoice = {
            "id": invoice_id,
            "token_id": f"tok{invoice_id[-6:]}",
            "order_id": data.get("order_id"),
            "order_description": data.get("order_description"),
            # The real API answers amounts as strings.
            "price_amount": amount.text,
            "price_currency": data["price_currency"],
            "pay_currency": None,
            "ipn_callback_url": data.get("ipn_callback_url"),
            "invoice_url": f"https://nowpayments.io/payment/?iid={invoice_id}",
            "success_url": data.get("success_url"),
            "cancel_url": data.get("cancel_url"),
            "created_at": now,
            "updated_at": now,
        }
        with self._lock:
            self._state.invoices.append(invoice)
        return 200, invoice
