"""The NOWPayments plugin against a real fake HTTP server: checkout, IPN signatures, status."""

from __future__ import annotations

import ast
import hashlib
import hmac
import json
import socket
import threading
from collections.abc import Iterator
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from tests.fakes.nowpayments import (
    FakeNowPayments,
    RawNumber,
    canonical_ipn_text,
    ipn_payload,
    send_ipn,
    sign_ipn,
)
from webob.headers import EnvironHeaders

import nproxy_pay_crypto
from nproxy_core.plugins import (
    CheckoutRequest,
    HostedCheckout,
    PaymentEvent,
    PaymentProcessor,
    PaymentProcessorError,
    PaymentStatus,
    PluginSettingError,
    WebhookRejected,
)
from nproxy_pay_crypto import NowPaymentsProcessor

API_KEY = "test-api-key-7Hq2"
SECRET = "test-ipn-secret-Zp9w"


def hmac_hex(text: str, secret: str = SECRET) -> str:
    return hmac.new(secret.encode(), text.encode("utf-8"), hashlib.sha512).hexdigest()


@pytest.fixture
def fake() -> Iterator[FakeNowPayments]:
    with FakeNowPayments(api_key=API_KEY, ipn_secret=SECRET) as server:
        yield server


def make_processor(api_base: str, **overrides: Any) -> NowPaymentsProcessor:
    settings = {
        "nowpayments.api_base": api_base,
        "nowpayments.api_key": API_KEY,
        "nowpayments.ipn_secret": SECRET,
        "nowpayments.timeout_seconds": "2",
        **overrides,
    }
    return NowPaymentsProcessor({k: v for k, v in settings.items() if v is not None})


@pytest.fixture
def processor(fake: FakeNowPayments) -> Iterator[NowPaymentsProcessor]:
    instance = make_processor(fake.api_base)
    yield instance
    instance.close()


def checkout_request(**overrides: Any) -> CheckoutRequest:
    fields: dict[str, Any] = {
        "order_id": "ord-42",
        "amount": Decimal("9.99"),
        "currency": "USD",
        "description": "Monthly plan",
        "callback_url": "https://nproxy.test/billing/webhooks/nowpayments",
        "success_url": "https://nproxy.test/billing/done",
        "cancel_url": "https://nproxy.test/billing/cancelled",
    }
    fields.update(overrides)
    return CheckoutRequest(**fields)


# --- Settings -------------------------------------------------------------------------------


def test_is_a_payment_processor_with_defaults() -> None:
    processor = NowPaymentsProcessor(
        {"nowpayments.api_key": API_KEY, "nowpayments.ipn_secret": SECRET}
    )
    try:
        assert isinstance(processor, PaymentProcessor)
        assert NowPaymentsProcessor.display_name == "Crypto (NOWPayments)"
        assert not NowPaymentsProcessor.is_demo
        assert processor.client.api_base == "https://api.nowpayments.io/v1"
    finally:
        processor.close()


@pytest.mark.parametrize("missing", ["nowpayments.api_key", "nowpayments.ipn_secret"])
@pytest.mark.parametrize("value", [None, "", "   "])
def test_missing_required_setting_is_named(missing: str, value: str | None) -> None:
    with pytest.raises(PluginSettingError, match=repr(missing)):
        make_processor("https://api.nowpayments.io/v1", **{missing: value})


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("nowpayments.timeout_seconds", "soon"),
        ("nowpayments.timeout_seconds", "0"),
        ("nowpayments.api_base", "ftp://api.nowpayments.io/v1"),
        ("nowpayments.api_base", "api.nowpayments.io"),
    ],
)
def test_malformed_setting_is_named(name: str, value: str) -> None:
    with pytest.raises(PluginSettingError, match=repr(name)):
        make_processor("https://api.nowpayments.io/v1", **{name: value})


# --- IPN signature --------------------------------------------------------------------------


def webhook_processor() -> NowPaymentsProcessor:
    # parse_webhook never touches the network, so the API base is never contacted.
    return make_processor("http://127.0.0.1:9/v1")


def test_known_vector_sorted_recursively_numbers_and_text_kept() -> None:
    body = (
        '{"payment_status":"finished","price_amount":10.0,"payment_id":5524759814,'
        '"fee":{"serviceFee":1e-7,"depositFee":0,"currency":"btc"},'
        '"pay_amount":0.00012345678901234567,"price_currency":"usd",'
        '"order_description":"Caf\u00e9 \u20ac/m\u00f6nat \U0001f600","order_id":"ord-42",'
        '"invoice_id":4522625843,"parent_payment_id":null,"outcome_amount":"9.50",'
        '"items":[{"b":1,"a":2}]}'
    )
    # Written out by hand: what JSON.stringify(sortObject(JSON.parse(body))) gives,
    # except that the numbers keep their wire text.
    canonical = (
        '{"fee":{"currency":"btc","depositFee":0,"serviceFee":1e-7},'
        '"invoice_id":4522625843,"items":[{"a":2,"b":1}],'
        '"order_description":"Caf\u00e9 \u20ac/m\u00f6nat \U0001f600","order_id":"ord-42",'
        '"outcome_amount":"9.50","parent_payment_id":null,'
        '"pay_amount":0.00012345678901234567,"payment_id":5524759814,'
        '"payment_status":"finished","price_amount":10.0,"price_currency":"usd"}'
    )
    assert canonical_ipn_text(body) == canonical  # the fake's helper agrees with the vector

    event = webhook_processor().parse_webhook(
        body.encode("utf-8"), {"x-nowpayments-sig": hmac_hex(canonical)}
    )

    assert event == PaymentEvent(
        order_id="ord-42",
        status=PaymentStatus.FINISHED,
        amount=Decimal("10.0"),
        currency="USD",
        payment_id="5524759814",
        invoice_id="4522625843",
        parent_payment_id=None,
        raw=event.raw,
    )
    assert str(event.amount) == "10.0"
    assert event.raw["pay_amount"] == "0.00012345678901234567"
    assert event.raw["fee"] == {"serviceFee": "1e-7", "depositFee": "0", "currency": "btc"}
    json.dumps(dict(event.raw))  # storable as JSON as is


@pytest.mark.parametrize(
    "digits",
    [
        "0.00012345678901234567",
        # More digits than a double holds: a float round trip would sign other text.
        "0.000123456789012345678901",
        "1.10000000000000000001",
    ],
)
def test_float_with_many_digits_is_never_rounded(digits: str) -> None:
    body = f'{{"payment_status":"waiting","price_amount":{digits},"payment_id":1}}'
    canonical = f'{{"payment_id":1,"payment_status":"waiting","price_amount":{digits}}}'
    processor = webhook_processor()
    event = processor.parse_webhook(body.encode(), {"x-nowpayments-sig": hmac_hex(canonical)})
    assert event.amount == Decimal(digits)
    assert event.raw["price_amount"] == digits

    as_float = json.dumps(json.loads(canonical), separators=(",", ":"), sort_keys=True)
    if as_float != canonical:
        with pytest.raises(WebhookRejected, match="signature"):
            processor.parse_webhook(body.encode(), {"x-nowpayments-sig": hmac_hex(as_float)})


@pytest.mark.parametrize(
    ("wire", "signed"),
    [
        ('"9.99"', '"9.99"'),  # amount as a string stays a quoted string
        ("9.99", "9.99"),
        ("10", "10"),
        ("10.0", "10.0"),
        ("1e-7", "1e-7"),  # exponent kept as written, not 1e-07 or 0.0000001
        ("1E+2", "1E+2"),
        ("-0.50", "-0.50"),
    ],
)
def test_numbers_keep_their_wire_text(wire: str, signed: str) -> None:
    body = f'{{"price_amount":{wire},"payment_status":"waiting"}}'
    canonical = f'{{"payment_status":"waiting","price_amount":{signed}}}'
    event = webhook_processor().parse_webhook(
        body.encode(), {"x-nowpayments-sig": hmac_hex(canonical)}
    )
    assert event.amount == Decimal(json.loads(wire, parse_float=str, parse_int=str))


def test_string_and_number_amounts_sign_differently() -> None:
    number_body, _ = sign_ipn('{"price_amount":9.99,"payment_status":"finished"}', SECRET)
    _, string_headers = sign_ipn('{"price_amount":"9.99","payment_status":"finished"}', SECRET)
    with pytest.raises(WebhookRejected, match="signature"):
        webhook_processor().parse_webhook(number_body, string_headers)


def test_js_key_order_integer_keys_first_and_utf16_order() -> None:
    # sortObject + JSON.stringify: array-index keys first numerically, then UTF-16 order
    # (an astral character's surrogate sorts before U+FFFF).
    body = '{"b":1,"10":2,"2":3,"B":4,"\uffff":5,"\U0001f600":6,"payment_status":"waiting"}'
    canonical = '{"2":3,"10":2,"B":4,"b":1,"payment_status":"waiting","\U0001f600":6,"\uffff":5}'
    event = webhook_processor().parse_webhook(
        body.encode("utf-8"), {"x-nowpayments-sig": hmac_hex(canonical)}
    )
    assert event.status is PaymentStatus.WAITING


def test_escaped_text_is_signed_unescaped_and_lone_surrogates_escaped() -> None:
    body = r'{"payment_status":"waiting","order_description":"\u00e9\/x\n\"\ud800"}'
    canonical = '{"order_description":"\u00e9/x\\n\\"\\ud800","payment_status":"waiting"}'
    event = webhook_processor().parse_webhook(
        body.encode(), {"x-nowpayments-sig": hmac_hex(canonical)}
    )
    assert event.raw["order_description"] == '\u00e9/x\n"\ud800'


def test_ascii_escaped_signature_of_python_and_php_samples_is_accepted() -> None:
    payload = {"payment_status": "finished", "order_description": "Caf\u00e9", "payment_id": 7}
    body = json.dumps(payload, ensure_ascii=False).encode()
    # NOWPayments' Python sample: json.dumps(..., separators=(",", ":"), sort_keys=True).
    python_sample = json.dumps(payload, separators=(",", ":"), sort_keys=True)
    assert "\\u00e9" in python_sample
    event = webhook_processor().parse_webhook(body, {"x-nowpayments-sig": hmac_hex(python_sample)})
    assert event.payment_id == "7"


def test_tampered_body_is_rejected() -> None:
    body, headers = sign_ipn(
        '{"payment_status":"finished","price_amount":9.99,"order_id":"ord-42"}', SECRET
    )
    tampered = body.replace(b"9.99", b"9.98")
    processor = webhook_processor()
    processor.parse_webhook(body, headers)  # the original passes
    with pytest.raises(WebhookRejected, match="bad x-nowpayments-sig signature"):
        processor.parse_webhook(tampered, headers)


def test_wrong_secret_is_rejected() -> None:
    body, headers = sign_ipn(ipn_payload(payment_status="finished"), "someone-elses-secret")
    with pytest.raises(WebhookRejected, match="signature"):
        webhook_processor().parse_webhook(body, headers)


@pytest.mark.parametrize("signature", [None, "", "   "])
def test_unsigned_is_rejected(signature: str | None) -> None:
    body, headers = sign_ipn(ipn_payload(), SECRET, sign=False)
    if signature is not None:
        headers["x-nowpayments-sig"] = signature
    with pytest.raises(WebhookRejected, match="missing x-nowpayments-sig"):
        webhook_processor().parse_webhook(body, headers)


@pytest.mark.parametrize("signature", ["zz" * 64, "\u00e9" * 128, "abc"])
def test_garbage_signature_is_rejected(signature: str) -> None:
    body, _ = sign_ipn(ipn_payload(), SECRET)
    with pytest.raises(WebhookRejected, match="signature"):
        webhook_processor().parse_webhook(body, {"x-nowpayments-sig": signature})


def test_header_name_and_hex_case_do_not_matter() -> None:
    body, headers = sign_ipn(ipn_payload(payment_status="confirming"), SECRET)
    signature = headers["x-nowpayments-sig"]
    processor = webhook_processor()
    # A plain dict with other capitalisation, and WebOb's case-insensitive request headers.
    for mapping in (
        {"Content-Type": "application/json", "X-NOWPayments-Sig": signature},
        {"X-NOWPAYMENTS-SIG": signature.upper()},
        EnvironHeaders({"HTTP_X_NOWPAYMENTS_SIG": signature, "CONTENT_TYPE": "application/json"}),
    ):
        assert processor.parse_webhook(body, mapping).status is PaymentStatus.CONFIRMING


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"not json", "not JSON"),
        (b"\xff\xfe{}", "not UTF-8"),
        (b'{"payment_status":"finished","price_amount":NaN}', "not JSON"),
        (b'["payment_status","finished"]', "not a JSON object"),
        (b'"finished"', "not a JSON object"),
        (b'{"payment_id":1}', "payment_status is missing"),
        (b'{"payment_status":"paid"}', "unknown payment_status 'paid'"),
        (b'{"payment_status":3}', "payment_status is not a string"),
        (b'{"payment_status":"finished","price_amount":"lots"}', "is not a number"),
        (b'{"payment_status":"finished","price_amount":"Infinity"}', "is not a number"),
        (b'{"payment_status":"finished","order_id":{"a":1}}', "order_id is not an id"),
    ],
)
def test_malformed_notification_is_rejected(body: bytes, reason: str) -> None:
    # Signed correctly where the body can be signed at all: rejection is for the content.
    try:
        headers = {"x-nowpayments-sig": hmac_hex(canonical_ipn_text(body))}
    except ValueError:
        headers = {"x-nowpayments-sig": "00" * 64}
    with pytest.raises(WebhookRejected, match=reason):
        webhook_processor().parse_webhook(body, headers)


def test_notification_fields_are_normalised() -> None:
    payload = ipn_payload(
        payment_id=5077125051,
        invoice_id=4522625843,
        parent_payment_id=5077125000,
        payment_status="partially_paid",
        order_id="ord-7",
        price_amount="19.90",
        price_currency="eur",
    )
    body, headers = sign_ipn(payload, SECRET)
    event = webhook_processor().parse_webhook(body, headers)
    assert (event.order_id, event.status, event.amount, event.currency) == (
        "ord-7",
        PaymentStatus.PARTIALLY_PAID,
        Decimal("19.90"),
        "EUR",
    )
    assert (event.payment_id, event.invoice_id, event.parent_payment_id) == (
        "5077125051",
        "4522625843",
        "5077125000",
    )


# --- IPN over real HTTP ---------------------------------------------------------------------


@pytest.fixture
def webhook_url() -> Iterator[tuple[str, list[Any]]]:
    """A tiny receiver that runs parse_webhook like the billing view does."""
    processor = webhook_processor()
    outcomes: list[Any] = []

    class Receiver(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["content-length"]))
            try:
                outcomes.append(processor.parse_webhook(body, self.headers))
                status = 200
            except WebhookRejected as exc:
                outcomes.append(exc)
                status = 400
            self.send_response(status)
            self.send_header("content-length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/billing/webhooks/nowpayments", outcomes
    server.shutdown()
    server.server_close()
    processor.close()


def test_send_ipn_over_http(webhook_url: tuple[str, list[Any]]) -> None:
    url, outcomes = webhook_url
    raw = '{"payment_status":"finished","price_amount":10.0,"order_id":"o-1","payment_id":9}'
    assert send_ipn(url, raw, SECRET).status == 200
    assert outcomes[-1].amount == Decimal("10.0")

    forged = send_ipn(url, raw, SECRET, signature="ab" * 64)
    assert forged.status == 400
    assert isinstance(outcomes[-1], WebhookRejected)
    assert send_ipn(url, raw, SECRET, sign=False).status == 400


def test_fake_pays_an_invoice_and_notifies(
    fake: FakeNowPayments, processor: NowPaymentsProcessor, webhook_url: tuple[str, list[Any]]
) -> None:
    url, outcomes = webhook_url
    checkout = processor.create_checkout(checkout_request(callback_url=url))

    payment, answer = fake.pay_invoice(checkout.invoice_id, "finished")

    assert answer is not None and answer.status == 200
    event = outcomes[-1]
    assert (event.order_id, event.status, event.amount, event.currency) == (
        "ord-42",
        PaymentStatus.FINISHED,
        Decimal("9.99"),
        "USD",
    )
    assert event.invoice_id == checkout.invoice_id
    # Reconciliation sees the same payment.
    assert processor.fetch_status(event.payment_id) == event
    assert str(payment["payment_id"]) == event.payment_id


# --- Checkout -------------------------------------------------------------------------------


def test_checkout_wire_format(fake: FakeNowPayments, processor: NowPaymentsProcessor) -> None:
    result = processor.create_checkout(checkout_request())

    [request] = fake.requests
    assert (request.method, request.path) == ("POST", "/v1/invoice")
    assert request.headers["x-api-key"] == API_KEY
    assert request.headers["content-type"] == "application/json"
    # The amount is a JSON number with the Decimal's exact digits (not 9.9900000000000002).
    assert '"price_amount":9.99,' in request.text
    assert request.json() == {
        "price_amount": Decimal("9.99"),
        "price_currency": "usd",
        "order_id": "ord-42",
        "order_description": "Monthly plan",
        "ipn_callback_url": "https://nproxy.test/billing/webhooks/nowpayments",
        "success_url": "https://nproxy.test/billing/done",
        "cancel_url": "https://nproxy.test/billing/cancelled",
    }
    [invoice] = fake.invoices
    assert invoice["price_amount"] == "9.99"  # answered as a string, as the real API does
    assert result == HostedCheckout(checkout_url=invoice["invoice_url"], invoice_id=invoice["id"])


@pytest.mark.parametrize(
    ("amount", "written"),
    [("10.50", "10.50"), ("1E+1", "10"), ("0.000001", "0.000001"), ("123456789.123", None)],
)
def test_checkout_amount_is_exact(
    fake: FakeNowPayments, processor: NowPaymentsProcessor, amount: str, written: str | None
) -> None:
    processor.create_checkout(checkout_request(amount=Decimal(amount)))
    assert f'"price_amount":{written or amount},' in fake.requests[0].text


@pytest.mark.parametrize("amount", [Decimal("0"), Decimal("-1"), Decimal("NaN"), 9.99])
def test_checkout_refuses_bad_amount(
    fake: FakeNowPayments, processor: NowPaymentsProcessor, amount: Any
) -> None:
    with pytest.raises(PaymentProcessorError, match="amount"):
        processor.create_checkout(checkout_request(amount=amount))
    assert fake.requests == []


def test_checkout_accepts_numeric_invoice_id(
    fake: FakeNowPayments, processor: NowPaymentsProcessor
) -> None:
    fake.fail_next(200, '{"id":4522625843,"invoice_url":"https://nowpayments.io/payment/?iid=1"}')
    result = processor.create_checkout(checkout_request())
    assert result.invoice_id == "4522625843"


def test_bad_api_key_is_reported_without_the_key(fake: FakeNowPayments) -> None:
    processor = make_processor(fake.api_base, **{"nowpayments.api_key": "wrong-key-SECRET123"})
    try:
        with pytest.raises(PaymentProcessorError) as info:
            processor.create_checkout(checkout_request())
    finally:
        processor.close()
    message = str(info.value)
    assert "HTTP 401" in message and "INVALID_API_KEY" in message
    assert "wrong-key-SECRET123" not in message


@pytest.mark.parametrize(
    ("status", "body", "content_type", "reason"),
    [
        (500, None, "application/json", "HTTP 500: INTERNAL_ERROR"),
        (502, "<html>Bad gateway</html>", "text/html", "HTTP 502: <html>Bad gateway"),
        (400, '{"code":"INVALID_REQUEST_PARAMS","message":"bad"}', "application/json", "bad"),
        (200, "not json", "application/json", "answer is not JSON"),
        (200, "[1, 2]", "application/json", "not a JSON object"),
        (200, '{"id":"1"}', "application/json", "no usable invoice_url"),
        (200, '{"id":"1","invoice_url":"javascript:alert(1)"}', "application/json", "invoice_url"),
        (200, '{"invoice_url":"https://x.test/i"}', "application/json", "no invoice id"),
    ],
)
def test_checkout_api_errors(
    fake: FakeNowPayments,
    processor: NowPaymentsProcessor,
    status: int,
    body: str | None,
    content_type: str,
    reason: str,
) -> None:
    fake.fail_next(status, body, content_type=content_type)
    with pytest.raises(PaymentProcessorError, match="NOWPayments create invoice") as info:
        processor.create_checkout(checkout_request())
    assert reason in str(info.value)
    assert API_KEY not in str(info.value)


def test_checkout_timeout(fake: FakeNowPayments) -> None:
    processor = make_processor(fake.api_base, **{"nowpayments.timeout_seconds": "0.3"})
    fake.fail_next(200, "{}", delay=1.5)
    try:
        with pytest.raises(PaymentProcessorError, match="timed out"):
            processor.create_checkout(checkout_request())
    finally:
        processor.close()


def test_checkout_connection_refused() -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    processor = make_processor(f"http://127.0.0.1:{port}/v1")
    try:
        with pytest.raises(PaymentProcessorError, match="request failed") as info:
            processor.create_checkout(checkout_request())
    finally:
        processor.close()
    assert API_KEY not in str(info.value)


# --- Status for reconciliation --------------------------------------------------------------


@pytest.mark.parametrize("status", list(PaymentStatus))
def test_fetch_status_for_each_status(
    fake: FakeNowPayments, processor: NowPaymentsProcessor, status: PaymentStatus
) -> None:
    fake.set_payment(
        "5524759814",
        payment_status=str(status),
        order_id="ord-42",
        invoice_id=4522625843,
        price_amount=RawNumber("0.00012345678901234567"),
        price_currency="btc",
    )

    event = processor.fetch_status("5524759814")

    [request] = fake.requests
    assert (request.method, request.path) == ("GET", "/v1/payment/5524759814")
    assert request.headers["x-api-key"] == API_KEY
    assert event.status is status
    assert event.amount == Decimal("0.00012345678901234567")
    assert (event.order_id, event.currency, event.payment_id, event.invoice_id) == (
        "ord-42",
        "BTC",
        "5524759814",
        "4522625843",
    )
    assert event.parent_payment_id is None
    assert event.raw["pay_currency"] == "btc"


def test_fetch_status_repayment_and_string_amount(
    fake: FakeNowPayments, processor: NowPaymentsProcessor
) -> None:
    fake.set_payment(77, payment_status="finished", price_amount="9.99", parent_payment_id=76)
    event = processor.fetch_status("77")
    assert (event.amount, event.parent_payment_id) == (Decimal("9.99"), "76")


def test_fetch_status_errors(fake: FakeNowPayments, processor: NowPaymentsProcessor) -> None:
    with pytest.raises(PaymentProcessorError, match="HTTP 404: PAYMENT_NOT_FOUND"):
        processor.fetch_status("404404")

    fake.set_payment(1, payment_status="mystery")
    with pytest.raises(PaymentProcessorError, match="unknown payment_status 'mystery'"):
        processor.fetch_status("1")

    fake.fail_next(200, '{"payment_id":2,"payment_status":"finished"}')
    with pytest.raises(PaymentProcessorError, match="asked for 3, got 2"):
        processor.fetch_status("3")

    fake.fail_next(503, "down", content_type="text/plain")
    with pytest.raises(PaymentProcessorError, match="HTTP 503"):
        processor.fetch_status("3")

    with pytest.raises(PaymentProcessorError, match="empty"):
        processor.fetch_status(" ")


def test_fetch_status_keeps_odd_ids_in_their_path_segment(
    fake: FakeNowPayments, processor: NowPaymentsProcessor
) -> None:
    with pytest.raises(PaymentProcessorError):
        processor.fetch_status("../invoice?x=1")
    assert fake.requests[0].path == "/v1/payment/..%2Finvoice%3Fx%3D1"


def test_plugin_imports_only_the_public_interface_of_the_core() -> None:
    for path in Path(nproxy_pay_crypto.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            for name in names:
                if name.startswith("nproxy_core"):
                    assert name == "nproxy_core.plugins", f"{path.name} imports {name}"
