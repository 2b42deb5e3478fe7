"""The one HTTP module: redaction, bounded capture, failure classes, Retry-After."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest

from integrations.engine.retry_policy import CONFIG, CONNECTION, LOST_RESPONSE, TIMEOUT
from integrations.transports import http
from integrations.transports.base import parse_retry_after

NOW = datetime(2026, 12, 3, 12, 0, 0, tzinfo=UTC).timestamp()


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("10", 10.0),
        (" 2 ", 2.0),
        ("1.5", 1.5),
        ("0", 0.0),
        ("-3", 0.0),
        ("Thu, 03 Dec 2026 12:00:45 GMT", 45.0),  # IMF-fixdate
        ("Thursday, 03-Dec-26 12:00:45 GMT", 45.0),  # obsolete RFC 850 form
        ("Thu Dec  3 12:00:45 2026", 45.0),  # obsolete asctime form
        ("Thu, 03 Dec 2026 11:00:00 GMT", 0.0),  # already past: go now
        ("soon", None),
        ("", None),
        (None, None),
        ("nan", None),
    ],
)
def test_retry_after_reads_seconds_and_http_dates(value, seconds):
    assert parse_retry_after(value, now=NOW) == seconds


@pytest.mark.parametrize(
    "name",
    [
        "Authorization",
        "cookie",
        "Set-Cookie",
        "X-Api-Key",
        "api_key",
        "apiKey",
        "access_token",
        "client_secret",
        "Password",
        "X-Hub-Signature",
        "private_key",
    ],
)
def test_secret_looking_names_are_redacted(name):
    assert http.is_secret_name(name)


@pytest.mark.parametrize("name", ["Idempotency-Key", "Content-Type", "email", "external_id", "author", "key_account"])
def test_ordinary_names_are_kept(name):
    assert not http.is_secret_name(name)


def test_capture_masks_headers_json_keys_query_and_the_secret_itself():
    captured = http.capture_request(
        "POST",
        "https://user:pw@api.example/v1/contacts?api_key=abc123&page=2",
        {"Authorization": "Bearer tok-999", "X-Note": "sent with tok-999", "Idempotency-Key": "k-1"},
        b'{"email": "a@example.com", "credentials": {"password": "p"}, '
        b'"items": [{"token": "t"}], "n": 12345678901234567890}',
        secrets=["tok-999"],
    )

    assert captured["url"] == "https://***@api.example/v1/contacts?api_key=***&page=2"
    assert captured["headers"] == {"Authorization": "***", "X-Note": "sent with ***", "Idempotency-Key": "k-1"}
    assert captured["body"] == (
        '{"email":"a@example.com","credentials":"***","items":[{"token":"***"}],"n":12345678901234567890}'
    )


def test_capture_keeps_a_body_without_secrets_byte_for_byte():
    body = '{"b": 1,  "a": "Zoë"}'

    assert http.capture_request("POST", "http://x/", {}, body.encode())["body"] == body


def test_bounded_text_notes_the_full_size():
    assert http.bounded_text(b"abcdef", 4) == "abcd\n… [truncated: first 4 of 6 bytes]"
    assert http.bounded_text(b"abc", 4) == "abc"


def test_the_shared_client_is_reused_and_follows_no_redirects():
    first = http.shared_client()

    assert http.shared_client() is first
    assert first.follow_redirects is False


def test_timeouts_are_passed_in_with_defaults_of_5_and_30_seconds():
    assert http.Timeouts.of(None) == http.Timeouts(5.0, 30.0)
    assert http.Timeouts.of((1, 2)).as_httpx() == httpx.Timeout(2.0, connect=1.0)
    client = http.make_client(connect_timeout=3, read_timeout=7)
    try:
        assert client.timeout == httpx.Timeout(7.0, connect=3.0)
    finally:
        client.close()


@pytest.mark.parametrize(
    ("exc", "error_class"),
    [
        (httpx.ConnectError("refused"), CONNECTION),
        (httpx.ConnectTimeout("slow"), CONNECTION),
        (httpx.PoolTimeout("busy"), CONNECTION),
        (httpx.ReadTimeout("slow"), TIMEOUT),
        (httpx.RemoteProtocolError("Server disconnected without sending a response."), LOST_RESPONSE),
        (httpx.ReadError("reset by peer"), LOST_RESPONSE),
        (httpx.UnsupportedProtocol("ftp"), CONFIG),
    ],
)
def test_failures_are_classified_in_the_retry_policys_words(exc, error_class):
    assert http.classify(exc)[0] == error_class


def test_send_reports_a_refused_connection_with_the_captured_request():
    with pytest.raises(http.HttpFailure) as info:
        # Port 9 (discard) is closed on the test machines; nothing listens there.
        http.send("POST", "http://127.0.0.1:9/x", headers={"Authorization": "Bearer abcd"}, content=b"{}")

    assert info.value.error_class == CONNECTION
    assert info.value.exchange.request["headers"]["Authorization"] == "***"


def test_cookies_a_partner_sets_are_never_sent_back(client):
    """The client is shared by every integration of the process: a cookie one partner sets (a
    session) must not ride along on later calls — not to it, not to another customer's account on
    the same host."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    seen: list[str | None] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            seen.append(self.headers.get("Cookie"))
            self.send_response(200)
            self.send_header("Set-Cookie", "session=customer-a-session; Path=/")
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args: object) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/contacts"
        for shared in (None, client):
            for _ in range(2):
                answer = http.send(
                    "POST", url, headers={"Content-Type": "application/json"}, content=b"{}", client=shared
                )
                assert answer.status == 200
    finally:
        server.shutdown()
        server.server_close()
    assert seen == [None, None, None, None]
