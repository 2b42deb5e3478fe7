"""The webhook endpoint under hostile input: fuzzed with hypothesis for every source kind (random
bodies, headers, sizes, encodings, signature formats — never a 500), replays outside the time
window refused, and signature checks constant-time everywhere (an AST scan of the code)."""

from __future__ import annotations

import ast
import base64
import json
import math
import os
import time
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from integrations.models import Integration, SyncRecord
from integrations.sources import generic, hubspot, shopify, standard_webhooks, stripe, woocommerce
from integrations.sources import registry as sources

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
SW_SECRET = "whsec_" + base64.b64encode(b"standard-webhooks-test-key-32byte").decode()
SECRETS = {
    "generic": "sdk_generic-fuzz-secret-000000000000",
    "standard_webhooks": SW_SECRET,
    "stripe": "whsec_stripe-fuzz-secret-000000000",
    "shopify": "shopify-fuzz-secret-000000000000",
    "woocommerce": "woo-fuzz-secret-0000000000000000",
    "hubspot": "hubspot-client-secret-0000000000",
}
WRONG_SW_SECRET = "whsec_" + base64.b64encode(b"another-key-entirely-0000000000").decode()
KINDS = sorted(SECRETS)
TIMESTAMPED = ["generic", "standard_webhooks", "stripe", "hubspot"]  # Shopify and WooCommerce sign no time
EXAMPLES = int(os.environ.get("SYNCDESK_FUZZ_EXAMPLES", "120"))
STATS: dict[str, Any] = {"cases": 0, "seconds": 0.0, "statuses": {}}


def sign(kind: str, *, slug: str, body: bytes, timestamp: int, secret: str | None = None) -> dict[str, str]:
    """The headers the platform would send with ``body`` at ``timestamp``."""
    secret = secret or SECRETS[kind]
    if kind == "generic":
        return {"X-Syncdesk-Timestamp": str(timestamp), "X-Syncdesk-Signature": generic.sign(secret, timestamp, body)}
    if kind == "standard_webhooks":
        return standard_webhooks.sign_request(secret, msg_id=f"msg_{timestamp}", timestamp=timestamp, body=body)
    if kind == "stripe":
        return stripe.sign_request(secret, timestamp=timestamp, body=body)
    if kind == "shopify":
        return shopify.sign_request(secret, body, event_id=f"evt-{len(body)}")
    if kind == "woocommerce":
        return woocommerce.sign_request(secret, body)
    url = f"http://testserver/hooks/{slug}/"
    return hubspot.sign_request(secret, url=url, body=body, timestamp_ms=timestamp * 1000)


def meta(headers: dict[str, str]) -> dict[str, str]:
    out = {}
    for name, value in headers.items():
        key = name.upper().replace("-", "_")
        out[key if key == "CONTENT_TYPE" else "HTTP_" + key] = value
    return out


@pytest.fixture
def hooks(customer) -> dict[str, Integration]:
    out = {}
    for kind in KINDS:
        out[kind] = Integration.objects.create(
            customer=customer,
            name=f"{kind} in",
            slug=f"fuzz-{kind.replace('_', '-')}",
            source_kind=kind,
            webhook_secret=SECRETS[kind],
            destination_config={"base_url": "http://127.0.0.1:9", "create_path": "/c", "update_path": "/c/{id}"},
        )
    return out


def test_every_source_kind_is_fuzzed():
    assert set(sources.names()) == set(KINDS)


# --- strategies ------------------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=25,
)
records = st.dictionaries(
    st.sampled_from(["id", "email", "updated_at", "name", "type", "data", "objectId", "created", "eventId"]),
    json_values,
    max_size=6,
)
envelopes = st.one_of(
    records,
    st.fixed_dictionaries({"records": st.lists(records, max_size=4)}),
    st.fixed_dictionaries(
        {
            "id": st.text(max_size=10),
            "type": st.text(max_size=10),
            "created": st.integers(),
            "data": st.fixed_dictionaries({"object": records}),
        }
    ),
    st.lists(records, max_size=4),
    json_values,
)


def encoded(value: Any, encoding: str) -> bytes:
    text = json.dumps(value, ensure_ascii=False)
    return text.encode(encoding, errors="surrogatepass" if encoding.startswith("utf") else "replace")


bodies = st.one_of(
    st.binary(max_size=2048),
    st.builds(encoded, envelopes, st.sampled_from(["utf-8", "utf-16", "utf-32", "latin-1", "utf-8-sig"])),
    st.text(max_size=300).map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.sampled_from([b"", b"null", b"[]", b"{}", b"webhook_id=12", b"\xef\xbb\xbf{}", b"[" * 5000, b"{" * 100000]),
    st.integers(min_value=1, max_value=3).map(lambda n: b'{"id": 1, "pad": "' + b"x" * (n * 400_000) + b'"}'),
)
HEADER_NAMES = [
    "X-Syncdesk-Timestamp",
    "X-Syncdesk-Signature",
    "X-Syncdesk-Event-Id",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "svix-signature",
    "Stripe-Signature",
    "X-Shopify-Hmac-Sha256",
    "X-Shopify-Event-Id",
    "X-Shopify-Triggered-At",
    "X-WC-Webhook-Signature",
    "X-WC-Webhook-Delivery-ID",
    "X-HubSpot-Signature-v3",
    "X-HubSpot-Request-Timestamp",
    "Content-Type",
    "Content-Length",
]
header_values = st.one_of(
    st.text(alphabet=st.characters(min_codepoint=1, max_codepoint=255), max_size=200),
    st.sampled_from(["v1=", "v1=zz", "t=,v1=", "v1,", "v1,!!!", "==", "t=99999999999999999999999,v1=00", "-1", "1e9"]),
    st.integers().map(str),
    st.binary(max_size=40).map(lambda b: base64.b64encode(b).decode()),
    st.binary(max_size=40).map(lambda b: "v1=" + b.hex()),
)
random_headers = st.dictionaries(st.sampled_from(HEADER_NAMES), header_values, max_size=6)
# How the signature goes wrong (or right): "none" sends the random headers only.
modes = st.sampled_from(["none", "valid", "stale", "future", "wrong_secret", "tampered_body"])


@pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisWarning")
@pytest.mark.parametrize("kind", KINDS)
def test_the_webhook_endpoint_never_answers_500_to_anything(hooks, kind):
    hook = hooks[kind]
    client = Client()

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
        database=None,
    )
    @given(
        body=bodies,
        headers=random_headers,
        mode=modes,
        content_type=st.sampled_from(
            ["application/json", "application/x-www-form-urlencoded", "text/plain; charset=latin-1", ""]
        ),
    )
    def run(body: bytes, headers: dict[str, str], mode: str, content_type: str) -> None:
        now = int(time.time())
        sent = dict(headers)
        if mode != "none":
            stamp = {"stale": now - 10_000, "future": now + 10_000}.get(mode, now)
            secret = WRONG_SW_SECRET if kind == "standard_webhooks" else "sdk_not-the-secret-at-all-00000"
            secret = secret if mode == "wrong_secret" else None
            sent.update(sign(kind, slug=hook.slug, body=body, timestamp=stamp, secret=secret))
            if mode == "tampered_body":
                body = body + b" "
        started = time.monotonic()
        response = client.generic("POST", f"/hooks/{hook.slug}/", data=body, content_type=content_type, **meta(sent))
        STATS["seconds"] += time.monotonic() - started
        STATS["cases"] += 1
        STATS["statuses"][response.status_code] = STATS["statuses"].get(response.status_code, 0) + 1
        assert response.status_code < 500, response.content[:300]
        assert response["Content-Type"].startswith("application/json")
        refused = {"wrong_secret", "tampered_body"} | ({"stale", "future"} if kind in TIMESTAMPED else set())
        if mode in refused and response.status_code < 300:
            # Only WooCommerce's unsigned ping is answered 2xx without a valid signature.
            assert kind == "woocommerce", (mode, response.content[:200])
            assert b"ping" in response.content, (mode, response.content[:200])

    run()
    print(f"\nfuzz {kind}: {STATS['cases']} cases so far, {STATS['seconds']:.1f} s in requests, {STATS['statuses']}")


# --- replays ---------------------------------------------------------------------------------


def _stripe_body(n: int) -> bytes:
    return json.dumps(
        {"id": f"evt_{n}", "type": "customer.updated", "created": 1_750_000_000, "data": {"object": {"id": f"cus_{n}"}}}
    ).encode()


def _body(kind: str, n: int) -> bytes:
    if kind == "stripe":
        return _stripe_body(n)
    if kind == "hubspot":
        return json.dumps([{"eventId": n, "portalId": 1, "subscriptionId": 2, "objectId": n, "occurredAt": 1}]).encode()
    return json.dumps({"id": f"r-{n}", "updated_at": "2025-06-15T10:00:00+00:00"}).encode()


@pytest.mark.parametrize("kind", TIMESTAMPED)
@pytest.mark.parametrize("skew", [-301, 301, -86400])
def test_a_signed_request_outside_the_time_window_is_refused(hooks, kind, skew):
    hook = hooks[kind]
    body = _body(kind, 1)
    # Whole seconds at least |skew| away from now: int(time.time()) + 301 is only 300.x s ahead,
    # and inside the window if the view reads the clock after the next second begins.
    now = time.time()
    stamp = math.floor(now) + skew if skew < 0 else math.ceil(now) + skew
    headers = sign(kind, slug=hook.slug, body=body, timestamp=stamp)
    response = Client().generic(
        "POST", f"/hooks/{hook.slug}/", data=body, content_type="application/json", **meta(headers)
    )
    assert response.status_code == 401
    assert response.json()["error"] == "stale_timestamp"
    assert not SyncRecord.objects.filter(integration=hook).exists()


@pytest.mark.parametrize("kind", KINDS)
def test_a_replayed_request_inside_the_window_is_a_harmless_duplicate(hooks, kind):
    hook = hooks[kind]
    body = _body(kind, 2)
    headers = sign(kind, slug=hook.slug, body=body, timestamp=int(time.time()))
    if kind == "generic":
        headers["X-Syncdesk-Event-Id"] = "evt-2"
    client = Client()
    first = client.generic("POST", f"/hooks/{hook.slug}/", data=body, content_type="application/json", **meta(headers))
    again = client.generic("POST", f"/hooks/{hook.slug}/", data=body, content_type="application/json", **meta(headers))
    assert first.status_code == 202, first.content
    assert again.status_code == 200
    assert again.json()["status"] == "duplicate"
    assert SyncRecord.objects.filter(integration=hook).count() == 1


# --- constant-time comparisons ---------------------------------------------------------------

SIGNATURE_WORDS = ("sig", "digest", "hmac", "mac", "expected", "given", "token", "secret", "fingerprint")


def _names(node: ast.AST) -> list[str]:
    return [n.id for n in ast.walk(node) if isinstance(n, ast.Name)] + [
        n.attr for n in ast.walk(node) if isinstance(n, ast.Attribute)
    ]


def _suspicious_comparisons(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare) and any(isinstance(op, ast.Eq | ast.NotEq) for op in node.ops):
            for side in [node.left, *node.comparators]:
                words = [w.lower() for w in _names(side)]
                if any(k in w for w in words for k in SIGNATURE_WORDS):
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {ast.unparse(node)}")
                    break
    return found


def test_signatures_and_tokens_are_never_compared_with_equals():
    files = [*sorted((ROOT / "integrations" / "sources").glob("*.py")), ROOT / "integrations" / "webhooks.py"]
    files.append(ROOT / "integrations" / "api_auth.py")
    problems = [p for f in files for p in _suspicious_comparisons(f)]
    assert not problems, "use hmac.compare_digest:\n" + "\n".join(problems)


def test_the_scan_would_catch_a_plain_comparison(tmp_path):
    bad = ROOT / "integrations" / "sources" / "__scan_probe__.py"
    try:
        bad.write_text("def verify(expected, given):\n    return expected == given\n")
        assert _suspicious_comparisons(bad)
    finally:
        bad.unlink()


def test_every_source_kind_compares_signatures_with_compare_digest():
    signing = (ROOT / "integrations" / "sources" / "signing.py").read_text()
    assert "hmac.compare_digest" in signing
    body_check = signing[signing.index("def check_body_hmac_base64") :]
    assert "any_matches(" in body_check
    for module in (generic, hubspot, shopify, standard_webhooks, stripe, woocommerce):
        source = Path(module.__file__).read_text()
        # Directly, or through signing.check_body_hmac_base64 (which itself uses any_matches).
        assert "any_matches(" in source or "check_body_hmac_base64(" in source, (
            f"{module.__name__} must compare through signing.any_matches"
        )
