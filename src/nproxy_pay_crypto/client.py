"""HTTP client for the NOWPayments REST API: create an invoice, read a payment.

Every failure (network, timeout, non-2xx, unusable answer) becomes a
:class:`~nproxy_core.plugins.PaymentProcessorError` whose message never contains the API key.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx

from nproxy_core.plugins import PaymentProcessorError
from nproxy_pay_crypto.wirejson import WireJsonError, dumps_exact, loads_exact

__all__ = ["NowPaymentsClient"]

# Enough of an error answer to diagnose it, not enough to flood a log line.
_MAX_DETAIL = 300


class NowPaymentsClient:
    """One pooled ``httpx.Client`` for one API base and key."""

    def __init__(self, api_base: str, api_key: str, *, timeout: float) -> None:
        self.api_base = api_base.rstrip("/")
        self._api_key = api_key
        self._http = httpx.Client(
            timeout=httpx.Timeout(timeout),
            # Environment proxies must never see the API key or payment traffic.
            trust_env=False,
            follow_redirects=False,
            headers={"accept": "application/json", "user-agent": "nproxy-pay-crypto"},
        )

    def close(self) -> None:
        self._http.close()

    def create_invoice(self, fields: dict[str, Any]) -> dict[str, Any]:
        """``POST /invoice``; ``fields`` may hold ``Decimal`` amounts, written exactly."""
        try:
            body = dumps_exact(fields).encode("utf-8")
        except WireJsonError as exc:
            raise PaymentProcessorError(f"NOWPayments invoice request is invalid: {exc}") from exc
        return self._call(
            "POST",
            "/invoice",
            "create invoice",
            content=body,
            headers={"content-type": "application/json"},
        )

    def get_payment(self, payment_id: str) -> dict[str, Any]:
        """``GET /payment/{payment_id}``."""
        # quote() with no safe characters keeps an odd id from escaping its path segment.
        return self._call("GET", f"/payment/{quote(payment_id, safe='')}", "payment status")

    def _call(self, method: str, path: str, action: str, **kwargs: Any) -> dict[str, Any]:
        headers = {"x-api-key": self._api_key, **kwargs.pop("headers", {})}
        try:
            response = self._http.request(method, self.api_base + path, headers=headers, **kwargs)
        except httpx.TimeoutException as exc:
            raise PaymentProcessorError(
                f"NOWPayments {action}: timed out ({type(exc).__name__})"
            ) from exc
        except httpx.HTTPError as exc:
            reason = self._scrub(str(exc)) or type(exc).__name__
            raise PaymentProcessorError(f"NOWPayments {action}: request failed ({reason})") from exc

        if not response.is_success:
            raise PaymentProcessorError(
                f"NOWPayments {action}: HTTP {response.status_code}{self._error_detail(response)}"
            )
        try:
            # Exact numbers: an amount compared against the order must not pass through float.
            data = loads_exact(response.content)
        except WireJsonError as exc:
            raise PaymentProcessorError(f"NOWPayments {action}: answer is not JSON") from exc
        if not isinstance(data, dict):
            raise PaymentProcessorError(f"NOWPayments {action}: answer is not a JSON object")
        return data

    def _error_detail(self, response: httpx.Response) -> str:
        """The API's own code and message, when it sent them."""
        try:
            data = loads_exact(response.content)
        except WireJsonError:
            text = response.text.strip()
            return f": {self._scrub(text[:_MAX_DETAIL])}" if text else ""
        if not isinstance(data, dict):
            return ""
        parts = [str(data[k]) for k in ("code", "message") if isinstance(data.get(k), str)]
        return f": {self._scrub(' - '.join(parts)[:_MAX_DETAIL])}" if parts else ""

    def _scrub(self, text: str) -> str:
        # Belt and braces: an upstream message or exception text must never echo the key.
        return text.replace(self._api_key, "***") if self._api_key else text
