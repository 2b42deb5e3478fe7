"""Customer variance lives in data, never in code: no customer slug or name from the test
fixtures or the demo may appear in Python source outside tests/ and the demo-data modules.

The names are collected, not listed by hand: string ``slug=``/``name=`` arguments of calls that
make customers in tests/ and demo modules, ``{"slug": ..., "name": ...}`` literals and
``("a-slug", "Name", ...)`` rows in demo modules. Generic words some tests use as throwaway
slugs ("other", "second") cannot identify a customer and are not checked."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCANNED = ("integrations", "customers", "config")
MIN_LENGTH = 3  # shorter strings are not names
GENERIC = frozenset({"other", "second", "first", "third", "test", "demo", "customer", "shop", "example"})


def is_demo_module(path: Path) -> bool:
    return "demo" in path.stem


def _call_name(node: ast.Call) -> str:
    return ast.unparse(node.func)


def _customer_call(node: ast.Call) -> bool:
    return "customer" in _call_name(node).lower()


def _text(node: ast.AST | None) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def names_in_source(path: Path) -> set[str]:
    """slug/name string arguments of calls that make customers, plus (in demo modules) tuples
    that look like (slug, name, ...) rows."""
    found: set[str] = set()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and _customer_call(node):
            for kw in node.keywords:
                if (
                    kw.arg in ("slug", "name")
                    and isinstance(kw.value, ast.Constant)
                    and isinstance(kw.value.value, str)
                ):
                    found.add(kw.value.value)
                if kw.arg == "defaults" and isinstance(kw.value, ast.Dict):
                    for key, value in zip(kw.value.keys, kw.value.values, strict=True):
                        if (
                            isinstance(key, ast.Constant)
                            and key.value == "name"
                            and isinstance(value, ast.Constant)
                            and isinstance(value.value, str)
                        ):
                            found.add(value.value)
            # new_customer("slug", "Name") style helpers: positional strings
            if _call_name(node).endswith("new_customer"):
                found.update(a.value for a in node.args[:2] if isinstance(a, ast.Constant) and isinstance(a.value, str))
        if is_demo_module(path) and isinstance(node, ast.Dict):
            entries = {_text(k): _text(v) for k, v in zip(node.keys, node.values, strict=True)}
            if entries.get("slug") and entries.get("name"):
                found.update({entries["slug"], entries["name"]})  # type: ignore[arg-type]
        if is_demo_module(path) and isinstance(node, ast.Tuple) and len(node.elts) >= 2:
            first, second = node.elts[0], node.elts[1]
            if (
                isinstance(first, ast.Constant)
                and isinstance(second, ast.Constant)
                and isinstance(first.value, str)
                and isinstance(second.value, str)
                and re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)+", first.value)
            ):
                found.update({first.value, second.value})
    return {n for n in found if len(n) >= MIN_LENGTH and n.casefold() not in GENERIC}


def fixture_and_demo_names() -> set[str]:
    names: set[str] = set()
    for path in (ROOT / "tests").rglob("*.py"):
        names |= names_in_source(path)
    for folder in SCANNED:
        for path in (ROOT / folder).rglob("*.py"):
            if is_demo_module(path):
                names |= names_in_source(path)
    return names


def find_leaks(roots: list[Path], names: set[str]) -> list[str]:
    """``path:line: name`` for every customer name found in Python source under ``roots``
    (demo modules and migrations excepted). Whole words, any case."""
    patterns = {n: re.compile(r"(?<![\w-])" + re.escape(n) + r"(?![\w-])", re.IGNORECASE) for n in names}
    leaks = []
    for root in roots:
        for path in sorted(root.rglob("*.py")):
            if is_demo_module(path):
                continue
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                for name, pattern in patterns.items():
                    if pattern.search(line):
                        leaks.append(f"{path.relative_to(root.parent)}:{number}: {name}")
    return leaks


def test_demo_customers_are_among_the_names_checked():
    """What the demo module really holds (imported, not parsed) is seen by the scan."""
    from integrations import demo_data

    held = set()
    for value in vars(demo_data).values():
        if isinstance(value, dict) and isinstance(value.get("slug"), str) and isinstance(value.get("name"), str):
            held |= {value["slug"], value["name"]}
    assert held, "the demo module's customers were not found; update this test with the demo's new shape"
    missing = held - fixture_and_demo_names()
    assert not missing, f"the scan does not see these demo customers: {sorted(missing)}"


def test_names_are_collected_from_fixtures_and_the_demo():
    names = fixture_and_demo_names()
    # the shared fixtures' customers and this package's own
    assert {"test-shop", "Test Shop", "acme", "Acme", "rules-cust-a", "Rules Customer A"} <= names


def test_no_customer_slug_or_name_appears_in_python_source():
    leaks = find_leaks([ROOT / folder for folder in SCANNED], fixture_and_demo_names())
    assert leaks == [], "customer-specific names in code (use an exception rule instead):\n" + "\n".join(leaks)


def test_the_scan_finds_a_customer_name_in_a_source_file(tmp_path):
    source = tmp_path / "integrations" / "services" / "special.py"
    source.parent.mkdir(parents=True)
    source.write_text(
        'def status_for(customer, status):\n    if customer.slug == "rules-cust-a":\n        return None\n'
    )
    (tmp_path / "integrations" / "demo_data.py").write_text('CUSTOMERS = [("rules-cust-a", "Rules Customer A")]\n')
    leaks = find_leaks([tmp_path / "integrations"], fixture_and_demo_names())
    assert len(leaks) == 1
    assert leaks[0].endswith("special.py:2: rules-cust-a")
