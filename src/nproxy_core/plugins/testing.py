"""The conformance kit: test classes a plugin's own test suite subclasses.

A provider's tests subclass :class:`ProviderConformance`, a payment processor's
:class:`PaymentProcessorConformance`; name the subclass ``Test...`` and pytest runs every check.
The subclass says how to build the plugin and how to make its fake server (any local stand-in
for the remote API) answer each outcome; the kit decides what the plugin must do about it::

    class TestMyProvider(ProviderConformance):
        plugin_name = "myprovider"          # the entry-point name: settings prefix "myprovider."

        def setup_fake(self):               # start a fake of the remote API (optional)
            self.fake = MyFakeServer().start()

        def teardown_fake(self):
            self.fake.stop()

        def plugin_settings(self):          # the plugin's own settings, by full name
            return {"myprovider.api_base": self.fake.url, "myprovider.timeout_seconds": "1"}

        def make_plugin(self, settings):
            return MyProvider(settings)

        def arrange(self, outcome):         # make the fake answer that outcome for a key
            self.fake.answer(f"key-{outcome}", outcome)
            return Case(api_key=f"key-{outcome}")

The checks need nothing but the standard library (pytest runs them as plain test methods, and
:func:`run_conformance` runs them without pytest, returning what failed). What they check is
in each ``test_`` method's docstring; ``docs/plugins.md`` explains the contract behind them.
"""

from __future__ import annotations

import concurrent.futures
import threading
import unittest
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, ClassVar

from nproxy_core.plugins.contract import (
    CONTRACT_VERSION,
    GRANTED_SETTINGS,
    SECRET_SETTING,
    parse_version,
    scoped_settings,
)
from nproxy_core.plugins.images import IMAGE_FORMATS, identify_image
from nproxy_core.plugins.payments import (
    CheckoutRequest,
    HostedCheckout,
    PaymentEvent,
    PaymentProcessor,
    PaymentStatus,
    WebhookRejected,
)
from nproxy_core.plugins.providers import (
    AttemptResult,
    ContentPolicyError,
    ImageRequest,
    KeyRejectedError,
    Mode,
    ModelCapabilities,
    OutOfFundsError,
    ProviderError,
    RetryableError,
    TransportError,
    UserCausedError,
)
from nproxy_core.plugins.settings import PAYMENT_GROUP, PROVIDER_GROUP

__all__ = [
    "OUTCOMES",
    "SITE_SETTINGS",
    "Case",
    "CheckResult",
    "PaymentProcessorConformance",
    "ProviderConformance",
    "run_conformance",
]

#: Settings of the site around the plugin, with values no plugin may ever be given: the kit
#: builds every plugin from these plus its own, through the loader's scoping.
SITE_SETTINGS: dict[str, str] = {
    "sqlalchemy.url": "postgresql://conformance-db-user:conformance-db-password@db/nproxy",
    SECRET_SETTING: "conformance-site-secret-never-given-to-a-plugin-0123456789",
    "nproxy.public_url": "https://nproxy.example",
    "nproxy.env": "development",
    "celery.broker_url": "amqp://conformance-broker-password@broker//",
    "storage.s3.secret_key": "conformance-s3-secret-key",
    "otherplugin.api_key": "conformance-other-plugin-key",
}
_NEVER_GIVEN = tuple(v for k, v in SITE_SETTINGS.items() if k not in GRANTED_SETTINGS)

#: The outcomes a provider must tell apart, with the error class each must raise and why.
OUTCOMES: dict[str, tuple[type[ProviderError], str]] = {
    "unauthorized": (KeyRejectedError, "a 401 (invalid or revoked key) is a rejected key"),
    "forbidden": (KeyRejectedError, "a 403 (key suspended, region or API not allowed)"),
    "rate_limited": (RetryableError, "a 429 rate limit is retryable, with rate_limit set"),
    "out_of_funds": (OutOfFundsError, "no credit or quota left on the account"),
    "bad_request": (UserCausedError, "a 400 about the request is the user's, not the key's"),
    "content_policy": (ContentPolicyError, "a refusal on content grounds"),
    "server_error": (RetryableError, "a 5xx is retryable and no rate limit"),
    "timeout": (TransportError, "no answer in time is a transport error"),
}


@dataclass(frozen=True)
class Case:
    """One call the kit makes: with this key, this request (None: the kit's default request
    for the first model), on a plugin built with these extra settings (full names)."""

    api_key: str
    request: ImageRequest | None = None
    settings: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CheckResult:
    """One check of :func:`run_conformance`: ``passed``, ``failed`` or ``skipped``."""

    name: str
    status: str
    detail: str = ""


class _Conformance:
    """What both kits share: building the plugin from scoped settings, fake-server hooks."""

    #: The plugin's entry-point name: its settings are the keys starting ``plugin_name.``.
    plugin_name: ClassVar[str] = ""
    group: ClassVar[str] = ""

    # --- hooks a subclass overrides ----------------------------------------------------------

    def setup_fake(self) -> None:
        """Start the fake remote API, before each check."""

    def teardown_fake(self) -> None:
        """Stop it, after each check."""

    def plugin_settings(self) -> Mapping[str, Any]:
        """The plugin's own settings, by full name (``myprovider.api_base``)."""
        return {}

    def make_plugin(self, settings: Mapping[str, Any]) -> Any:
        """Build the plugin from ``settings`` (already scoped: pass them to the class)."""
        raise NotImplementedError("the conformance subclass must define make_plugin(settings)")

    # --- the kit's own machinery -------------------------------------------------------------

    def setup_method(self, method: Any = None) -> None:
        self._built: list[Any] = []
        self.setup_fake()

    def teardown_method(self, method: Any = None) -> None:
        try:
            for plugin in getattr(self, "_built", []):
                close = getattr(plugin, "close", None)
                if close is not None:
                    close()
        finally:
            self.teardown_fake()

    def full_settings(self, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The site's settings with the plugin's own (and ``extra``) among them."""
        return {**SITE_SETTINGS, **self.plugin_settings(), **(extra or {})}

    def build(self, extra: Mapping[str, Any] | None = None) -> Any:
        """The plugin as the loader builds it: from its scoped settings, named."""
        assert self.plugin_name, "set plugin_name to the plugin's entry-point name"
        scoped = scoped_settings(self.group, self.plugin_name, self.full_settings(extra))
        plugin = self.make_plugin(scoped)
        plugin.name = self.plugin_name
        self._built.append(plugin)
        return plugin

    def _class_of(self) -> type:
        plugin = self.build()
        return type(plugin)

    def test_contract_version(self) -> None:
        """The plugin declares a ``major.minor`` contract version with the core's major."""
        declared = getattr(self._class_of(), "contract_version", None)
        try:
            major, _minor = parse_version(declared)
        except ValueError:
            raise AssertionError(f"contract_version {declared!r} is not major.minor") from None
        assert major == parse_version(CONTRACT_VERSION)[0], (
            f"contract_version {declared} targets another major version than the core's "
            f"{CONTRACT_VERSION}: the loader will refuse this plugin"
        )

    def test_settings_scoped(self) -> None:
        """The plugin starts from its own settings alone, and is never handed a value it was
        not granted (the database URL, the site's secret, another plugin's key)."""
        plugin = self.build()
        seen = dict(getattr(plugin, "settings", {}) or {})
        prefix = f"{self.plugin_name}."
        extra = sorted(
            k
            for k in seen
            if not k.startswith(prefix) and k not in GRANTED_SETTINGS and k != SECRET_SETTING
        )
        assert not extra, f"the plugin holds settings outside its prefix: {extra}"
        for value in _found_strings(plugin):
            for secret in _NEVER_GIVEN:
                assert secret not in value, "the plugin holds a site setting it was not given"


def _found_strings(obj: Any, depth: int = 0) -> Iterator[str]:
    """The strings an object keeps, a few levels down (its attributes, mappings, sequences)."""
    if depth > 3:
        return
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, bytes):
        yield obj.decode("latin-1")
    elif isinstance(obj, Mapping):
        for k, v in list(obj.items()):
            yield from _found_strings(k, depth + 1)
            yield from _found_strings(v, depth + 1)
    elif isinstance(obj, list | tuple | set | frozenset):
        for v in list(obj):
            yield from _found_strings(v, depth + 1)
    elif hasattr(obj, "__dict__") and not isinstance(obj, type):
        yield from _found_strings(vars(obj), depth + 1)


def _run_all(calls: Sequence[Callable[[], Any]]) -> list[Any]:
    """Run every call at once, each in a thread of its own released together; their results
    (or the exception each raised) in order."""
    barrier = threading.Barrier(len(calls))

    def one(call: Callable[[], Any]) -> Any:
        barrier.wait(timeout=60)
        try:
            return call()
        except Exception as exc:
            return exc

    with concurrent.futures.ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(one, calls))


class ProviderConformance(_Conformance):
    """Conformance checks for an image provider (the ``nproxy.providers`` contract)."""

    group = PROVIDER_GROUP
    #: How many ``generate`` calls run at once in :meth:`test_concurrent_generate`.
    concurrency: ClassVar[int] = 100
    #: Outcomes the plugin's remote side cannot produce at all, each with the reason (the
    #: check is then skipped, saying so). Anything not listed must be arranged.
    not_offered: ClassVar[Mapping[str, str]] = {}

    # --- hooks -----------------------------------------------------------------------------

    def arrange(self, outcome: str) -> Case:
        """Make the fake answer ``outcome`` (a key of :data:`OUTCOMES`) and say which call
        meets it: typically a key the fake answers that way, and for ``timeout`` a short
        timeout setting with a key the fake is slow for."""
        raise NotImplementedError(f"the conformance subclass must arrange outcome {outcome!r}")

    def arrange_success(self, index: int) -> Case:
        """A call that succeeds, the ``index``-th of many: the fake must answer each index with
        a different image (the same one again for the same index), so that a mixed-up answer
        shows. The default suits a plugin whose fake answers any key with an image that
        depends on the prompt or the index."""
        return Case(api_key=f"conformance-key-{index:03d}", request=self.request_for(index))

    def request_for(self, index: int) -> ImageRequest:
        """The kit's request: the first model, its presets in turn, a prompt naming ``index``."""
        model = self._first_model()
        return ImageRequest(
            mode=Mode.TEXT_TO_IMAGE,
            prompt=f"conformance image {index}",
            resolution=model.resolutions[index % len(model.resolutions)],
            model=model.model,
            index=index,
        )

    # --- checks ------------------------------------------------------------------------------

    def _first_model(self) -> ModelCapabilities:
        models = list(self.build().capabilities())
        assert models, "capabilities() offers no model"
        return models[0]

    def _call(self, case: Case) -> AttemptResult:
        plugin = self.build(case.settings)
        request = case.request or self.request_for(0)
        return plugin.generate(request, api_key=case.api_key, proxy_url=None)

    def test_capabilities_well_formed(self) -> None:
        """Models: unique ids, labels, modes, presets each priced in ``usd_per_image``,
        ``max_batch`` of at least 1, input limits that fit the modes, and ``aspect_ratios`` and
        ``sizes`` only for declared presets and consistent with each other."""
        models = list(self.build().capabilities())
        assert models, "capabilities() offers no model"
        ids: set[str] = set()
        every_id = [getattr(caps, "model", None) for caps in models]
        aliases_seen: set[str] = set()
        for caps in models:
            assert isinstance(caps, ModelCapabilities), f"{caps!r} is not a ModelCapabilities"
            where = f"model {caps.model!r}"
            assert isinstance(caps.model, str) and caps.model.strip() == caps.model != "", (
                f"{where}: the id must be a non-empty string without surrounding spaces"
            )
            assert not any(c.isspace() for c in caps.model), f"{where}: the id has spaces"
            assert caps.model not in ids, f"{where} is offered twice"
            ids.add(caps.model)
            aliases = tuple(getattr(caps, "aliases", ()) or ())
            for alias in aliases:
                assert alias not in every_id and alias not in aliases_seen, (
                    f"{where}: alias {alias!r} is another model's id or alias"
                )
                aliases_seen.add(alias)
            assert caps.display_name.strip(), f"{where}: no label"
            status = getattr(caps, "status", None)
            if status is not None:
                assert str(status) in ("ga", "preview"), f"{where}: status {status!r}"
            assert caps.modes, f"{where}: no mode"
            assert all(isinstance(m, Mode) for m in caps.modes), f"{where}: modes must be Mode"
            assert len(set(caps.modes)) == len(caps.modes), f"{where}: a mode twice"
            assert caps.resolutions, f"{where}: no resolution preset"
            assert len(set(caps.resolutions)) == len(caps.resolutions), f"{where}: a preset twice"
            for preset in caps.resolutions:
                assert isinstance(preset, str) and preset.strip(), f"{where}: an empty preset"
            assert isinstance(caps.max_batch, int) and caps.max_batch >= 1, (
                f"{where}: max_batch must be at least 1, not {caps.max_batch!r}"
            )
            if Mode.IMAGE_TO_IMAGE in caps.modes:
                assert caps.max_input_images >= 1, (
                    f"{where}: image_to_image needs max_input_images of at least 1"
                )
            assert caps.max_input_images >= 0, f"{where}: max_input_images is negative"
            assert caps.max_input_bytes > 0 and caps.max_input_side > 0, f"{where}: input limits"
            unknown = set(caps.input_mime_types) - set(IMAGE_FORMATS)
            assert not unknown, f"{where}: input types {sorted(unknown)} are not accepted formats"
            missing = [p for p in caps.resolutions if p not in caps.usd_per_image]
            assert not missing, f"{where}: no usd_per_image for presets {missing}"
            for preset, usd in caps.usd_per_image.items():
                assert preset in caps.resolutions, f"{where}: usd_per_image for unknown {preset!r}"
                assert isinstance(usd, Decimal) and usd.is_finite() and usd >= 0, (
                    f"{where}: usd_per_image[{preset!r}] must be a non-negative Decimal"
                )
            for preset, ratio in caps.aspect_ratios.items():
                assert preset in caps.resolutions, f"{where}: aspect ratio for unknown {preset!r}"
                w, _, h = str(ratio).partition(":")
                assert w.isdigit() and h.isdigit() and int(w) > 0 and int(h) > 0, (
                    f"{where}: aspect ratio {ratio!r} of {preset!r} is not W:H"
                )
            for preset, size in caps.sizes.items():
                assert preset in caps.resolutions, f"{where}: size for unknown preset {preset!r}"
                assert len(size) == 2 and all(isinstance(n, int) and n > 0 for n in size), (
                    f"{where}: size {size!r} of {preset!r} is not (width, height)"
                )
                ratio = caps.aspect_ratios.get(preset)
                if ratio is not None:
                    w, _, h = str(ratio).partition(":")
                    declared, actual = int(w) / int(h), size[0] / size[1]
                    assert abs(actual - declared) / declared < 0.05, (
                        f"{where}: preset {preset!r} is {size[0]}x{size[1]}, not {ratio}"
                    )

    def test_generate_returns_an_image(self) -> None:
        """A success is an :class:`AttemptResult` whose bytes are an accepted image of the
        type it declares (and the size it declares, when it does)."""
        _check_image(self._call(self.arrange_success(0)))

    def _check_outcome(self, outcome: str) -> None:
        expected, why = OUTCOMES[outcome]
        if outcome in self.not_offered:
            raise unittest.SkipTest(f"{outcome} not offered: {self.not_offered[outcome]}")
        case = self.arrange(outcome)
        try:
            result = self._call(case)
        except ProviderError as exc:
            error: ProviderError = exc
        except Exception as exc:
            raise AssertionError(
                f"{outcome}: raised {type(exc).__name__}, outside the error classes (the router "
                f"counts it as a plugin bug); expected {expected.__name__}: {why}"
            ) from exc
        else:
            raise AssertionError(f"{outcome}: returned {result!r}; expected {expected.__name__}")
        assert isinstance(error, expected), (
            f"{outcome}: raised {type(error).__name__}; expected {expected.__name__}: {why}"
        )
        if outcome == "bad_request":
            assert not isinstance(error, ContentPolicyError), (
                f"{outcome}: a plain bad request is not a content refusal"
            )
        if outcome == "rate_limited":
            assert getattr(error, "rate_limit", None) is not None, (
                f"{outcome}: a 429 must say which quota (rate_limit), so the pool cools the project"
            )
        if outcome == "server_error":
            assert getattr(error, "rate_limit", None) is None, (
                f"{outcome}: a 5xx is no rate limit (rate_limit must stay None)"
            )
        if outcome != "timeout":
            assert not isinstance(error, TransportError), (
                f"{outcome}: the provider answered, so this is no transport error"
            )
        for text in (str(error), error.message, repr(error.args)):
            assert case.api_key not in text, f"{outcome}: the error message contains the key"

    def test_outcome_unauthorized(self) -> None:
        """401 → :class:`KeyRejectedError` (never retryable: the key would be tried forever)."""
        self._check_outcome("unauthorized")

    def test_outcome_forbidden(self) -> None:
        """403 → :class:`KeyRejectedError`."""
        self._check_outcome("forbidden")

    def test_outcome_rate_limited(self) -> None:
        """429 → :class:`RetryableError` with ``rate_limit`` set (and ``retry_after`` if given)."""
        self._check_outcome("rate_limited")

    def test_outcome_out_of_funds(self) -> None:
        """No credit or quota left → :class:`OutOfFundsError`."""
        self._check_outcome("out_of_funds")

    def test_outcome_bad_request(self) -> None:
        """400 about the request → :class:`UserCausedError` (not a content refusal)."""
        self._check_outcome("bad_request")

    def test_outcome_content_policy(self) -> None:
        """A content refusal → :class:`ContentPolicyError`."""
        self._check_outcome("content_policy")

    def test_outcome_server_error(self) -> None:
        """5xx → :class:`RetryableError` without ``rate_limit``."""
        self._check_outcome("server_error")

    def test_outcome_timeout(self) -> None:
        """No answer within the plugin's own timeout → :class:`TransportError`."""
        self._check_outcome("timeout")

    def test_concurrent_generate(self) -> None:
        """``concurrency`` calls at once on one instance give the same, distinct answers as the
        same calls one by one: nothing of one call leaks into another (shared state)."""
        cases = [self.arrange_success(i) for i in range(self.concurrency)]
        plugin = self.build()
        default = self.request_for(0)

        def call(case: Case) -> Callable[[], AttemptResult]:
            request = case.request or default
            return lambda: plugin.generate(request, api_key=case.api_key, proxy_url=None)

        alone = [call(case)() for case in cases]
        for result in alone:
            _check_image(result)
        distinct = {r.image.data for r in alone}
        assert len(distinct) == len(cases), (
            f"the {len(cases)} calls gave only {len(distinct)} different images one by one: make "
            "arrange_success answer each index differently, so a mix-up can show"
        )
        together = _run_all([call(case) for case in cases])
        failed = [(i, r) for i, r in enumerate(together) if isinstance(r, BaseException)]
        assert not failed, (
            f"{len(failed)} of {len(cases)} concurrent calls failed, e.g. call {failed[0][0]}: "
            f"{type(failed[0][1]).__name__}: {failed[0][1]}"
        )
        wrong = [i for i, (a, b) in enumerate(zip(alone, together, strict=True)) if not _same(a, b)]
        assert not wrong, (
            f"{len(wrong)} of {len(cases)} concurrent calls answered differently than alone "
            f"(calls {wrong[:10]}): state shared between calls"
        )


def _same(a: AttemptResult, b: Any) -> bool:
    return isinstance(b, AttemptResult) and a.image.data == b.image.data


def _check_image(result: Any) -> None:
    assert isinstance(result, AttemptResult), f"generate returned {result!r}, not AttemptResult"
    image = result.image
    assert image.mime in IMAGE_FORMATS, f"the image's type {image.mime!r} is not accepted"
    found = identify_image(image.data)
    assert found is not None, "the image's bytes are no image"
    assert found.mime == image.mime, f"declared {image.mime}, the bytes are {found.mime}"
    if image.width is not None and found.width is not None:
        assert (image.width, image.height) == (found.width, found.height), (
            f"declared {image.width}x{image.height}, the bytes are {found.width}x{found.height}"
        )


class PaymentProcessorConformance(_Conformance):
    """Conformance checks for a payment processor (the ``nproxy.payments`` contract)."""

    group = PAYMENT_GROUP
    #: The processor's own status words and the :class:`PaymentStatus` each must become.
    statuses: ClassVar[Mapping[str, PaymentStatus]] = {}
    #: Set when the processor keeps no payments to ask about (``fetch_status`` then must
    #: raise :class:`PaymentProcessorError`); the reason is shown on the skipped check.
    no_status_query: ClassVar[str] = ""

    # --- hooks -----------------------------------------------------------------------------

    def signed_notification(
        self,
        plugin: Any,
        *,
        order_id: str,
        status: str,
        amount: Decimal,
        currency: str,
        invoice_id: str | None,
    ) -> tuple[bytes, dict[str, str]]:
        """The body and headers the processor would send for a payment in ``status`` (one of
        :attr:`statuses`), signed as the processor signs them."""
        raise NotImplementedError("the conformance subclass must define signed_notification")

    def arrange_status(self, payment_id: str, status: str, order_id: str) -> None:
        """Make the fake's status query for ``payment_id`` answer ``status``."""
        raise NotImplementedError("the conformance subclass must define arrange_status")

    def checkout_request(self, index: int = 0) -> CheckoutRequest:
        order_id = f"conformance-order-{index:03d}"
        base = SITE_SETTINGS["nproxy.public_url"]
        return CheckoutRequest(
            order_id=order_id,
            amount=Decimal("9.99"),
            currency="USD",
            description="nproxy conformance plan",
            callback_url=f"{base}/billing/webhooks/{self.plugin_name}",
            success_url=f"{base}/billing/return/{order_id}",
            cancel_url=f"{base}/pricing",
        )

    # --- checks ------------------------------------------------------------------------------

    def _notification(
        self, plugin: Any, status: str, amount: str = "9.99", index: int = 0
    ) -> tuple[bytes, dict[str, str]]:
        return self.signed_notification(
            plugin,
            order_id=f"conformance-order-{index:03d}",
            status=status,
            amount=Decimal(amount),
            currency="USD",
            invoice_id=None,
        )

    def _a_status(self) -> str:
        assert self.statuses, "statuses must map the processor's status words"
        return next(
            (w for w, s in self.statuses.items() if s is PaymentStatus.FINISHED),
            next(iter(self.statuses)),
        )

    def test_processor_is_a_payment_processor(self) -> None:
        """A :class:`PaymentProcessor` with a name people can read."""
        plugin = self.build()
        assert isinstance(plugin, PaymentProcessor), f"{type(plugin).__name__} is not one"
        assert str(type(plugin).display_name or "").strip(), "display_name is empty"

    def test_checkout(self) -> None:
        """A checkout answers where to send the buyer (an absolute http(s) URL) and, when the
        processor has one, its own reference for the invoice as a string."""
        plugin = self.build()
        hosted = plugin.create_checkout(self.checkout_request())
        assert isinstance(hosted, HostedCheckout), f"create_checkout returned {hosted!r}"
        assert isinstance(hosted.checkout_url, str) and hosted.checkout_url.startswith(
            ("https://", "http://")
        ), f"checkout_url {hosted.checkout_url!r} is not an absolute http(s) URL"
        assert hosted.invoice_id is None or isinstance(hosted.invoice_id, str), (
            f"invoice_id {hosted.invoice_id!r} must be a string or None"
        )

    def test_statuses_mapped(self) -> None:
        """Every status word of the processor's becomes its :class:`PaymentStatus`, with the
        order, amount and currency of the notification."""
        plugin = self.build()
        assert self.statuses, "statuses must map the processor's status words"
        for word, expected in self.statuses.items():
            body, headers = self._notification(plugin, word)
            event = plugin.parse_webhook(body, headers)
            assert isinstance(event, PaymentEvent), f"{word}: parse_webhook returned {event!r}"
            assert isinstance(event.status, PaymentStatus), f"{word}: status is no PaymentStatus"
            assert event.status is expected, f"{word}: became {event.status}, not {expected}"
            assert event.order_id == "conformance-order-000", f"{word}: order {event.order_id!r}"
            assert event.amount == Decimal("9.99"), f"{word}: amount {event.amount!r}"
            assert (event.currency or "").upper() == "USD", f"{word}: currency {event.currency!r}"

    def test_unsigned_notification_refused(self) -> None:
        """A notification without its signature is refused with :class:`WebhookRejected`."""
        plugin = self.build()
        body, headers = self._notification(plugin, self._a_status())
        bare = {k: v for k, v in headers.items() if k.lower() == "content-type"}
        _assert_rejected(plugin, body, bare, "an unsigned notification")

    def test_forged_notification_refused(self) -> None:
        """A body signed for another notification, a made-up signature and a body that is no
        JSON are each refused with :class:`WebhookRejected` (and nothing else)."""
        plugin = self.build()
        word = self._a_status()
        body, headers = self._notification(plugin, word)
        other, _ = self._notification(plugin, word, amount="0.01")
        assert other != body, "two notifications of different amounts have the same body"
        _assert_rejected(plugin, other, headers, "a body under another body's signature")
        made_up = {
            k: v if k.lower() == "content-type" else "0" * len(v) for k, v in headers.items()
        }
        _assert_rejected(plugin, body, made_up, "a made-up signature")
        _assert_rejected(plugin, b"\xff not json", headers, "a body that is no JSON")

    def test_concurrent_notifications(self) -> None:
        """Many notifications verified at once give what each gives alone."""
        plugin = self.build()
        word = self._a_status()
        notes = [self._notification(plugin, word, amount=f"{i + 1}.50", index=i) for i in range(50)]
        alone = [plugin.parse_webhook(b, h) for b, h in notes]
        together = _run_all([lambda b=b, h=h: plugin.parse_webhook(b, h) for b, h in notes])
        wrong = [
            i
            for i, (a, b) in enumerate(zip(alone, together, strict=True))
            if not isinstance(b, PaymentEvent) or (a.order_id, a.amount) != (b.order_id, b.amount)
        ]
        assert not wrong, f"notifications {wrong[:10]} parsed differently at once than alone"

    def test_fetch_status(self) -> None:
        """A status query answers a :class:`PaymentEvent` with the status mapped."""
        if self.no_status_query:
            raise unittest.SkipTest(f"no status query: {self.no_status_query}")
        plugin = self.build()
        for index, (word, expected) in enumerate(self.statuses.items()):
            payment_id = f"9000{index:04d}"
            self.arrange_status(payment_id, word, "conformance-order-000")
            event = plugin.fetch_status(payment_id)
            assert isinstance(event, PaymentEvent), f"{word}: fetch_status returned {event!r}"
            assert event.status is expected, f"{word}: became {event.status}, not {expected}"
            assert event.payment_id == payment_id, f"{word}: payment_id {event.payment_id!r}"


def _assert_rejected(plugin: Any, body: bytes, headers: Mapping[str, str], what: str) -> None:
    try:
        event = plugin.parse_webhook(body, headers)
    except WebhookRejected:
        return
    except Exception as exc:
        raise AssertionError(
            f"{what} raised {type(exc).__name__} instead of WebhookRejected (the webhook would "
            "answer 500 and the processor retry it)"
        ) from exc
    raise AssertionError(f"{what} was accepted: {event!r}")


def run_conformance(cls: type) -> list[CheckResult]:
    """Run every check of a conformance subclass without pytest, each on a fresh instance."""
    results: list[CheckResult] = []
    for name in sorted(n for n in dir(cls) if n.startswith("test_")):
        check = cls()
        check.setup_method(None)
        try:
            getattr(check, name)()
        except unittest.SkipTest as exc:
            results.append(CheckResult(name, "skipped", str(exc)))
        except AssertionError as exc:
            results.append(CheckResult(name, "failed", str(exc)))
        except Exception as exc:
            results.append(CheckResult(name, "failed", f"{type(exc).__name__}: {exc}"))
        else:
            results.append(CheckResult(name, "passed"))
        finally:
            check.teardown_method(None)
    return results
