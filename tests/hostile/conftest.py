"""The hostile suite's harness: real processes on 127.0.0.1, stdlib only.

`coordinator` starts `trainvisor coordinator` (from $TRAINVISOR) on a fresh data directory with a
small manifest and yields a Coordinator: its URL, host, port, tokens and helpers for requests.
Host calls carry a host's credential (X-Host-Credential), enrolled with the worker token the
first time a test acts as that host (Coordinator.enrol, .as_host, .worker).
Every process a test starts through `spawn` is killed when the test ends.
"""
import http.client
import json
import os
import signal
import socket
import subprocess
import tempfile
import time

import pytest

TRAINVISOR = os.environ.get("TRAINVISOR", "")
# The daemons' human log lines, which these tests read (their stderr is a file, where the
# default would be JSON lines).
os.environ["TRAINVISOR_LOG_FORMAT"] = "text"

MANIFEST = """
[[jobs]]
name = "alpha"
model = "tiny"
seed = 1
[jobs.hyper]
training.control.max_epochs = 2

[[jobs]]
name = "beta"
model = "tiny"
seed = 2
[jobs.hyper]
training.control.max_epochs = 2
"""


def wait_for(predicate, seconds, what):
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {seconds} s waiting for {what}")


class Processes:
    def __init__(self):
        self.procs = []

    def spawn(self, args, **kwargs):
        p = subprocess.Popen(args, start_new_session=True, **kwargs)
        self.procs.append(p)
        return p

    def kill_all(self):
        for p in self.procs:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                p.wait()


class Coordinator:
    """A running coordinator and the ways a test talks to it."""

    def __init__(self, url, data_dir, log_path, proc, env):
        self.url = url
        self.host, port = url.rsplit("//", 1)[1].rsplit(":", 1)
        self.port = int(port)
        self.data_dir = data_dir
        self.log_path = log_path
        self.proc = proc
        self.env = env
        self.operator_token = env["TRAINVISOR_OPERATOR_TOKEN"]
        self.worker_token = env["TRAINVISOR_WORKER_TOKEN"]
        self.credentials = {}  # host name -> "NAME:SECRET", enrolled by enrol()
        self.last_host = "hostile-host"

    def log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def alive(self):
        return self.proc.poll() is None

    def connect(self, timeout=5.0):
        s = socket.create_connection((self.host, self.port), timeout=timeout)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return s

    def request(self, method, path, body=None, headers=None, timeout=10.0):
        """One request on a fresh connection: (status, parsed JSON body or raw text)."""
        c = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            data = body
            if body is not None and not isinstance(body, (bytes, str)):
                data = json.dumps(body)
            c.request(method, path, body=data, headers=headers or {})
            r = c.getresponse()
            raw = r.read()
            try:
                return r.status, json.loads(raw)
            except ValueError:
                return r.status, raw.decode(errors="replace")
        finally:
            c.close()

    def operator(self, method, path, body=None):
        return self.request(method, path, body, {"X-Operator-Token": self.operator_token})

    def enrol(self, name):
        """Host `name`'s credential, enrolled with the worker token on first use."""
        if name not in self.credentials:
            status, reply = self.request("POST", f"/v1/hosts/{name}/enrol", {},
                                         {"X-Worker-Token": self.worker_token})
            assert status == 200, f"enrolment of {name}: {status} {reply}"
            self.credentials[name] = reply["credential"]
        return self.credentials[name]

    def as_host(self, name, method, path, body=None, headers=None):
        """A host call with `name`'s credential (enrolled on first use)."""
        h = {"X-Host-Credential": self.enrol(name)}
        h.update(headers or {})
        return self.request(method, path, body, h)

    def worker(self, method, path, body=None, headers=None, host=None):
        """A host call as `host`; by default the host the body names ("worker" of a claim,
        "host" of a telemetry batch), else the host of the previous call."""
        if host is None and isinstance(body, dict):
            host = body.get("worker") or body.get("host")
        self.last_host = host or self.last_host
        return self.as_host(self.last_host, method, path, body, headers)

    def cli(self, *args, check=True):
        """Runs the trainvisor CLI against this coordinator."""
        env = dict(self.env, TRAINVISOR_COORDINATOR=self.url)
        r = subprocess.run([TRAINVISOR, *args], env=env, capture_output=True, text=True,
                           timeout=60)
        if check and r.returncode != 0:
            raise AssertionError(f"trainvisor {' '.join(args)} failed: {r.stderr}")
        return r


def start_coordinator(procs, tmp, manifest=MANIFEST, extra_args=(), env_extra=None, prefix=()):
    """Starts a coordinator on TMP/data; `prefix` runs it through another command (nsenter)."""
    if not TRAINVISOR:
        pytest.fail("TRAINVISOR is not set: the suite needs the trainvisor binary")
    data_dir = os.path.join(tmp, "data")
    manifest_path = os.path.join(tmp, "fleet.toml")
    with open(manifest_path, "w") as f:
        f.write(manifest)
    env = dict(os.environ, TRAINVISOR_OPERATOR_TOKEN="op-token-hostile",
               TRAINVISOR_WORKER_TOKEN="wk-token-hostile")
    env.update(env_extra or {})
    url_path, log_path = os.path.join(tmp, "url"), os.path.join(tmp, "coordinator.log")
    with open(url_path, "w") as out, open(log_path, "w") as err:
        proc = procs.spawn([*prefix, TRAINVISOR, "coordinator", "--data-dir", data_dir,
                            "--manifest", manifest_path, *extra_args], stdout=out, stderr=err,
                           env=env)

    def url():
        if proc.poll() is not None:
            with open(log_path) as f:
                raise AssertionError(f"coordinator exited {proc.returncode}: {f.read()}")
        with open(url_path) as f:
            line = f.readline().strip()
        return line if line.endswith(tuple("0123456789")) else None

    return Coordinator(wait_for(url, 20, "the coordinator's URL"), data_dir, log_path, proc, env)


@pytest.fixture
def procs():
    p = Processes()
    yield p
    p.kill_all()


@pytest.fixture
def tmp():
    with tempfile.TemporaryDirectory(prefix="tv-hostile-") as d:
        yield d


@pytest.fixture
def coordinator(procs, tmp):
    c = start_coordinator(procs, tmp)
    yield c
    assert c.alive(), f"the coordinator died during the test: {c.log()}"
