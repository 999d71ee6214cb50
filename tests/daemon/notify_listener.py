"""Stands in for systemd's notification socket in the process tests.

notify_listener.py SOCKET LOG PROBE_URL [EXPECT]: binds a Unix datagram socket at SOCKET and
appends each datagram to LOG as one line, "SECONDS MESSAGE" (CLOCK_MONOTONIC, the message's
newlines as spaces). On each READY=1 it fetches PROBE_URL at once and logs "SECONDS PROBE ok" when
it answers 200 (with EXPECT in its body, when given), "SECONDS PROBE fail: WHY" otherwise: a
READY=1 sent before the daemon serves, or before the coordinator knows the host, shows as fail.
"""
import socket
import sys
import time
import urllib.request


def probe(url, expect):
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            body = r.read().decode()
    except Exception as e:  # any failure is the test's finding, logged for it to judge
        return "fail: %s" % e
    if expect and expect not in body:
        return "fail: %r not in %s" % (expect, body[:200])
    return "ok"


def main():
    path, log, url = sys.argv[1:4]
    expect = sys.argv[4] if len(sys.argv) > 4 else ""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(path)
    with open(log, "a", buffering=1) as out:
        while True:
            msg = s.recv(4096).decode()
            now = time.monotonic()
            out.write("%.3f %s\n" % (now, msg.replace("\n", " ")))
            if "READY=1" in msg.split("\n"):
                out.write("%.3f PROBE %s\n" % (time.monotonic(), probe(url, expect)))


main()
