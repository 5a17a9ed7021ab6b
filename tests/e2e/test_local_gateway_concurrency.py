"""The local gateway under many clients at once: every connection is accepted, every request answered.

Issue 10: "the local gateway resets connections when 20 clients connect at once". The listen backlog was
socketserver's default of 5; connections beyond it were dropped (Linux retries the SYN after 1, 3, 7 s) or reset
(other systems). Requests for one function queue at its warm worker, as in one Lambda container at a time.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading

import pytest

from sklambda_infra.local import LocalStack
from sklambda_infra.local.gateway import Gateway, GatewayServer

CLIENTS = 50
REQUESTS_PER_CLIENT = 6


def _echo_gateway() -> Gateway:
    return Gateway([], invoke=lambda *args: None, api_keys=dict, log=lambda line: None)


@pytest.mark.skipif(not hasattr(socket, "TCP_SYNCNT"), reason="needs Linux's TCP_SYNCNT to fail a dropped connect")
def test_fifty_connections_made_before_the_gateway_accepts_any_all_complete_and_are_served():
    # GIVEN a gateway server that listens but has not accepted a connection yet
    server = GatewayServer(_echo_gateway(), port=0)
    sockets: list[socket.socket] = []
    started = False
    try:
        # WHEN 50 clients connect, each giving up after one SYN retry instead of the default six
        for _ in range(CLIENTS):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_SYNCNT, 1)
            sock.connect(("127.0.0.1", server.port))  # a full backlog drops the SYN: this raises TimeoutError
            sockets.append(sock)
        server.start()
        started = True
        # THEN every connection is served once the server accepts (an unknown route: API Gateway's 403)
        for sock in sockets:
            sock.sendall(b"GET /nowhere HTTP/1.1\r\nHost: local\r\nConnection: close\r\n\r\n")
        for sock in sockets:
            with sock.makefile("rb") as answer:
                assert answer.readline().startswith(b"HTTP/1.1 403 ")
    finally:
        for sock in sockets:
            sock.close()
        if started:
            server.stop()
        else:
            server.server_close()


@pytest.fixture
def stack(fixture_stack: LocalStack) -> LocalStack:
    return fixture_stack


def _client(stack: LocalStack, client: int, keep_alive: bool, answers: list, errors: list, start: threading.Barrier):
    """REQUESTS_PER_CLIENT requests on one kept-alive connection, or on a new connection each."""
    host, port = "127.0.0.1", int(stack.api_url.rsplit(":", 1)[1])
    connection = http.client.HTTPConnection(host, port, timeout=60) if keep_alive else None
    start.wait()
    for number in range(REQUESTS_PER_CLIENT):
        conn = connection or http.client.HTTPConnection(host, port, timeout=60)
        try:
            conn.request("GET", f"/probe/report?client={client}&request={number}", headers={"x-api-key": stack.api_key})
            local_port = conn.sock.getsockname()[1]
            response = conn.getresponse()
            answers.append((client, number, keep_alive, local_port, response.status, response.read()))
        except (OSError, http.client.HTTPException) as e:  # ConnectionResetError, RemoteDisconnected, ...
            errors.append((client, number, keep_alive, repr(e)))
            return
        finally:
            if connection is None:
                conn.close()
    if connection is not None:
        connection.close()


@pytest.mark.e2e
def test_fifty_concurrent_clients_with_and_without_keep_alive_get_every_answer_without_a_reset(stack):
    # GIVEN 50 clients released at once: even ones keep one connection alive, odd ones open one per request
    answers: list = []
    errors: list = []
    start = threading.Barrier(CLIENTS)
    threads = [
        threading.Thread(target=_client, args=(stack, c, c % 2 == 0, answers, errors, start)) for c in range(CLIENTS)
    ]
    # WHEN each sends its requests
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    # THEN no connection failed and every request got its own answer
    assert errors == []
    assert len(answers) == CLIENTS * REQUESTS_PER_CLIENT
    for client, number, _, _, status, body in answers:
        assert status == 200, body
        assert json.loads(body)["event"]["queryStringParameters"] == {"client": str(client), "request": str(number)}
    # AND a keep-alive client sent all its requests on one connection, the others on one connection each
    ports = {}
    for client, _, keep_alive, local_port, *_ in answers:
        ports.setdefault((client, keep_alive), set()).add(local_port)
    assert {len(used) for (_, keep_alive), used in ports.items() if keep_alive} == {1}
    assert {len(used) for (_, keep_alive), used in ports.items() if not keep_alive} == {REQUESTS_PER_CLIENT}
    # AND they were served by one warm worker, queued like requests to one Lambda container
    assert len({json.loads(body)["pid"] for *_, body in answers}) == 1


@pytest.mark.parametrize(
    "request_bytes, note",
    [
        (b"POST /x HTTP/1.1\r\nHost: l\r\nContent-Length: abc\r\n\r\n", "bad Content-Length"),
        (b"POST /x HTTP/1.1\r\nHost: l\r\nContent-Length: -1\r\n\r\n", "bad Content-Length"),
        (b'POST /x HTTP/1.1\r\nHost: l\r\nContent-Length: 50\r\n\r\n{"short": 1}', "12 of its 50 declared bytes"),
        (b"POST /x HTTP/1.1\r\nHost: l\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n", "bad chunk size"),
    ],
    ids=["letters", "negative", "short-body", "bad-chunk"],
)
def test_a_body_that_cannot_be_framed_is_a_400_and_never_reaches_a_function(request_bytes, note):
    # GIVEN a gateway whose functions record every call
    calls, logged = [], []
    gateway = Gateway([], invoke=lambda *args: calls.append(args), api_keys=dict, log=logged.append)
    server = GatewayServer(gateway, port=0)
    server.start()
    try:
        # WHEN a client sends a request whose body cannot be delimited, then stops sending
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(request_bytes)
            sock.shutdown(socket.SHUT_WR)
            status_line = sock.makefile("rb").readline()
    finally:
        server.stop()
    # THEN it is answered 400 with a logged reason, and no function is called with a half-read body
    assert status_line.startswith(b"HTTP/1.1 400 ")
    assert not calls and any(note in line for line in logged)
