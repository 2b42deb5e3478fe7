"""Mapping specs as text files (YAML or JSON), read without YAML's surprises.

Plain PyYAML follows YAML 1.1: ``0171`` becomes the octal number 121, ``no`` becomes false
(Norway's country code!), ``1.10`` a float. In a mapping spec those are value-map keys and
constants, so this loader only understands ``true``/``false``, ``null``/``~``, decimal integers
without leading zeros and decimal numbers (as ``Decimal``); everything else stays text.
JSON files are read with ``exactjson`` (big ints exact, decimals as Decimal).
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import yaml

from integrations.engine import exactjson


class SpecLoader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2-core style scalars (see module docstring)."""


SpecLoader.yaml_implicit_resolvers = {}
SpecLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
SpecLoader.add_implicit_resolver("tag:yaml.org,2002:null", re.compile(r"^(?:~|null|Null|NULL|)$"), ["~", "n", "N", ""])
SpecLoader.add_implicit_resolver("tag:yaml.org,2002:int", re.compile(r"^[-+]?(?:0|[1-9][0-9]*)$"), list("-+0123456789"))
SpecLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:0|[1-9][0-9]*)?\.[0-9]+(?:[eE][-+]?[0-9]+)?$"),
    list("-+0123456789."),
)


def _decimal(loader: SpecLoader, node: yaml.Node) -> Decimal:
    return Decimal(str(loader.construct_scalar(node)))  # type: ignore[arg-type]


def _int(loader: SpecLoader, node: yaml.Node) -> int:
    return int(str(loader.construct_scalar(node)))  # type: ignore[arg-type]


SpecLoader.add_constructor("tag:yaml.org,2002:float", _decimal)
SpecLoader.add_constructor("tag:yaml.org,2002:int", _int)


class SpecDumper(yaml.SafeDumper):
    pass


def _represent_decimal(dumper: SpecDumper, value: Decimal) -> yaml.Node:
    return dumper.represent_scalar("tag:yaml.org,2002:float", str(value))


def _represent_str(dumper: SpecDumper, value: str) -> yaml.Node:
    # Quote texts that YAML 1.1 readers would take for something else (0171, no, on, 1e3).
    style = None
    if re.fullmatch(r"[-+]?[0-9][0-9_:.eE+-]*|yes|no|on|off|y|n|Yes|No|On|Off|Y|N|YES|NO|ON|OFF", value):
        style = "'"
    if "\n" in value:
        style = "|"
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


SpecDumper.add_representer(Decimal, _represent_decimal)
SpecDumper.add_representer(str, _represent_str)


def load_spec_text(text: str) -> Any:
    """A spec from YAML or JSON text (JSON when it starts with ``{``). Raises ValueError with
    the line of the problem on malformed text; the result still needs ``validate_spec``."""
    stripped = text.lstrip("\ufeff \t\r\n")
    if stripped.startswith("{"):
        try:
            return exactjson.loads(stripped)
        except ValueError as exc:
            raise ValueError(f"not valid JSON: {exc}") from None
    try:
        return yaml.load(stripped, Loader=SpecLoader)  # noqa: S506 - SpecLoader is a SafeLoader
    except yaml.YAMLError as exc:
        raise ValueError(f"not valid YAML: {exc}") from None


def dump_spec_text(spec: dict[str, Any], fmt: str = "yaml") -> str:
    """The spec as readable text: ``yaml`` (default, keys in the spec's order) or ``json``."""
    if fmt == "json":
        return _pretty(spec, 0) + "\n"
    return yaml.dump(spec, Dumper=SpecDumper, sort_keys=False, allow_unicode=True, width=100)


def _pretty(value: Any, level: int) -> str:
    """Indented JSON with exact numbers (exactjson writes Decimals as numbers)."""
    pad, inner = "  " * level, "  " * (level + 1)
    if isinstance(value, dict) and value:
        items = [f"{inner}{exactjson.dumps(str(k))}: {_pretty(v, level + 1)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + f"\n{pad}}}"
    if isinstance(value, list) and value:
        return "[\n" + ",\n".join(f"{inner}{_pretty(v, level + 1)}" for v in value) + f"\n{pad}]"
    return exactjson.dumps(value)
