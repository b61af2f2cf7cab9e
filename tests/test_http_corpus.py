"""Malformed HTTP sent over raw sockets to the real gunicorn: gunicorn or the app answers each
request with a 4xx (or closes a connection that never made a request), never a 5xx, and no
worker dies. README's table "At the HTTP level" lists these answers."""

import json
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

SEED = {"name": "HelloWorld", "views": 147, "likes": 3}
VIDEO = b'{"name": "Cats", "views": 10, "likes": 2}'
APP, GUNICORN = "app", "gunicorn"
# Far longer than any answer here takes: it only decides whether one comes at all.
CLIENT_TIMEOUT = 10
CHUNKED = b"Transfer-Encoding: chunked\r\n"


def get(path: bytes, *headers: bytes, version: bytes = b"HTTP/1.1") -> bytes:
    return b"GET " + path + b" " + version + b"\r\nHost: x\r\n" + b"".join(headers) + b"\r\n"


def put(body: bytes, *headers: bytes) -> bytes:
    head = b"PUT /videos/7 HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    return head + b"".join(headers) + b"\r\n" + body


def length(n: int) -> bytes:
    return b"Content-Length: %d\r\n" % n


def chunks(body: bytes, size: int | None = None, last: bytes = b"\r\n0\r\n\r\n") -> bytes:
    """`body` as one chunk of `size` (its length unless given), then `last`."""
    return b"%x\r\n%s%s" % (len(body) if size is None else size, body, last)


@dataclass(frozen=True)
class Answer:
    """What came back: a status and who sent it, or nothing at all (None) before the close."""

    status: int | None
    by: str | None
    message: str | None = None


def read_answer(sock: socket.socket) -> Answer:
    """Read until the server closes (a sync worker closes after each answer)."""
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    if not received:
        return Answer(None, None)
    head, _, body = received.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (h.split(":", 1) for h in header_lines)}
    status = int(status_line.split()[1])
    # The app answers JSON (Flask-RESTful); gunicorn answers with its own HTML page.
    if headers.get("content-type") == "application/json":
        return Answer(status, APP, json.loads(body).get("message") if body else None)
    return Answer(status, GUNICORN if headers.get("content-type") == "text/html" else None)


def exchange(url: str, request: bytes, half_close: bool = False) -> Answer:
    """Send `request` on a connection of its own, shut down our side if asked, and read."""
    with socket.create_connection(("127.0.0.1", urlsplit(url).port), CLIENT_TIMEOUT) as sock:
        sock.sendall(request)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        return read_answer(sock)


@contextmanager
def still_serving_after(server: tuple[str, Path]) -> Iterator[str]:
    """Yield the server's URL; then the next normal request must answer, and what gunicorn
    logged meanwhile must show no worker lost (a worker's every way out is logged)."""
    url, log = server
    start = log.stat().st_size
    yield url
    response = requests.get(f"{url}/videos/1", timeout=CLIENT_TIMEOUT)
    assert (response.status_code, response.json()) == (200, SEED)
    logged = log.read_bytes()[start:].decode(errors="replace")
    for death in ("Traceback", "Worker exiting", "exited with code", "was sent", "TIMEOUT"):
        assert death not in logged, logged


def case(name, request, status, by, *, half_close=False, marks=()):
    """A request and the answer it gets; `half_close`: shut down our side once it is sent."""
    return pytest.param(request, half_close, Answer(status, by), id=name, marks=marks)


CASES = [
    # The request line.
    case("request-line-garbage", b"GARBAGE\r\n\r\n", 400, GUNICORN),
    case("request-line-without-version", b"GET /videos/1\r\n\r\n", 400, GUNICORN),
    case("http-version-9.9", get(b"/videos/1", version=b"HTTP/9.9"), 400, GUNICORN),
    case("two-spaces", b"GET  /videos/1 HTTP/1.1\r\nHost: x\r\n\r\n", 400, GUNICORN),
    case("lowercase-method", b"get /videos/1 HTTP/1.1\r\nHost: x\r\n\r\n", 400, GUNICORN),
    case("unknown-method", b"BREW /videos/1 HTTP/1.1\r\nHost: x\r\n\r\n", 405, APP),
    case("request-line-over-4094-bytes", get(b"/videos/" + b"1" * 5000), 414, GUNICORN),
    # The path: percent-encoding and UTF-8.
    case("percent-not-hex", get(b"/videos/%zz"), 404, APP),
    case("percent-truncated", get(b"/videos/1%"), 404, APP),
    case("percent-encoded-invalid-utf8", get(b"/videos/%FF"), 404, APP),
    case("percent-encoded-overlong-utf8", get(b"/videos/%C0%B1"), 404, APP),
    case("percent-encoded-nul", get(b"/videos/1%00"), 404, APP),
    case("percent-encoded-digit", get(b"/videos/%31"), 200, APP),
    case("raw-invalid-utf8", get(b"/videos/\xff"), 400, GUNICORN),
    case("raw-utf8-full-width-digit", get("/videos/\uff11".encode()), 400, GUNICORN),
    # Headers.
    case("header-of-10kb", get(b"/videos/1", b"X-Big: " + b"a" * 10_000 + b"\r\n"), 431, GUNICORN),
    case(
        "101-headers", get(b"/videos/1", *(b"X-%d: 1\r\n" % n for n in range(101))), 431, GUNICORN
    ),
    case("two-host", get(b"/videos/1", b"Host: y\r\n"), 400, GUNICORN),
    case("no-host", b"GET /videos/1 HTTP/1.1\r\n\r\n", 200, APP),
    case("header-without-colon", get(b"/videos/1", b"Broken\r\n"), 400, GUNICORN),
    case("space-before-colon", get(b"/videos/1", b"X-A : 1\r\n"), 400, GUNICORN),
    case("folded-header", get(b"/videos/1", b"X-A: 1\r\n", b" 2\r\n"), 400, GUNICORN),
    # Content-Length and the body.
    case(
        "two-content-length-equal",
        put(VIDEO, length(len(VIDEO)), length(len(VIDEO))),
        400,
        GUNICORN,
    ),
    case("two-content-length", put(VIDEO, length(len(VIDEO)), length(5)), 400, GUNICORN),
    case("content-length-negative", put(VIDEO, b"Content-Length: -1\r\n"), 400, GUNICORN),
    case("content-length-letters", put(VIDEO, b"Content-Length: ten\r\n"), 400, GUNICORN),
    case("content-length-1e20", put(VIDEO, length(10**20)), 413, APP),
    case("body-longer-than-content-length", put(VIDEO, length(len(VIDEO) - 5)), 400, APP),
    case("bytes-after-the-body", put(VIDEO + b"GARBAGE", length(len(VIDEO))), 201, APP),
    case(
        "body-shorter-then-half-close",
        put(VIDEO, length(len(VIDEO) + 20)),
        400,
        APP,
        half_close=True,
    ),
    case("no-body-then-half-close", put(b"", length(10)), 400, APP, half_close=True),
    # Transfer-Encoding and chunks.
    case("content-length-and-chunked", put(chunks(VIDEO), CHUNKED, length(5)), 400, GUNICORN),
    case("transfer-encoding-gzip", put(VIDEO, b"Transfer-Encoding: gzip\r\n"), 400, GUNICORN),
    case(
        "chunked-twice",
        put(chunks(VIDEO), b"Transfer-Encoding: chunked, chunked\r\n"),
        400,
        GUNICORN,
    ),
    case(
        "chunk-size-not-hex",
        put(b"zz\r\n" + VIDEO + b"\r\n0\r\n\r\n", CHUNKED),
        400,
        APP,
    ),
    case(
        "chunk-without-crlf",
        put(chunks(VIDEO, last=b"XX0\r\n\r\n"), CHUNKED),
        400,
        APP,
    ),
    case(
        "no-last-chunk-then-half-close",
        put(chunks(VIDEO, last=b"\r\n"), CHUNKED),
        400,
        APP,
        half_close=True,
    ),
    case(
        "chunk-shorter-then-half-close",
        put(chunks(VIDEO, len(VIDEO) + 10, b""), CHUNKED),
        400,
        APP,
        half_close=True,
    ),
    # No request at all.
    case("headers-unfinished-then-half-close", get(b"/videos/1")[:-2], None, None, half_close=True),
    case("nothing-then-half-close", b"", None, None, half_close=True),
]


@pytest.mark.parametrize(("request_bytes", "half_close", "expected"), CASES)
def test_malformed_http_is_a_4xx_and_no_worker_dies(
    module_server, request_bytes, half_close, expected
):
    with still_serving_after(module_server) as url:
        answer = exchange(url, request_bytes, half_close)
    assert (answer.status, answer.by) == (expected.status, expected.by)
    if answer.by == APP and answer.status >= 400:
        assert answer.message


def test_client_sending_its_headers_slowly_gets_its_answer(module_server):
    """A slow client is not a silent one: a byte every 10 ms is still served."""
    with (
        still_serving_after(module_server) as url,
        socket.create_connection(("127.0.0.1", urlsplit(url).port), CLIENT_TIMEOUT) as sock,
    ):
        # One byte per segment, as a slow or hostile client sends them.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for byte in get(b"/videos/1"):
            sock.sendall(bytes([byte]))
            time.sleep(0.01)
        answer = read_answer(sock)
    assert answer == Answer(200, APP)


def test_silent_client_is_dropped_after_the_service_timeout(serve, tmp_path):
    """A connection that sends nothing holds a sync worker only until SERVICE_TIMEOUT (in
    seconds; gunicorn's 90 s before): gunicorn's arbiter then kills that worker, answers the
    client with its own 500 page (not the app's) and boots another, which serves on."""
    url = serve(SERVICE_TIMEOUT=1, SERVICE_WORKERS=1)
    log = tmp_path / "gunicorn.log"
    with socket.create_connection(("127.0.0.1", urlsplit(url).port), CLIENT_TIMEOUT) as sock:
        answer = read_answer(sock)
    assert answer.status in (None, 500)
    assert answer.by in (None, GUNICORN)
    assert "WORKER TIMEOUT" in log.read_text()
    response = requests.get(f"{url}/videos/1", timeout=CLIENT_TIMEOUT)
    assert (response.status_code, response.json()) == (200, SEED)
