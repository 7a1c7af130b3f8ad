"""``NPROXY_SECRET_PREVIOUS`` / ``nproxy.secret_previous`` (4.11): a comma list of the secrets
used before the current one, read from the ini or the environment, checked like the secret
itself in production, and never shown in a message."""

from __future__ import annotations

import pytest

from nproxy_core.config import ConfigurationError, normalize_settings, server_secrets

CURRENT = "the-current-secret-" + "c" * 30


def test_previous_secrets_come_from_the_environment_as_a_comma_list(base_settings):
    settings = normalize_settings(
        {**base_settings, "nproxy.secret_previous": "from-the-ini-" + "i" * 30},
        environ={
            "NPROXY_SECRET": CURRENT,
            "NPROXY_SECRET_PREVIOUS": f" older-{'o' * 30} ,, oldest-{'p' * 30}, {CURRENT}",
        },
    )
    # Current first; blanks, repeats and the current secret itself dropped; order kept.
    assert server_secrets(settings) == (CURRENT, f"older-{'o' * 30}", f"oldest-{'p' * 30}")


def test_no_previous_secret_by_default(base_settings):
    settings = normalize_settings(base_settings, environ={})
    assert server_secrets(settings) == (base_settings["nproxy.secret"],)
    # Normalising twice (a command re-reading its settings) changes nothing.
    assert server_secrets(normalize_settings(settings, environ={})) == server_secrets(settings)


@pytest.mark.parametrize("name", ["nproxy.secret", "nproxy.secret_previous"])
def test_production_refuses_a_short_secret_without_showing_it(base_settings, name):
    settings = {
        **base_settings,
        "nproxy.env": "production",
        "nproxy.secret": CURRENT,
        name: "tell-no-one",
    }
    with pytest.raises(ConfigurationError) as refused:
        normalize_settings(settings, environ={})
    assert name in str(refused.value) and "32 characters" in str(refused.value)
    assert "tell-no-one" not in str(refused.value)


def test_server_secrets_reads_settings_not_normalised_yet():
    raw = {"nproxy.secret": CURRENT, "nproxy.secret_previous": f"old-{'o' * 30}, {CURRENT}"}
    assert server_secrets(raw) == (CURRENT, f"old-{'o' * 30}")
