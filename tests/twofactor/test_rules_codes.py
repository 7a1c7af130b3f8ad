"""The rules of two-factor codes as plain functions: RFC 6238 codes with one step of drift,
recovery codes as a person reads and types them, the QR code drawn here."""

from __future__ import annotations

import base64
import datetime as dt

import pyotp
import pytest

from nproxy_core.twofactor import codes

NOW = dt.datetime(2026, 12, 7, 12, 0, 10, tzinfo=dt.UTC)
STEP = dt.timedelta(seconds=30)


@pytest.fixture
def secret() -> str:
    return codes.new_secret()


def test_a_secret_is_160_random_bits_in_base32(secret):
    assert len(secret) == 32 and len(pyotp.TOTP(secret).byte_secret()) == 20
    assert codes.new_secret() != secret


def test_the_code_of_now_matches_its_own_step(secret):
    assert codes.matching_step(secret, codes.code_at(secret, NOW), NOW) == codes.time_step(NOW)


@pytest.mark.parametrize("steps", [-1, 1])
def test_one_step_of_clock_drift_either_way_is_accepted(secret, steps):
    code = codes.code_at(secret, NOW + steps * STEP)
    assert codes.matching_step(secret, code, NOW) == codes.time_step(NOW) + steps


@pytest.mark.parametrize("steps", [-2, 2, -3, 5])
def test_two_steps_or_more_of_drift_are_refused(secret, steps):
    code = codes.code_at(secret, NOW + steps * STEP)
    # Unless, by chance, the far code equals one in the window (one in 10^6 per code).
    window = {codes.code_at(secret, NOW + k * STEP) for k in (-1, 0, 1)}
    if code not in window:
        assert codes.matching_step(secret, code, NOW) is None


def test_a_code_of_another_secret_or_of_the_wrong_shape_is_refused(secret):
    other = codes.new_secret()
    code = codes.code_at(other, NOW)
    window = {codes.code_at(secret, NOW + k * STEP) for k in (-1, 0, 1)}
    if code not in window:
        assert codes.matching_step(secret, code, NOW) is None
    for bad in ("", "12345", "1234567", "abcdef", "12 345"):
        assert codes.matching_step(secret, bad, NOW) is None


def test_the_step_is_rfc_6238s_thirty_seconds_since_the_epoch():
    assert codes.time_step(dt.datetime(1970, 1, 1, 0, 0, 59, tzinfo=dt.UTC)) == 1
    assert codes.time_step(NOW) == int(NOW.timestamp()) // 30


def test_rfc_6238_test_vector():
    # RFC 6238 appendix B, SHA-1, T = 59 s: 94287082 with 8 digits; the 6-digit code is its tail.
    secret = base64.b32encode(b"12345678901234567890").decode()
    moment = dt.datetime.fromtimestamp(59, dt.UTC)
    assert codes.code_at(secret, moment) == "287082"


def test_codes_typed_with_spaces_or_dashes_are_read_as_the_code():
    assert codes.clean_code(" 123 456 ") == "123456"
    assert codes.clean_code("ABCD-efgh-1234-5678") == "abcdefgh12345678"
    for nothing in (None, 123456, "", "   ", "x" * 65, ["123456"]):
        assert codes.clean_code(nothing) is None


def test_ten_recovery_codes_of_80_bits_each_all_different():
    fresh = codes.new_recovery_codes()
    assert len(fresh) == 10 == len(set(fresh))
    for code in fresh:
        groups = code.split("-")
        assert [len(g) for g in groups] == [4, 4, 4, 4]
        assert codes.recovery_code_key(code.replace("-", "")) == code.replace("-", "")


def test_recovery_codes_forgive_letters_read_as_digits():
    assert codes.recovery_code_key("abcdefghjkmn0011") == "abcdefghjkmn0011"
    assert codes.recovery_code_key("abcdefghjkmnoOil".lower()) == "abcdefghjkmn0011"
    assert codes.recovery_code_key("123456") is None  # a TOTP code is not a recovery code
    assert codes.recovery_code_key("abcdefghjkmn001!") is None


def test_only_the_hash_of_a_recovery_code_is_kept():
    key = "abcdefghjkmn0011"
    digest = codes.recovery_code_hash(key)
    assert len(digest) == 64 and key not in digest
    assert codes.recovery_code_hash(key) == digest


def test_the_qr_code_is_an_svg_drawn_here_for_the_otpauth_uri(secret):
    uri = codes.provisioning_uri(secret, "admin@example.com", "nproxy")
    assert uri.startswith("otpauth://totp/nproxy:admin%40example.com?")
    assert f"secret={secret}" in uri and "issuer=nproxy" in uri
    svg = codes.qr_svg(uri)
    assert svg.startswith("<svg ") and 'role="img"' in svg and "aria-label=" in svg
    # Drawn, not linked: no image service, no inline style the CSP would refuse.
    assert "http" not in svg and "style=" not in svg and secret not in svg
    assert 'width="' in svg and 'height="' in svg
