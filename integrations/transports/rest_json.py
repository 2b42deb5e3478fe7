"""REST JSON destination: POST to create, PATCH/PUT to update by destination id."""

from __future__ import annotations

from typing import Any

from integrations.transports.registry import register

CONFIG_KEYS = {
    "base_url": "Base URL of the partner API, e.g. https://api.partner.example/v1",
    "create_path": "Path for creates, e.g. /contacts",
    "update_path": "Path for updates with {id}, e.g. /contacts/{id}",
    "lookup_path": "Optional path to find a record by external id: /contacts?external_id={external_id}",
    "update_method": "PATCH (default) or PUT",
    "auth": "none, bearer or basic",
    "username": "User name for basic auth (the password is the destination secret)",
    "id_field": "Where the partner's answer carries its id (default: id)",
    "external_id_field": "Field in our body that carries the source id (default: external_id)",
}


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
        return errors


register(RestJsonTransport())
