"""The fake Bot API with the payment methods of Telegram Stars (DESIGN section 8):
``createInvoiceLink``, ``sendInvoice``, ``answerPreCheckoutQuery`` and ``refundStarPayment``,
recorded as they were called; a refund of an unknown or already refunded charge is refused as
Telegram refuses it (400 ``CHARGE_ALREADY_REFUNDED`` / ``CHARGE_NOT_FOUND``)."""

from __future__ import annotations

import json
import threading
from typing import Any

from fakes.telegram import FakeTelegram, _ok


class FakeStarsTelegram(FakeTelegram):
    def __init__(self, token: str = "123456:STARS-token") -> None:  # noqa: S107 - a fake
        super().__init__(token)
        self.invoices: list[dict[str, Any]] = []
        self.pre_checkout_answers: list[dict[str, Any]] = []
        self.refunds: list[dict[str, Any]] = []
        #: charge id -> payer's user id of the payments Telegram knows of.
        self.charges: dict[str, int] = {}
        self._stars_lock = threading.Lock()

    def _call(self, method: str, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if method in ("createInvoiceLink", "sendInvoice"):
            prices = params.get("prices")
            prices = json.loads(prices) if isinstance(prices, str) else prices
            bad = (
                params.get("currency") != "XTR"
                or params.get("provider_token") not in ("", None)
                or not 1 <= len(str(params.get("payload") or "").encode()) <= 128
                or not prices
                or any(int(p["amount"]) <= 0 for p in prices)
            )
            if bad:
                return 400, {
                    "ok": False,
                    "error_code": 400,
                    "description": "Bad Request: bad invoice",
                }
            with self._stars_lock:
                self.invoices.append({"method": method, **params, "prices": prices})
                number = len(self.invoices)
            if method == "createInvoiceLink":
                return 200, _ok(f"https://t.me/$invoice{number:06d}")
            return 200, _ok({"message_id": 10_000 + number, "chat": {"id": params["chat_id"]}})
        if method == "answerPreCheckoutQuery":
            with self._stars_lock:
                self.pre_checkout_answers.append(params)
            return 200, _ok(True)
        if method == "refundStarPayment":
            charge = str(params.get("telegram_payment_charge_id"))
            user_id = int(params.get("user_id") or 0)
            with self._stars_lock:
                if self.charges.get(charge) != user_id:
                    return 400, {
                        "ok": False,
                        "error_code": 400,
                        "description": "Bad Request: CHARGE_NOT_FOUND",
                    }
                if any(r["telegram_payment_charge_id"] == charge for r in self.refunds):
                    return 400, {
                        "ok": False,
                        "error_code": 400,
                        "description": "Bad Request: CHARGE_ALREADY_REFUNDED",
                    }
                self.refunds.append({"user_id": user_id, "telegram_payment_charge_id": charge})
            return 200, _ok(True)
        return super()._call(method, params)
