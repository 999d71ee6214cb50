"""Every request gets an answer: bytes that are not UTF-8, in the path, the query, a header or a
JSON body, get a 4xx reply whose body is valid UTF-8 JSON naming the problem, and the connection
then serves the next request or is closed cleanly."""
import json

import pytest


def read_response(s):
    """One response from `s`: (status, body bytes); None when the connection closed first."""
    raw = b""
    while b"\r\n\r\n" not in raw:
        chunk = s.recv(65536)
        if not chunk:
            assert raw == b"", f"a truncated response head: {raw!r}"
            return None
        raw += chunk
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        chunk = s.recv(65536)
        assert chunk, "the connection closed inside a response body"
        body += chunk
    return int(lines[0].split()[1]), body[:length]


def job_id(c, name):
    status, body = c.request("GET", f"/v1/jobs/{name}")
    assert status == 200, body
    return body["spec"]["id"]


def cases(c):
    job = job_id(c, "alpha")
    op = f"X-Operator-Token: {c.operator_token}\r\n".encode()
    wk = f"X-Worker-Token: {c.worker_token}\r\n".encode()

    def req(method, target, headers=b"", body=None):
        out = method.encode() + b" " + target + b" HTTP/1.1\r\nHost: x\r\n" + headers
        if body is not None:
            out += b"Content-Type: application/json\r\nContent-Length: " + \
                str(len(body)).encode() + b"\r\n"
        return out + b"\r\n" + (body or b"")

    jobb = job.encode()
    return {
        "raw-path": req("GET", b"/v1/\xff\xfe/x"),
        "encoded-path": req("GET", b"/v1/job/%FF%FEjob/config"),
        "encoded-ref": req("GET", b"/v1/jobs/%C3%28abc"),
        "raw-path-param": req("GET", b"/v1/job/\xc3\x28\xa0/explain"),
        "encoded-query": req("GET", b"/v1/jobs?status=%FF"),
        "raw-query": req("GET", b"/v1/job/" + jobb + b"/config/log?after=\xff\xfe"),
        "operator-token": req("POST", b"/v1/job/" + jobb + b"/cancel",
                              b"X-Operator-Token: \xff\xfe\r\n", b"{}"),
        "worker-token": req("POST", b"/v1/job/claim", b"X-Worker-Token: \xc0\xaf\r\n", b"{}"),
        "lease-token": req("POST", b"/v1/job/" + jobb + b"/heartbeat",
                           wk + b"X-Lease-Token: \xed\xa0\x80\r\n", b"{}"),
        "config-write-key": req("POST", b"/v1/job/" + jobb + b"/config", op,
                                b'{"writes": {"\xff\xfe": 1}, "reason": "x"}'),
        "config-write-reason": req("POST", b"/v1/job/" + jobb + b"/config", op,
                                   b'{"writes": {"training/control/max_epochs": 3}, '
                                   b'"reason": "\xf8\x88\x80\x80\x80"}'),
        "claim-worker": req("POST", b"/v1/job/claim", wk, b'{"worker": "\xc3"}'),
        "freeze-prefix": req("POST", b"/v1/job/" + jobb + b"/config/freeze", op,
                             b'{"prefix": "\xe2\x82"}'),
        "fail-reason": req("POST", b"/v1/job/" + jobb + b"/fail", wk,
                           b'{"reason": "\xfe"}'),
    }


NAMES = ["raw-path", "encoded-path", "encoded-ref", "raw-path-param", "encoded-query",
         "raw-query", "operator-token", "worker-token", "lease-token", "config-write-key",
         "config-write-reason", "claim-worker", "freeze-prefix", "fail-reason"]


@pytest.mark.parametrize("name", NAMES)
def test_bytes_that_are_not_utf8_get_a_json_answer(coordinator, name):
    data = cases(coordinator)[name]
    s = coordinator.connect(timeout=10)
    try:
        s.sendall(data)
        got = read_response(s)
        assert got is not None, f"{name}: the connection closed without a response"
        status, body = got
        assert 400 <= status < 500, f"{name}: status {status}: {body!r}"
        text = body.decode("utf-8")  # strict: a reply is valid UTF-8
        reply = json.loads(text)
        assert reply["status"] == status and reply["error"], reply
        # The connection serves the next request, or was closed cleanly after the reply.
        try:
            s.sendall(b"GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n")
            nxt = read_response(s)
        except (ConnectionResetError, BrokenPipeError):
            nxt = None
        assert nxt is None or nxt[0] == 200, f"{name}: then {nxt}"
    finally:
        s.close()
    assert coordinator.request("GET", "/v1/health")[0] == 200
