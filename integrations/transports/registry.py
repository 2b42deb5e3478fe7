"""Destination kinds, found by name. Adding one: a module with a class like RestJsonTransport,
registered here, plus its tests (see README "Adding a destination kind")."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import httpx

    from integrations.transports.base import DeliveryRequest, DeliveryResult


class DestinationKind(Protocol):
    name: str
    label: str

    def validate_config(self, config: dict[str, Any]) -> list[str]: ...

    def deliver(
        self,
        config: dict[str, Any],
        secret: str,
        request: DeliveryRequest,
        *,
        client: httpx.Client | None = None,
        timeouts: tuple[float, float] | None = None,
    ) -> DeliveryResult:
        """Send one record version; return the result or raise ``base.TransportError``."""
        ...


_KINDS: dict[str, Any] = {}


def register(kind: Any) -> Any:
    _KINDS[kind.name] = kind
    return kind


def get(name: str) -> Any:
    _load()
    try:
        return _KINDS[name]
    except KeyError:
        raise KeyError(f"unknown destination kind {name!r}") from None


def choices() -> list[tuple[str, str]]:
    _load()
    return [(k, v.label) for k, v in sorted(_KINDS.items())]


def _load() -> None:
    from integrations.transports import rest_json  # noqa: F401  (registers itself)
