"""The config stream under a client that does what the protocol does not expect: a ping or an
unsolicited pong does not freeze the stream, a data frame ends only that session, and a client
that never reads is cut off without holding back the others."""
import base64
import json
import os
import socket
import struct
import threading
import time

from conftest import start_coordinator, wait_for

KNOB = "training/control/max_epochs"
TEXT, CLOSE, PING, PONG = 0x1, 0x8, 0x9, 0xA


class WebSocket:
    """A minimal client (RFC 6455) that can send any frame."""

    def __init__(self, c, path, headers, rcvbuf=None):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        s.settimeout(10)
        s.connect((c.host, c.port))
        key = base64.b64encode(os.urandom(16)).decode()
        head = (f"GET {path} HTTP/1.1\r\nHost: {c.host}:{c.port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                f"Sec-WebSocket-Version: 13\r\n")
        s.sendall((head + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n").encode())
        raw = b""
        while b"\r\n\r\n" not in raw:
            chunk = s.recv(1)  # no further: the frames after it stay in the socket
            assert chunk, f"closed during the upgrade: {raw!r}"
            raw += chunk
        assert raw.startswith(b"HTTP/1.1 101"), raw
        self.sock = s

    def send_frame(self, opcode, payload=b""):
        mask = os.urandom(4)
        n = len(payload)
        head = bytes([0x80 | opcode])
        if n < 126:
            head += bytes([0x80 | n])
        elif n < 65536:
            head += bytes([0x80 | 126]) + struct.pack("!H", n)
        else:
            head += bytes([0x80 | 127]) + struct.pack("!Q", n)
        self.sock.sendall(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))

    def _exact(self, n):
        out = b""
        while len(out) < n:
            chunk = self.sock.recv(n - len(out))
            if not chunk:
                raise EOFError("the server closed the connection")
            out += chunk
        return out

    def frame(self, timeout=10.0):
        self.sock.settimeout(timeout)
        b0, b1 = self._exact(2)
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", self._exact(2))[0]
        elif n == 127:
            n = struct.unpack("!Q", self._exact(8))[0]
        return b0 & 0x0F, self._exact(n)

    def wait_for(self, predicate, seconds=10.0, what="a frame"):
        """Reads frames until predicate(opcode, payload) holds; returns that frame."""
        until = time.monotonic() + seconds
        while time.monotonic() < until:
            op, payload = self.frame(max(0.1, until - time.monotonic()))
            if predicate(op, payload):
                return op, payload
        raise AssertionError(f"no {what} within {seconds} s")

    def close(self):
        self.sock.close()


HOST = "stream-host"


def claimed_job(c):
    """A job the test's host holds: only a job's holder may open its stream."""
    status, body = c.worker("POST", "/v1/job/claim",
                            {"worker": HOST, "capability": {"cores": 64, "ram_gib": 64.0}})
    assert status == 200 and body["job"] is not None, body
    return body["job"]["id"]


def open_stream(c, job, rcvbuf=None):
    return WebSocket(c, f"/v1/job/{job}/config/stream?from=0",
                     {"X-Host-Credential": c.enrol(HOST)}, rcvbuf)


def write_config(c, job, value, writes=None):
    status, body = c.operator("POST", f"/v1/job/{job}/config",
                              {"writes": writes or {KNOB: value}, "reason": "test"})
    assert status == 200, body
    return body["revision"]


def is_delta(revision):
    def check(op, payload):
        if op != TEXT:
            return False
        m = json.loads(payload)
        return m["type"] == "delta" and m["revision"] == revision
    return check


def test_a_ping_or_a_pong_does_not_freeze_the_stream(coordinator):
    job = claimed_job(coordinator)
    ws = open_stream(coordinator, job)
    try:
        op, payload = ws.frame()
        assert op == TEXT and json.loads(payload)["type"] == "snapshot", payload
        ws.send_frame(PING, b"are you there")
        ws.wait_for(lambda op, p: op == PONG and p == b"are you there", what="the pong")
        rev = write_config(coordinator, job, 3)
        ws.wait_for(is_delta(rev), what=f"the delta of revision {rev} after a ping")
        ws.send_frame(PONG, b"unsolicited")
        rev = write_config(coordinator, job, 4)
        ws.wait_for(is_delta(rev), what=f"the delta of revision {rev} after a pong")
        # Keepalives go on too.
        ws.wait_for(lambda op, p: op == TEXT and json.loads(p)["type"] == "keepalive",
                    what="a keepalive")
        # A data frame is not part of the protocol: the session ends (a close), promptly.
        ws.send_frame(TEXT, b"hello")
        ws.wait_for(lambda op, p: op == CLOSE, what="the close after a data frame")
    finally:
        ws.close()
    # Another stream for the same job is served as before.
    again = open_stream(coordinator, job)
    try:
        op, payload = again.frame()
        assert json.loads(payload)["type"] == "snapshot"
    finally:
        again.close()


def tcp_state(s):
    return s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)[0]


TCP_ESTABLISHED = 1
TCP_CLOSE = 7


def test_a_client_that_never_reads_is_cut_off_and_holds_back_no_other(procs, tmp):
    c = start_coordinator(procs, tmp,
                          extra_args=("--http-transfer-timeout", "2", "--stale-after", "600"))
    job = claimed_job(c)
    stuck = open_stream(c, job, rcvbuf=4096)  # reads nothing after the upgrade
    good = open_stream(c, job)
    received = []
    stop = threading.Event()

    def reader():
        try:
            while not stop.is_set():
                op, payload = good.frame(timeout=30)
                if op == TEXT:
                    received.append(json.loads(payload))
        except (EOFError, OSError):
            pass

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    try:
        # Writes that touch every numeric knob make deltas of a few hundred bytes each.
        value = 0
        last = 0
        started = time.monotonic()
        while tcp_state(stuck.sock) == TCP_ESTABLISHED:
            assert time.monotonic() - started < 90, "the stuck client was never cut off"
            value += 1
            last = write_config(c, job, value, {
                KNOB: 2 + value % 50,
                "training/control/batch_size": 1 + value % 64,
                "training/control/eval_every": value % 100,
                "training/control/checkpoint_every": value % 100,
                "training/optimizer/learning_rate": 0.001 * (1 + value % 9),
                "training/optimizer/momentum": 0.01 * (value % 90),
                "training/optimizer/weight_decay": 0.001 * (value % 10),
                "training/regularization/dropout": 0.01 * (value % 50)})
            # The other stream keeps up while the stuck one's backlog grows.
            if value % 50 == 0:
                wait_for(lambda: any(m.get("revision") == last and m["type"] == "delta"
                                     for m in received), 10, f"revision {last} on the good stream")
        # Cut off with a reset: its backlog is dropped, not kept for a reader that never comes.
        assert tcp_state(stuck.sock) == TCP_CLOSE, f"TCP state {tcp_state(stuck.sock)}"
        final = write_config(c, job, value + 1)
        wait_for(lambda: any(m.get("revision") == final and m["type"] == "delta"
                             for m in received), 10, f"revision {final} on the good stream")
    finally:
        stop.set()
        stuck.close()
        good.close()
    assert c.alive()
