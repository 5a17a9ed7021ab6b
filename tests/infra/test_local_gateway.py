"""The local API gateway's framing and accept backlog, on a gateway with a stand-in function: no stack."""

from __future__ import annotations

import socket
import time

import pytest

from sklambda_infra.local.gateway import Gateway, GatewayServer

CLIENTS = 50


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
        # The handler logs after it has written the answer: give its thread the time to (a busy machine delays it).
        deadline = time.monotonic() + 5
        while not any(note in line for line in logged) and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        server.stop()
    # THEN it is answered 400 with a logged reason, and no function is called with a half-read body
    assert status_line.startswith(b"HTTP/1.1 400 ")
    assert not calls and any(note in line for line in logged)
