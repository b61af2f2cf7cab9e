"""Broken or stalled HTTP, sent over raw sockets to the service under the real gunicorn."""

import json
import socket
from urllib.parse import urlsplit

import pytest
import requests

SEED = {"name": "HelloWorld", "views": 147, "likes": 3}
PUT_HEAD = b"PUT /videos/1 HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
BODY = json.dumps({"name": "Cats", "views": 10, "likes": 2}).encode()
SIZE = b"%x" % len(BODY)


def exchange(url: str, request: bytes) -> tuple[int, bytes]:
    """Send `request` on a new connection, half-close it, read the whole answer: its status
    and its body."""
    address = urlsplit(url)
    with socket.create_connection((address.hostname, address.port), timeout=10) as sock:
        sock.sendall(request)
        sock.shutdown(socket.SHUT_WR)
        answer = b""
        while data := sock.recv(65536):
            answer += data
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


@pytest.mark.parametrize(
    "chunks",
    [
        pytest.param(b"zz\r\n" + BODY + b"\r\n0\r\n\r\n", id="size-not-hex"),
        pytest.param(b"-1\r\n" + BODY + b"\r\n0\r\n\r\n", id="size-negative"),
        pytest.param(SIZE + b"\r\n" + BODY + b"garbage\r\n0\r\n\r\n", id="garbage-after-data"),
        pytest.param(SIZE + b"\r\n" + BODY + b"0\r\n\r\n", id="no-crlf-after-data"),
        pytest.param(SIZE + b"\r\n" + BODY + b"\r\n0\r\n", id="no-crlf-after-last-chunk"),
        pytest.param(SIZE + b"\r\n" + BODY[:10], id="cut-off-in-a-chunk"),
    ],
)
def test_malformed_chunked_body_is_400_json_and_one_log_line(serve, tmp_path, chunks):
    url = serve(CACHE_BACKEND="none")
    log = tmp_path / "gunicorn.log"
    logged_before = len(log.read_bytes())
    status, answer = exchange(url, PUT_HEAD + b"Transfer-Encoding: chunked\r\n\r\n" + chunks)
    assert status == 400
    assert json.loads(answer)["message"]
    assert requests.get(f"{url}/videos/1", timeout=10).json() == SEED
    logged = log.read_text()[logged_before:]
    assert "Traceback" not in logged
    # gunicorn's own INFO lines (a worker booting) may land here too.
    assert len([line for line in logged.splitlines() if "[INFO]" not in line]) == 1


def test_body_shorter_than_its_content_length_is_400_and_stores_nothing(serve):
    url = serve(CACHE_BACKEND="none")
    announced = b"Content-Length: %d\r\n\r\n" % (len(BODY) + 10)
    status, answer = exchange(url, PUT_HEAD + announced + BODY)
    assert status == 400
    assert "Content-Length" in json.loads(answer)["message"]
    assert requests.get(f"{url}/videos/1", timeout=10).json() == SEED


@pytest.mark.parametrize(
    "stalled",
    [
        pytest.param(b"GET /videos/1 HTTP/1.1\r\nHost: 127.0.0.1\r\n", id="part-of-the-headers"),
        pytest.param(
            PUT_HEAD + b"Content-Length: %d\r\n\r\n" % len(BODY) + BODY[:10], id="part-of-the-body"
        ),
    ],
)
def test_a_silent_client_holds_the_only_worker_no_longer_than_the_timeout(serve, stalled):
    url = serve(SERVICE_WORKERS=1, SERVICE_TIMEOUT=2)
    address = urlsplit(url)
    with socket.create_connection((address.hostname, address.port)) as silent:
        silent.sendall(stalled)
        # The one worker takes the silent connection first and the GET queues behind it,
        # to be answered once the timeout has dropped the silent client (not within the
        # client's 30 s when the timeout was a fixed 90 s).
        response = requests.get(f"{url}/videos/1", timeout=30)
    assert response.status_code == 200
