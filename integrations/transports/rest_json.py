"""REST JSON destination: POST to create, PATCH/PUT to update by destination id.

How a partner's answer becomes an outcome (the retry policy decides what happens next):

| answer | outcome |
|---|---|
| 2xx | delivered; the destination id is read from ``id_field`` (a create without one is an error) |
| 409 on a create | already there: looked up by external id (``lookup_path``) and linked, else ``CONFLICT`` |
| 429 | ``RATE_LIMITED`` with the partner's ``Retry-After`` (seconds or HTTP-date) |
| 5xx, 408, timeouts, connection errors, lost answers | transient |
| 400, 404, 422 and other 4xx | ``CLIENT_ERROR``, permanent, with the partner's message |
| 401, 403 | ``AUTH``, permanent |
| 400/409/422 about the idempotency key | ``IDEMPOTENCY_MISMATCH``, permanent |
| 3xx | ``CONFIG``, permanent: redirects are never followed |
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import httpx

from integrations.engine.retry_policy import (
    AUTH,
    CLIENT_ERROR,
    CONFIG,
    CONFLICT,
    IDEMPOTENCY_MISMATCH,
    RATE_LIMITED,
    SERVER_ERROR,
    TIMEOUT,
)
from integrations.transports import http
from integrations.transports.base import DeliveryRequest, DeliveryResult, TransportError, parse_retry_after
from integrations.transports.registry import register

__all__ = [
    "CONFIG_KEYS",
    "DeliveryRequest",
    "DeliveryResult",
    "RestJsonTransport",
    "TransportError",
    "deliver",
]

CONFIG_KEYS = {
    "base_url": "Base URL of the partner API, e.g. https://api.partner.example/v1",
    "create_path": "Path for creates, e.g. /contacts",
    "update_path": "Path for updates with {id}, e.g. /contacts/{id}",
    "lookup_path": "Optional path to find a record by external id: /contacts?external_id={external_id}",
    "update_method": "PATCH (default) or PUT",
    "auth": "none, bearer or basic",
    "username": "User name for basic auth (the password is the destination secret)",
    "id_field": "Where the partner's answer carries its id (default: id; dots reach into objects: data.id)",
    "external_id_field": "Field in our body that carries the source id (default: external_id)",
    "idempotency": "Whether the partner honours Idempotency-Key (default true). When false, a retried "
    "create first looks the record up by external id, so lookup_path is required",
}

# Words in a 409 about the idempotency key that mean "an earlier try is still running", which is
# worth waiting for, unlike a key reused with other data.
_IN_PROGRESS_WORDS = ("in progress", "in-progress", "in_progress", "processing", "concurrent", "outstanding")
_MISMATCH_WORDS = ("mismatch", "different", "same parameters", "does not match", "doesn't match", "reused")
# Where list answers to a lookup usually keep their records.
_LIST_KEYS = ("results", "data", "items", "records")
_MESSAGE_KEYS = ("message", "error_description", "detail", "title", "error_message", "msg")
_MAX_REASON = 500


class RestJsonTransport:
    name = "rest_json"
    label = "REST JSON API"

    def validate_config(self, config: dict[str, Any]) -> list[str]:
        errors: list[str] = []
        if not isinstance(config, dict):
            return ["destination config must be an object"]
        unknown = set(config) - set(CONFIG_KEYS)
        if unknown:
            errors.append(f"unknown keys: {', '.join(sorted(unknown))}")
        base = config.get("base_url")
        if not isinstance(base, str) or not base.startswith(("http://", "https://")):
            errors.append("base_url must be an http:// or https:// URL")
        for key in ("create_path", "update_path"):
            if not isinstance(config.get(key), str) or not str(config.get(key)).startswith("/"):
                errors.append(f"{key} must be a path starting with /")
        if isinstance(config.get("update_path"), str) and "{id}" not in config["update_path"]:
            errors.append("update_path must contain {id}")
        lookup = config.get("lookup_path")
        if lookup is not None and (not isinstance(lookup, str) or "{external_id}" not in lookup):
            errors.append("lookup_path must contain {external_id}")
        if config.get("update_method", "PATCH") not in {"PATCH", "PUT"}:
            errors.append("update_method must be PATCH or PUT")
        if config.get("auth", "none") not in {"none", "bearer", "basic"}:
            errors.append("auth must be none, bearer or basic")
        if config.get("auth") == "basic" and not config.get("username"):
            errors.append("basic auth needs a username")
        for key in ("id_field", "external_id_field"):
            if key in config and (not isinstance(config[key], str) or not config[key]):
                errors.append(f"{key} must be a field name")
        idempotency = config.get("idempotency", True)
        if not isinstance(idempotency, bool):
            errors.append("idempotency must be true or false")
        elif not idempotency and not config.get("lookup_path"):
            errors.append(
                "a destination without idempotency support needs lookup_path, so a retried create can "
                "find the record an earlier try may have made"
            )
        return errors

    def deliver(
        self,
        config: dict[str, Any],
        secret: str,
        request: DeliveryRequest,
        *,
        client: httpx.Client | None = None,
        timeouts: tuple[float, float] | None = None,
    ) -> DeliveryResult:
        """Deliver one record version. Returns the result or raises ``TransportError``.

        Never writes anything but the HTTP requests; the caller stores the attempt.
        """
        return _Delivery(config, secret, request, client, timeouts).run()


def deliver(
    config: dict[str, Any],
    secret: str,
    request: DeliveryRequest,
    *,
    client: httpx.Client | None = None,
    timeouts: tuple[float, float] | None = None,
) -> DeliveryResult:
    """Module-level shortcut for ``RestJsonTransport().deliver``."""
    return _Delivery(config, secret, request, client, timeouts).run()


class _Delivery:
    """One delivery: at most a lookup, a write, and a lookup after a 409."""

    def __init__(
        self,
        config: Mapping[str, Any],
        secret: str,
        request: DeliveryRequest,
        client: httpx.Client | None,
        timeouts: tuple[float, float] | None,
    ) -> None:
        self.config = config
        self.secret = secret
        self.request = request
        self.client = client
        self.timeouts = http.Timeouts.of(timeouts)
        self.base_url = str(config.get("base_url", "")).rstrip("/")
        self.id_field = str(config.get("id_field") or "id")
        self.external_id_field = str(config.get("external_id_field") or "external_id")
        self.lookup_path: str | None = config.get("lookup_path") or None
        self.idempotent = config.get("idempotency", True) is not False
        self.secrets = (secret,) if secret else ()
        self.exchanges: list[http.Exchange] = []
        self.last: http.Exchange | None = None

    # --- flow -----------------------------------------------------------------------------------

    def run(self) -> DeliveryResult:
        req = self.request
        if req.operation == "create":
            if not self.idempotent and req.may_be_retry and self.lookup_path:
                # The partner cannot recognise a repeated create, and an earlier try may have landed
                # (timed out, answer lost, worker killed): look before creating again.
                found = self._lookup()
                if found is not None:
                    return self._result(found, linked_existing=True)
            exchange = self._call("POST", self._url(str(self.config.get("create_path", ""))), req.body)
            return self._judge(exchange)
        if req.operation == "update":
            if not req.destination_id:
                raise self._error(CONFIG, "An update needs the partner's id for this record, and there is none")
            path = str(self.config.get("update_path", "")).replace("{id}", quote(req.destination_id, safe=""))
            method = str(self.config.get("update_method") or "PATCH")
            return self._judge(self._call(method, self._url(path), req.body))
        raise self._error(CONFIG, f"Unknown operation {req.operation!r}: expected create or update")

    def _judge(self, exchange: http.Exchange) -> DeliveryResult:
        status = exchange.status or 0
        if 200 <= status < 300:
            found = _dig(exchange.json(), self.id_field)
            if found is None:
                if self.request.operation == "update" and self.request.destination_id:
                    return self._result(self.request.destination_id)
                raise self._error(
                    CONFIG,
                    f"Partner answered {status} but its answer has no {self.id_field!r}; the record may exist "
                    "there without us knowing its id (check id_field)",
                    exchange,
                )
            return self._result(_id_text(found))
        if status in (400, 409, 422) and _mentions_idempotency(exchange):
            text = _lower_text(exchange)
            if (
                status == 409
                and any(w in text for w in _IN_PROGRESS_WORDS)
                and not any(w in text for w in _MISMATCH_WORDS)
            ):
                # An earlier try with this key is still running at the partner: its outcome will be
                # replayed to us later. Not a failure of the record, so it does not use the budget.
                raise self._error(
                    RATE_LIMITED,
                    f"Partner answered 409: an earlier try with this idempotency key is still being processed "
                    f"({self._message(exchange)})",
                    exchange,
                    retry_after=parse_retry_after(exchange.header("Retry-After")),
                )
            raise self._error(
                IDEMPOTENCY_MISMATCH,
                f"Partner answered {status}: the idempotency key was already used with different data "
                f"({self._message(exchange)})",
                exchange,
            )
        if status == 409 and self.request.operation == "create":
            if self.lookup_path:
                found = self._lookup()
                if found is not None:
                    return self._result(found, linked_existing=True)
                raise self._error(
                    CONFLICT,
                    f"Partner answered 409 ({self._message(exchange)}) but has no record with external id "
                    f"{self.request.external_id!r}",
                    exchange,
                )
            raise self._error(
                CONFLICT,
                f"Partner answered 409: {self._message(exchange)}. No lookup_path is configured to link the "
                "existing record",
                exchange,
            )
        raise self._failure(exchange)

    def _failure(self, exchange: http.Exchange, what: str = "") -> TransportError:
        """The error for a non-2xx answer (other than the create-specific ones above)."""
        status = exchange.status or 0
        message = self._message(exchange)
        prefix = f"Partner answered {status}{what}"
        retry_after = parse_retry_after(exchange.header("Retry-After"))
        if status == 429:
            return self._error(
                RATE_LIMITED, f"{prefix}: too many requests ({message})", exchange, retry_after=retry_after
            )
        if status >= 500:
            return self._error(SERVER_ERROR, f"{prefix}: {message}", exchange, retry_after=retry_after)
        if status == 408:
            return self._error(TIMEOUT, f"{prefix}: request timeout ({message})", exchange, retry_after=retry_after)
        if status in (401, 403):
            return self._error(AUTH, f"{prefix}: our credentials were refused ({message})", exchange)
        if 300 <= status < 400:
            location = exchange.header("Location") or "nowhere"
            return self._error(
                CONFIG,
                f"{prefix}: a redirect to {http.redact_url(location, self.secrets)}, which is not followed; "
                "check base_url",
                exchange,
            )
        if 400 <= status < 500:
            return self._error(CLIENT_ERROR, f"{prefix}: {message}", exchange)
        return self._error(CONFIG, f"{prefix}, which Syncdesk does not understand", exchange)

    def _lookup(self) -> str | None:
        """The partner's id for our external id, or None when it has no such record."""
        assert self.lookup_path is not None
        path = self.lookup_path.replace("{external_id}", quote(self.request.external_id, safe=""))
        exchange = self._call("GET", self._url(path), None)
        if exchange.status == 404:
            return None
        if not 200 <= (exchange.status or 0) < 300:
            raise self._failure(exchange, " to the lookup by external id")
        ids = self._ids_in_lookup(exchange.json())
        if len(ids) > 1:
            raise self._error(
                CONFLICT,
                f"Partner holds {len(ids)} records with external id {self.request.external_id!r} "
                f"({', '.join(ids[:5])}); a person must pick one",
                exchange,
            )
        return ids[0] if ids else None

    def _ids_in_lookup(self, data: Any) -> list[str]:
        items: list[Any]
        if isinstance(data, list):
            items = data
        elif isinstance(data, dict):
            listed = next((data[k] for k in _LIST_KEYS if isinstance(data.get(k), list)), None)
            items = listed if listed is not None else [data]
        else:
            return []
        ids: list[str] = []
        for item in items:
            if not isinstance(item, dict):
                continue
            # A partner that ignores the query string answers with everything: only trust items that
            # carry our external id, or a single item that does not say.
            external = _dig(item, self.external_id_field)
            if external is not None and _id_text(external) != self.request.external_id:
                continue
            if external is None and len(items) > 1:
                continue
            found = _dig(item, self.id_field)
            if found is not None and _id_text(found) not in ids:
                ids.append(_id_text(found))
        return ids

    # --- plumbing -------------------------------------------------------------------------------

    def _url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    def _headers(self, with_body: bool) -> dict[str, str]:
        headers = {"Accept": "application/json", "Idempotency-Key": self.request.idempotency_key}
        if with_body:
            headers["Content-Type"] = "application/json"
        auth = self.config.get("auth", "none")
        if auth == "bearer" and self.secret:
            headers["Authorization"] = f"Bearer {self.secret}"
        elif auth == "basic":
            pair = f"{self.config.get('username', '')}:{self.secret}".encode()
            headers["Authorization"] = f"Basic {base64.b64encode(pair).decode('ascii')}"
        return headers

    def _call(self, method: str, url: str, body: bytes | None) -> http.Exchange:
        try:
            exchange = http.send(
                method,
                url,
                headers=self._headers(body is not None),
                content=body,
                client=self.client,
                timeouts=self.timeouts,
                secrets=self.secrets,
            )
        except http.HttpFailure as failure:
            self.exchanges.append(failure.exchange)
            self.last = failure.exchange
            raise self._error(failure.error_class, failure.reason, failure.exchange) from failure
        self.exchanges.append(exchange)
        self.last = exchange
        return exchange

    def _message(self, exchange: http.Exchange) -> str:
        message = _partner_message(exchange.json())
        if not message:
            message = " ".join(exchange.response_body.split()) or "no message"
        message = http.mask_secrets(message, self.secrets)
        return message if len(message) <= _MAX_REASON else message[: _MAX_REASON - 1] + "…"

    def _notes(self) -> list[dict[str, Any]]:
        return [
            {
                "request": e.request,
                "status": e.status,
                "response_body": e.response_body,
                "response_headers": e.response_headers,
                "duration_ms": e.duration_ms,
            }
            for e in self.exchanges
        ]

    def _result(self, destination_id: str, *, linked_existing: bool = False) -> DeliveryResult:
        last = self.last
        assert last is not None
        return DeliveryResult(
            destination_id=destination_id,
            status=last.status or 0,
            request=last.request,
            response_body=last.response_body,
            duration_ms=sum(e.duration_ms for e in self.exchanges),
            linked_existing=linked_existing,
            response_headers=last.response_headers,
            exchanges=self._notes(),
        )

    def _error(
        self,
        error_class: str,
        reason: str,
        exchange: http.Exchange | None = None,
        *,
        retry_after: float | None = None,
    ) -> TransportError:
        exchange = exchange or self.last
        return TransportError(
            error_class,
            reason,
            status=exchange.status if exchange else None,
            retry_after=retry_after,
            request=exchange.request if exchange else {},
            response_body=exchange.response_body if exchange else "",
            duration_ms=sum(e.duration_ms for e in self.exchanges),
            response_headers=exchange.response_headers if exchange else {},
            exchanges=self._notes(),
        )


def _dig(data: Any, path: str) -> Any:
    """``data["a"]["b"]`` for ``"a.b"``; None when any step is missing or the value is blank."""
    for part in path.split("."):
        if not isinstance(data, dict) or part not in data:
            return None
        data = data[part]
    if data is None or data == "" or isinstance(data, dict | list | bool):
        return None
    return data


def _id_text(value: Any) -> str:
    return str(value)


def _lower_text(exchange: http.Exchange) -> str:
    return exchange.content[: http.CAPTURE_RESPONSE_BYTES].decode("utf-8", errors="replace").lower()


def _mentions_idempotency(exchange: http.Exchange) -> bool:
    return "idempoten" in _lower_text(exchange)


def _partner_message(data: Any) -> str:
    """The human part of a JSON error answer, in the shapes partners commonly use."""
    if isinstance(data, str):
        return data.strip()
    if not isinstance(data, dict):
        return ""
    for key in _MESSAGE_KEYS:
        value = data.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    errors = data.get("errors")
    if isinstance(errors, list):
        parts = [_partner_message(item) if isinstance(item, dict) else str(item) for item in errors]
        if any(parts):
            return "; ".join(p for p in parts if p)
    if isinstance(errors, dict):
        parts = [
            f"{field}: {', '.join(map(str, problem)) if isinstance(problem, list) else problem}"
            for field, problem in errors.items()
        ]
        if parts:
            return "; ".join(parts)
    error = data.get("error")
    if isinstance(error, dict):
        return _partner_message(error)
    if isinstance(error, str) and error.strip():
        return error.strip()
    return ""


register(RestJsonTransport())
