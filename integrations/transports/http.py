"""The one outbound HTTP module. Every call to a partner goes through ``send``.

What it guarantees, so no destination kind has to think about it:

- connect and read timeouts on every request (passed in; 5 s / 30 s when not);
- redirects are never followed: a 3xx comes back as an answer for the caller to refuse, because
  following one would silently re-send a create somewhere else;
- a capture of the request and response that is safe to store: ``Authorization``, ``Cookie`` and any
  header, query parameter or JSON key named like a token, secret, password or API key become
  ``***``, and so does the secret itself wherever it shows up; response bodies are kept to the
  first 4 KiB with a note of the full size;
- failures before an answer are classified in the retry policy's words: could not connect
  (``CONNECTION``), no answer within the read timeout (``TIMEOUT``), connection dropped after the
  request went out (``LOST_RESPONSE``).

One ``httpx.Client`` is shared per process (connection pooling); it is rebuilt after a fork, since
a forking worker must never share the parent's sockets. It keeps no cookies: what one partner
sets must not ride along on calls made for another integration.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from http.cookiejar import Cookie, CookieJar
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx

from integrations.engine import exactjson
from integrations.engine.retry_policy import CONFIG, CONNECTION, LOST_RESPONSE, TIMEOUT

logger = logging.getLogger("syncdesk.http")

DEFAULT_CONNECT_TIMEOUT = 5.0
DEFAULT_READ_TIMEOUT = 30.0
# What a stored attempt keeps of a partner's answer.
CAPTURE_RESPONSE_BYTES = 4 * 1024
# What a stored attempt keeps of our own request body (ours are small; this only guards the row).
CAPTURE_REQUEST_BYTES = 64 * 1024
# The most of an answer we ever hold in memory; the rest is counted and dropped.
MAX_RESPONSE_BYTES = 1024 * 1024
REDACTED = "***"
USER_AGENT = "Syncdesk/0.1 (+https://github.com/syncdesk)"

# Header names redacted whatever their value; other names are redacted when they look secret.
_ALWAYS_SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie"})
_SECRET_NAME_PARTS = (
    "token",
    "secret",
    "passw",
    "api_key",
    "api-key",
    "apikey",
    "private_key",
    "private-key",
    "credential",
    "signature",
    "session",
)


@dataclass(frozen=True)
class Timeouts:
    connect: float = DEFAULT_CONNECT_TIMEOUT
    read: float = DEFAULT_READ_TIMEOUT

    @classmethod
    def of(cls, value: Timeouts | tuple[float, float] | None) -> Timeouts:
        if value is None:
            return cls()
        if isinstance(value, Timeouts):
            return value
        connect, read = value
        return cls(float(connect), float(read))

    def as_httpx(self) -> httpx.Timeout:
        # Write and pool waits get the read budget: a partner that will not take our body is as
        # stuck as one that will not answer.
        return httpx.Timeout(self.read, connect=self.connect)


@dataclass
class Exchange:
    """One request and what came back, ready to store on an attempt row."""

    request: dict[str, Any]
    status: int | None = None
    response_headers: dict[str, str] = field(default_factory=dict)
    # Bounded, redacted text for people; ``content`` is the raw answer (up to MAX_RESPONSE_BYTES).
    response_body: str = ""
    response_size: int = 0
    content: bytes = b""
    duration_ms: int = 0
    # Raw (unredacted) answer headers, for Retry-After and friends. Not for storage.
    raw_headers: httpx.Headers | None = None

    def json(self) -> Any:
        """The answer parsed exactly (big ids stay ints); ``None`` when it is not JSON."""
        if not self.content or self.response_size > len(self.content):
            return None
        try:
            return exactjson.loads(self.content)
        except (ValueError, UnicodeDecodeError, RecursionError):
            return None

    def header(self, name: str) -> str | None:
        return self.raw_headers.get(name) if self.raw_headers is not None else None


class HttpFailure(Exception):
    """No usable answer: ``error_class`` is CONNECTION, TIMEOUT, LOST_RESPONSE or CONFIG."""

    def __init__(self, error_class: str, reason: str, exchange: Exchange) -> None:
        super().__init__(reason)
        self.error_class = error_class
        self.reason = reason
        self.exchange = exchange


# --- the shared client --------------------------------------------------------------------------

_client_lock = threading.Lock()
_client: httpx.Client | None = None
_client_pid: int | None = None


class _NoCookies(CookieJar):
    """A jar that keeps nothing. The client is shared by every integration in the process, so a
    cookie one partner sets (a session) would otherwise ride along on the next calls to that host
    — also those made for another customer's account there."""

    def set_cookie(self, cookie: Cookie) -> None:
        return None

    def extract_cookies(self, response: Any, request: Any) -> None:
        return None


def make_client(
    *,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
    read_timeout: float = DEFAULT_READ_TIMEOUT,
    max_connections: int = 50,
) -> httpx.Client:
    """A client with our defaults. Callers that make their own must close it."""
    return httpx.Client(
        timeout=Timeouts(connect_timeout, read_timeout).as_httpx(),
        follow_redirects=False,
        limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
        headers={"User-Agent": USER_AGENT},
        cookies=_NoCookies(),
    )


def shared_client() -> httpx.Client:
    """The process's client, built on first use and again after a fork."""
    global _client, _client_pid
    pid = os.getpid()
    with _client_lock:
        if _client is None or _client_pid != pid:
            # After a fork the inherited client's sockets belong to the parent: drop it unclosed.
            _client = make_client()
            _client_pid = pid
        return _client


def close_shared_client() -> None:
    global _client, _client_pid
    with _client_lock:
        if _client is not None and _client_pid == os.getpid():
            _client.close()
        _client = None
        _client_pid = None


# --- redaction ----------------------------------------------------------------------------------


@functools.lru_cache(maxsize=4096)
def is_secret_name(name: str) -> bool:
    """Cached: the same header and field names come by on every request."""
    lowered = name.lower()
    if lowered in _ALWAYS_SECRET_HEADERS:
        return True
    # "Idempotency-Key" and "external_key" are not secrets; "api_key", "x-api-key" are.
    return any(part in lowered for part in _SECRET_NAME_PARTS)


def mask_secrets(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every occurrence of each secret replaced by ``***``."""
    for secret in secrets:
        # Very short values would blank out ordinary words; they are not worth the noise.
        if secret and len(secret) >= 4:
            text = text.replace(secret, REDACTED)
    return text


def redact_headers(headers: Mapping[str, str], secrets: Iterable[str] = ()) -> dict[str, str]:
    secrets = tuple(secrets)
    return {name: REDACTED if is_secret_name(name) else mask_secrets(value, secrets) for name, value in headers.items()}


def redact_json(value: Any) -> tuple[Any, bool]:
    """A copy of ``value`` with secret-named keys masked, and whether anything changed."""
    if isinstance(value, dict):
        changed = False
        out: dict[str, Any] = {}
        for key, item in value.items():
            if isinstance(key, str) and is_secret_name(key) and item not in (None, ""):
                out[key] = REDACTED
                changed = True
            else:
                out[key], item_changed = redact_json(item)
                changed = changed or item_changed
        return out, changed
    if isinstance(value, list):
        items = [redact_json(item) for item in value]
        return [item for item, _ in items], any(changed for _, changed in items)
    return value, False


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    """JSON text with secret keys masked (re-written only when something was masked), secrets masked."""
    try:
        parsed = exactjson.loads(text)
    except (ValueError, RecursionError):
        parsed = None
    else:
        redacted, changed = redact_json(parsed)
        if changed:
            text = exactjson.dumps(redacted)
    return mask_secrets(text, secrets)


def redact_url(url: str, secrets: Iterable[str] = ()) -> str:
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{REDACTED}@{netloc.rsplit('@', 1)[1]}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(is_secret_name(k) for k, _ in pairs):
            query = urlencode([(k, REDACTED if is_secret_name(k) else v) for k, v in pairs], safe="*")
    return mask_secrets(urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment)), secrets)


def bounded_text(data: bytes, limit: int, total: int | None = None) -> str:
    """The first ``limit`` bytes as text, with a note when there was more."""
    total = len(data) if total is None else total
    text = data[:limit].decode("utf-8", errors="replace")
    if total > limit:
        text += f"\n… [truncated: first {limit} of {total} bytes]"
    return text


def capture_request(
    method: str, url: str, headers: Mapping[str, str], content: bytes | None, secrets: Iterable[str] = ()
) -> dict[str, Any]:
    secrets = tuple(secrets)
    body = ""
    if content:
        text = content.decode("utf-8", errors="replace")
        body = bounded_text(redact_text(text, secrets).encode(), CAPTURE_REQUEST_BYTES)
    return {
        "method": method,
        "url": redact_url(url, secrets),
        "headers": redact_headers(headers, secrets),
        "body": body,
    }


def _capture_response(data: bytes, total: int, secrets: tuple[str, ...]) -> str:
    if not data:
        return ""
    if total <= len(data):
        text = redact_text(data.decode("utf-8", errors="replace"), secrets)
        return bounded_text(text.encode(), CAPTURE_RESPONSE_BYTES, max(total, len(text.encode())))
    # Too big to parse whole: mask what we can see.
    return mask_secrets(bounded_text(data, CAPTURE_RESPONSE_BYTES, total), secrets)


# --- sending ------------------------------------------------------------------------------------


def classify(exc: httpx.HTTPError) -> tuple[str, str]:
    """(error class, plain reason) for a failure that left us without an answer."""
    if isinstance(exc, httpx.ConnectTimeout):
        return CONNECTION, "Could not connect to the partner in time (connect timeout)"
    if isinstance(exc, httpx.PoolTimeout):
        # Never left this process: as safe to retry as a refused connection.
        return CONNECTION, "No free connection to the partner in time (too many requests in flight)"
    if isinstance(exc, httpx.ConnectError):
        return CONNECTION, f"Could not connect to the partner: {exc}"
    if isinstance(exc, httpx.ReadTimeout):
        return TIMEOUT, "Partner did not answer within the read timeout; it may still have processed the request"
    if isinstance(exc, httpx.WriteTimeout):
        return TIMEOUT, "Partner did not accept the request body within the timeout"
    if isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError):
        # The request went out; whatever the partner did with it, we never heard.
        return LOST_RESPONSE, f"Connection dropped after the request was sent, before an answer: {exc}"
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL):
        return CONFIG, f"The destination URL cannot be used: {exc}"
    return CONNECTION, f"Network error talking to the partner: {type(exc).__name__}: {exc}"


def send(
    method: str,
    url: str,
    *,
    headers: Mapping[str, str],
    content: bytes | None = None,
    client: httpx.Client | None = None,
    timeouts: Timeouts | tuple[float, float] | None = None,
    secrets: Iterable[str] = (),
) -> Exchange:
    """Send one request; return the answer whatever its status, or raise ``HttpFailure``.

    The body is sent exactly as given (never re-serialised) so a retry is byte-identical.
    """
    secrets = tuple(secrets)
    timeout = Timeouts.of(timeouts)
    exchange = Exchange(request=capture_request(method, url, headers, content, secrets))
    started = time.monotonic()
    try:
        http_client = client or shared_client()
        request = http_client.build_request(
            method, url, headers=dict(headers), content=content, timeout=timeout.as_httpx()
        )
        response = http_client.send(request, stream=True, follow_redirects=False)
        try:
            chunks: list[bytes] = []
            kept = 0
            total = 0
            for chunk in response.iter_bytes():
                total += len(chunk)
                if kept < MAX_RESPONSE_BYTES:
                    piece = chunk[: MAX_RESPONSE_BYTES - kept]
                    chunks.append(piece)
                    kept += len(piece)
        finally:
            response.close()
    except httpx.HTTPError as exc:
        exchange.duration_ms = _ms_since(started)
        error_class, reason = classify(exc)
        logger.info("%s %s failed after %d ms: %s", method, exchange.request["url"], exchange.duration_ms, reason)
        raise HttpFailure(error_class, mask_secrets(reason, secrets), exchange) from exc
    exchange.duration_ms = _ms_since(started)
    exchange.status = response.status_code
    exchange.raw_headers = response.headers
    exchange.response_headers = redact_headers(response.headers, secrets)
    exchange.content = b"".join(chunks)
    exchange.response_size = total
    exchange.response_body = _capture_response(exchange.content, total, secrets)
    logger.debug("%s %s -> %s in %d ms", method, exchange.request["url"], exchange.status, exchange.duration_ms)
    return exchange


def _ms_since(started: float) -> int:
    return round((time.monotonic() - started) * 1000)
