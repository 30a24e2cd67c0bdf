"""Secrets never reach the log: a filter on the log handlers scrubs every line `serve` writes,
mitmproxy's own included (at --log-level debug it quotes raw request lines, userinfo and
all)."""

from __future__ import annotations

import logging

from wiretape.storage.redact import Redactor


class SecretFilter(logging.Filter):
    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = self.redactor.log_text(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            # formatted here, once, so the traceback's messages are scrubbed too
            text = logging.Formatter().formatException(record.exc_info)
            record.exc_text = self.redactor.log_text(text)
        return True


def install(redactor: Redactor) -> SecretFilter:
    """Scrub what every handler of the root logger writes (a filter on a logger would miss
    the records its children propagate)."""
    secret_filter = SecretFilter(redactor)
    for handler in logging.getLogger().handlers:
        handler.addFilter(secret_filter)
    return secret_filter
