"""Structured logging: one JSON object per line, for structlog loggers and the standard library.

Every line carries ``request_id`` (bound by integrations.middleware.RequestIdMiddleware) and,
inside processing, ``record_id``/``integration_id`` (bound with structlog's contextvars).
Values under secret-looking keys become ``***`` and secret-looking text is cut out of messages,
so a mistake in a log call does not leak a credential. Imported by settings: nothing from Django
apps here."""

from __future__ import annotations

import logging
import re
from collections.abc import MutableMapping
from typing import Any

import structlog
from structlog.typing import Processor

REDACTED = "***"
# Names of log keys and frame variables whose values are secrets.
SECRET_NAMES = re.compile(
    r"API|AUTH|TOKEN|KEY|SECRET|PASS|SIGNATURE|HMAC|CREDENTIAL|COOKIE|SESSION", flags=re.IGNORECASE
)
# Secret-looking text: our webhook secrets, Standard Webhooks/Stripe secrets, bearer tokens,
# stored (encrypted) field values.
SECRET_TEXT = re.compile(r"(sdk_[A-Za-z0-9_\-]{6,}|whsec_[A-Za-z0-9+/=_\-]{6,}|enc:v1:\S+|(?<=Bearer )\S+)")
_KEEP = frozenset({"event", "logger", "level", "timestamp", "request_id", "record_id", "integration_id"})


def redact_text(text: str) -> str:
    return SECRET_TEXT.sub(REDACTED, text)


def redact_event(logger: Any, method_name: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: values of secret-named keys become ***, secret-looking text is cut."""
    for key, value in list(event_dict.items()):
        if key not in _KEEP and SECRET_NAMES.search(key):
            event_dict[key] = REDACTED
        elif isinstance(value, str):
            event_dict[key] = redact_text(value)
    return event_dict


def _drop_color_message(
    logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    event_dict.pop("color_message", None)
    return event_dict


SHARED: list[Processor] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]


def configure_structlog() -> None:
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *SHARED,
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


def json_formatter() -> logging.Formatter:
    """The formatter of the console handler (settings.LOGGING): JSON lines, redacted."""
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*SHARED, structlog.stdlib.ExtraAdder()],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            _drop_color_message,
            redact_event,
            structlog.processors.JSONRenderer(default=str),
        ],
    )
