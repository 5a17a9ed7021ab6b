"""The local gateway under many clients at once: every connection is accepted, every request answered.

Issue 10: "the local gateway resets connections when 20 clients connect at once". The listen backlog was
socketserver's default of 5; connections beyond it were dropped (Linux retries the SYN after 1, 3, 7 s) or reset
(other systems). Requests for one function queue at its warm worker, as in one Lambda container at a time.
"""

from __future__ import annotations

import http.client
import json
import threading

import pytest

from sklambda_infra.local import LocalStack
from sklambda_infra.local.gateway import Gateway

CLIENTS = 50
REQUESTS_PER_CLIENT = 6


def _echo_gateway() -> Gateway:
    return Gateway([], invoke=lambda *args: None, api_keys=dict, log=lambda line: None)


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
