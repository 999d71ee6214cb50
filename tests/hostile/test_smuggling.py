"""Request smuggling (RFC 9112): a request whose framing is ambiguous gets one error reply and
the connection is closed, so that a second request hidden in its body never reaches a handler."""
import json
import socket

import pytest

KNOB = "training/control/max_epochs"


def job_id(c, name):
    status, body = c.request("GET", f"/v1/jobs/{name}")
    assert status == 200, body
    return body["spec"]["id"]


def revision(c, job):
    status, body = c.request("GET", f"/v1/job/{job}/config")
    assert status == 200, body
    return body["revision"]


def inner_request(c, job):
    """A config write that, were it ever parsed, would move the job's config revision."""
    body = json.dumps({"writes": {KNOB: 7}, "reason": "smuggled"}).encode()
    return (f"POST /v1/job/{job}/config HTTP/1.1\r\nHost: x\r\n"
            f"X-Operator-Token: {c.operator_token}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


def exchange(c, data, timeout=5.0):
    """Sends `data`, then reads until the coordinator closes the connection."""
    s = c.connect(timeout)
    s.sendall(data)
    out = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
    except ConnectionResetError:
        pass
    except socket.timeout:
        raise AssertionError(f"the connection was left open; got {out!r}")
    finally:
        s.close()
    return out


def replies(raw):
    """The status codes of the responses in `raw` (each a head, then its Content-Length body)."""
    codes = []
    while raw:
        head, sep, rest = raw.partition(b"\r\n\r\n")
        assert sep, f"a truncated response: {raw!r}"
        lines = head.split(b"\r\n")
        codes.append(int(lines[0].split()[1]))
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        body, raw = rest[:length], rest[length:]
        json.loads(body)  # every error is JSON
    return codes


def outer(path, *headers, version="HTTP/1.1"):
    return (f"POST {path} {version}\r\n" + "".join(h + "\r\n" for h in headers) + "\r\n").encode()


def smuggled_shapes(c, job):
    inner = inner_request(c, job)
    path = f"/v1/job/{job}/config"
    chunked_inner = b"0\r\n\r\n" + inner
    n = len(inner)
    return {
        "te-gzip": (outer(path, "Host: x", "Transfer-Encoding: gzip") + inner, {501}),
        "te-chunked-identity": (outer(path, "Host: x", "Transfer-Encoding: chunked, identity")
                                + inner, {400, 501}),
        "te-space-before-colon": (outer(path, "Host: x", "Transfer-Encoding : chunked")
                                  + chunked_inner, {400}),
        "te-then-cl": (outer(path, "Host: x", "Transfer-Encoding: chunked", f"Content-Length: {n}")
                       + chunked_inner, {400}),
        "cl-then-te": (outer(path, "Host: x", f"Content-Length: {n}", "Transfer-Encoding: chunked")
                       + chunked_inner, {400}),
        "te-twice": (outer(path, "Host: x", "Transfer-Encoding: chunked",
                           "Transfer-Encoding: chunked") + chunked_inner, {400}),
        "te-chunked-chunked": (outer(path, "Host: x", "Transfer-Encoding: chunked, chunked")
                               + chunked_inner, {400}),
        "te-xchunked": (outer(path, "Host: x", "Transfer-Encoding: xchunked") + inner, {501}),
        "te-in-http10": (outer(path, "Host: x", "Transfer-Encoding: chunked", version="HTTP/1.0")
                         + chunked_inner, {400}),
        "te-obs-fold": (outer(path, "Host: x", "Transfer-Encoding: gzip", " chunked") + inner,
                        {400, 501}),
        "cl-twice-differing": (outer(path, "Host: x", "Content-Length: 0", f"Content-Length: {n}")
                               + inner, {400}),
        "cl-twice-same": (outer(path, "Host: x", "Content-Length: 0", "Content-Length: 0")
                          + inner, {400}),
        "cl-list": (outer(path, "Host: x", f"Content-Length: 0, {n}") + inner, {400}),
        "no-host": (outer(path, "Content-Length: 0") + inner, {400}),
        "bare-lf": (outer(path, "Host: x", "Content-Length: 0").replace(b"\r\n", b"\n") + inner,
                    {400}),
        "http-2": (outer(path, "Host: x", "Content-Length: 0", version="HTTP/2.0") + inner,
                   {400}),
    }


def test_the_inner_request_is_valid_when_sent_alone(coordinator):
    """The control: the request the other tests hide does move the revision when sent plainly."""
    job = job_id(coordinator, "beta")
    before = revision(coordinator, job)
    plain = inner_request(coordinator, job).replace(b"Host: x\r\n",
                                                    b"Host: x\r\nConnection: close\r\n")
    codes = replies(exchange(coordinator, plain))
    assert codes == [200]
    assert revision(coordinator, job) == before + 1


@pytest.mark.parametrize("shape", [
    "te-gzip", "te-chunked-identity", "te-space-before-colon", "te-then-cl", "cl-then-te",
    "te-twice", "te-chunked-chunked", "te-xchunked", "te-in-http10", "te-obs-fold",
    "cl-twice-differing", "cl-twice-same", "cl-list", "no-host", "bare-lf", "http-2"])
def test_an_ambiguous_request_gets_one_reply_and_the_hidden_one_never_runs(coordinator, shape):
    job = job_id(coordinator, "alpha")
    before = revision(coordinator, job)
    data, expected = smuggled_shapes(coordinator, job)[shape]
    codes = replies(exchange(coordinator, data))
    assert len(codes) == 1, f"{shape}: {len(codes)} responses ({codes})"
    assert codes[0] in expected, f"{shape}: status {codes[0]}, expected one of {expected}"
    assert revision(coordinator, job) == before, f"{shape}: the hidden request ran"
    assert coordinator.request("GET", "/v1/health")[0] == 200
