"""Every service the app registers provides the interface it is registered for, as warehouse
checks its own (``test_verify_service``): a method an interface declares and its service
lacks, or a signature that drifted apart, fails here instead of in the caller that trusts it.

The services are found by walking what the configuration registered with pyramid_services
(its introspector), never from a list kept here, so a new service is checked the day it is
registered. Implementations chosen by settings (mail, storage, the completion signal) are
each built once by one of the configurations below.
"""

from __future__ import annotations

from typing import Any

import pytest
from zope.interface import Interface
from zope.interface.exceptions import Invalid
from zope.interface.verify import verifyClass, verifyObject

from conftest import registry_service

#: Settings that pick the other implementation of each service chosen by settings.
CONFIGURATIONS = {
    "the tests' own": {},
    "SMTP mail, S3 storage and the in-process completion signal": {
        "nproxy.mailer": "smtp",
        "mail.host": "127.0.0.1",
        "nproxy.storage": "s3",
        "storage.s3.bucket": "nproxy-interfaces",
        "storage.s3.access_key": "interfaces",
        "storage.s3.secret_key": "interfaces-secret",
        "storage.s3.endpoint_url": "http://127.0.0.1:6701",
        "nproxy.generation.completion_signal": "local",
    },
    "the development mailer": {"nproxy.mailer": "debug"},
}


def registered_services(registry: Any) -> list[tuple[Any, str]]:
    """``(interface, name)`` of every service the configuration registered."""
    return [
        (entry["type"], entry["name"])
        for entry in registry.introspector.get_category("pyramid_services")
        for entry in [entry["introspectable"]]
    ]


def broken_promises(iface: Any, service: Any) -> list[str]:
    """What ``service`` (and its class) fails to provide of ``iface``, one line each."""
    found = []
    for check, candidate in ((verifyClass, type(service)), (verifyObject, service)):
        try:
            check(iface, candidate)
        except Invalid as exc:
            found.append(f"{iface.__identifier__} by {type(service).__qualname__}: {exc}")
    return found


@pytest.mark.parametrize("overrides", CONFIGURATIONS.values(), ids=CONFIGURATIONS.keys())
def test_every_registered_service_provides_the_interface_it_is_registered_for(
    make_app, tmp_path, overrides
):
    settings = {"mail.top_level_directory": str(tmp_path / "mail"), **overrides}
    registry = make_app(**settings).app.registry
    services = registered_services(registry)
    # The walk sees the app's services, not an empty category.
    assert {iface.__name__ for iface, _ in services} >= {"IDatabase", "IKeyPoolRouter"}
    broken = [
        line
        for iface, name in services
        for line in broken_promises(iface, registry_service(registry, iface, name))
    ]
    assert not broken, "\n".join(broken)


def test_the_check_catches_a_method_its_interface_declares_and_the_service_lacks():
    class IGreeter(Interface):
        def greet(name):
            """Say hello."""

    class Silent:
        pass

    from zope.interface import classImplements

    classImplements(Silent, IGreeter)
    assert broken_promises(IGreeter, Silent()) != []
