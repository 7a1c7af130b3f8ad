"""The uploads feature's services: the limits an upload must keep."""

from __future__ import annotations

from zope.interface import Attribute, Interface


class IUploadLimits(Interface):
    """``nproxy.uploads.max_bytes`` and ``.max_side`` (see UploadLimits)."""

    max_bytes = Attribute("int")
    max_side = Attribute("int: pixels, on either side")
