"""``nproxy dev``: the whole product in one process on the embedded defaults."""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)


def serve(cli: Any, *, host: str, port: int) -> None:
    import waitress

    app = cli.make_wsgi_app()
    log.info("nproxy is serving on http://%s:%s/", host, port)
    waitress.serve(app, host=host, port=port, threads=8)
