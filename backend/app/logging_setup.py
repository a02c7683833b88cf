"""Log format with the request id on every line of the app's loggers."""

from __future__ import annotations

import logging

from app.request_context import RequestIdLogFilter

_FORMAT = "%(asctime)s %(levelname)s [%(request_id)s] %(name)s: %(message)s"


def configure_logging(level: str) -> None:
    logger = logging.getLogger("app")
    logger.setLevel(level.upper())
    if any(getattr(h, "_modeltrain", False) for h in logger.handlers):
        return
    handler = logging.StreamHandler()
    handler._modeltrain = True  # type: ignore[attr-defined]
    handler.setFormatter(logging.Formatter(_FORMAT))
    handler.addFilter(RequestIdLogFilter())
    logger.addHandler(handler)
    logger.propagate = False
