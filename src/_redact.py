"""Credentials out of everything gridwatch prints: URLs' user information and secret query
parameters masked in messages and in every log record. Kept free of heavy imports, so the command
line can install it before anything else loads."""

from __future__ import annotations

import logging
import re
from typing import Any

_URL_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.\-]*://)[^\s/@]+@")
_SECRET_PARAM = re.compile(
    r"(?P<key>[?&](?:p|password|passwd|pass|token|secret|key|api_?key|access_token)=)[^&\s'\"]+",
    re.IGNORECASE)


def mask_credentials(text: str) -> str:
    """``text`` with credentials inside URLs masked: the user information
    (``scheme://user:password@host`` becomes ``scheme://***@host``) and secret query
    parameters (``?p=``, ``token=``, ``password=``, ...)."""
    text = _URL_USERINFO.sub(r"\g<scheme>***@", text)
    return _SECRET_PARAM.sub(r"\g<key>***", text)


class RedactingFilter(logging.Filter):
    """Masks credentials inside URLs in every log record it sees (see :func:`mask_credentials`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string is the logging module's to report
            return True
        masked = mask_credentials(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


def redact_logs() -> None:
    """Mask credentials in URLs in every log line of the process, whatever handler prints it
    (installed by the command line before anything logs)."""
    previous = logging.getLogRecordFactory()
    if getattr(previous, "_gridwatch_redacting", False):
        return
    redact = RedactingFilter()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        redact.filter(record)
        return record

    factory._gridwatch_redacting = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)
