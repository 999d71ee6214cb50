"""Connections that hold on without asking anything: 600 sockets that are silent, trickle a
request head one byte a second, or send a head and then trickle its body. The coordinator keeps
answering others at once, spends no thread per connection, and its deadlines cut the slow ones
off; one address cannot take more than its share of connections."""
import http.client
import resource
import selectors
import socket
import time

from conftest import start_coordinator

HEAD_TIMEOUT = 6.0
TRANSFER_TIMEOUT = 6.0
PER_KIND = 200
SOURCES = [f"127.0.0.{i}" for i in range(2, 22)]  # 20 addresses: 30 connections each


def raise_fd_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def proc_status(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            out[key] = value.split()
    return int(out["Threads"][0]), int(out["VmRSS"][0]) * 1024


def connect_from(c, source):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((source, 0))
    s.settimeout(5)
    s.connect((c.host, c.port))
    s.setblocking(False)
    return s


def health_latencies(c, tries):
    out = []
    for _ in range(tries):
        t0 = time.monotonic()
        conn = http.client.HTTPConnection(c.host, c.port, timeout=5)
        conn.request("GET", "/v1/health")
        r = conn.getresponse()
        r.read()
        conn.close()
        out.append(time.monotonic() - t0)
        assert r.status == 200
    return sorted(out)


class Hostiles:
    """The hostile sockets and when each was closed by the coordinator."""

    def __init__(self, c):
        self.sel = selectors.DefaultSelector()
        self.opened = time.monotonic()
        self.kinds = {}
        self.closed_at = {}
        self.trickle = {}  # socket -> bytes still to send one a second
        head = b"GET /v1/health HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"y" * 60 + b"\r\n\r\n"
        body_head = (b"POST /v1/job/anything/config HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Length: 1000\r\n\r\n")
        for i in range(3 * PER_KIND):
            s = connect_from(c, SOURCES[i % len(SOURCES)])
            kind = ("silent", "slow-head", "slow-body")[i % 3]
            self.kinds[s] = kind
            if kind == "slow-head":
                self.trickle[s] = head
            elif kind == "slow-body":
                s.send(body_head)
                self.trickle[s] = b"{" * 1000
            self.sel.register(s, selectors.EVENT_READ)

    def pump(self, seconds):
        """Sends one byte a second on each trickling socket and notes the closed ones."""
        until = time.monotonic() + seconds
        next_byte = time.monotonic()
        while time.monotonic() < until:
            if time.monotonic() >= next_byte:
                for s, rest in list(self.trickle.items()):
                    if s in self.closed_at or not rest:
                        continue
                    try:
                        s.send(rest[:1])
                        self.trickle[s] = rest[1:]
                    except OSError:
                        self.note_closed(s)
                next_byte += 1.0
            for key, _ in self.sel.select(timeout=0.05):
                try:
                    data = key.fileobj.recv(4096)
                except OSError:
                    data = b""
                if not data:
                    self.note_closed(key.fileobj)

    def note_closed(self, s):
        if s not in self.closed_at:
            self.closed_at[s] = time.monotonic() - self.opened
            self.sel.unregister(s)

    def open_count(self, kind):
        return sum(1 for s, k in self.kinds.items() if k == kind and s not in self.closed_at)

    def close(self):
        for s in self.kinds:
            s.close()


def test_hostile_connections_cost_no_threads_and_no_service(procs, tmp):
    raise_fd_limit()
    c = start_coordinator(procs, tmp, extra_args=(
        "--http-head-timeout", str(HEAD_TIMEOUT), "--http-transfer-timeout",
        str(TRANSFER_TIMEOUT)))
    health_latencies(c, 5)  # warm
    threads_before, rss_before = proc_status(c.proc.pid)
    h = Hostiles(c)
    try:
        h.pump(1.0)
        assert h.open_count("silent") == PER_KIND
        assert h.open_count("slow-head") == PER_KIND
        assert h.open_count("slow-body") == PER_KIND
        latencies = health_latencies(c, 100)
        threads, rss = proc_status(c.proc.pid)
        # Everything was still open while the coordinator answered.
        assert len(h.closed_at) == 0, f"{len(h.closed_at)} closed before their deadline"
        p99 = latencies[98]
        assert p99 < 0.100, f"health p99 {p99 * 1000:.1f} ms with 600 hostile connections open"
        assert threads < 40, f"{threads} threads (before: {threads_before})"
        assert rss - rss_before < 100 << 20, f"RSS grew by {(rss - rss_before) >> 20} MiB"

        # The trickling ones are cut off by their deadlines; the silent ones wait for the idle
        # timeout (60 s) and cost nothing meanwhile.
        h.pump(HEAD_TIMEOUT + 6.0)
        for s, kind in h.kinds.items():
            if kind == "silent":
                assert s not in h.closed_at, "a silent connection was closed before idle_timeout"
                continue
            assert s in h.closed_at, f"a {kind} connection is still open"
            assert h.closed_at[s] < HEAD_TIMEOUT + 4.0, (
                f"a {kind} connection closed after {h.closed_at[s]:.1f} s")
            assert h.closed_at[s] > HEAD_TIMEOUT - 1.0, (
                f"a {kind} connection closed after {h.closed_at[s]:.1f} s, before its deadline")
        assert health_latencies(c, 3)
    finally:
        h.close()
    assert c.alive()


def test_one_address_cannot_take_every_connection(procs, tmp):
    raise_fd_limit()
    c = start_coordinator(procs, tmp, extra_args=("--http-max-connections-per-peer", "8"))
    mine = [connect_from(c, "127.0.0.50") for _ in range(8)]
    try:
        extra = connect_from(c, "127.0.0.50")
        extra.setblocking(True)
        extra.settimeout(5)
        reply = b""
        while True:
            data = extra.recv(4096)
            if not data:
                break
            reply += data
        assert reply.startswith(b"HTTP/1.1 503"), reply
        assert b"too many connections from 127.0.0.50 (8)" in reply, reply
        extra.close()
        # Another address, and loopback itself, are served.
        other = http.client.HTTPConnection(c.host, c.port, timeout=5)
        other.request("GET", "/v1/health")
        assert other.getresponse().status == 200
        other.close()
    finally:
        for s in mine:
            s.close()
    # Once they are gone, the address is served again.
    time.sleep(0.5)
    again = connect_from(c, "127.0.0.50")
    again.setblocking(True)
    again.settimeout(5)
    again.sendall(b"GET /v1/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert again.recv(4096).startswith(b"HTTP/1.1 200")
    again.close()
