"""Source kinds by name. A new kind is one module that calls ``register`` plus its tests."""

from __future__ import annotations

import importlib
from typing import Any

_KINDS: dict[str, Any] = {}
_MODULES = ("generic", "standard_webhooks", "shopify", "stripe", "woocommerce", "hubspot")


def register(kind: Any) -> Any:
    _KINDS[kind.name] = kind
    return kind


def _load() -> None:
    if len(_KINDS) >= len(_MODULES):
        return
    for module in _MODULES:
        try:
            importlib.import_module(f"integrations.sources.{module}")
        except ModuleNotFoundError as exc:
            if exc.name != f"integrations.sources.{module}":
                raise


def get(name: str) -> Any:
    _load()
    try:
        return _KINDS[name]
    except KeyError:
        raise KeyError(f"unknown source kind {name!r}") from None


def names() -> list[str]:
    _load()
    return sorted(_KINDS)
