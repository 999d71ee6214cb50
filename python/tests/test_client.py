"""The coordinator client against a real `trainvisor coordinator` process ($TRAINVISOR) on
127.0.0.1 with a two-job manifest. A job's host is played by the test itself (enrolment with the
worker token, claim, telemetry over raw HTTP), so that the job is claimed or running without a
trainer and every reply is known."""

import contextlib
import json
import os
import socket
import subprocess
import time
import urllib.request

import pytest

from trainvisor import Coordinator, CoordinatorError, CoordinatorUnreachable

TRAINVISOR = os.environ.get("TRAINVISOR", "")
OPERATOR_TOKEN, WORKER_TOKEN = "op-token-client", "wk-token-client"
LR = "training/optimizer/learning_rate"
MANIFEST = """
[[jobs]]
name = "alpha"
model = "tiny"
seed = 1
priority = 5
[[jobs]]
name = "beta"
model = "tiny"
seed = 2
"""


@contextlib.contextmanager
def coordinator_process(tmp, *extra_args):
    """A coordinator on TMP/data serving MANIFEST; yields the URL it printed."""
    if not TRAINVISOR:
        pytest.fail("TRAINVISOR is not set: these tests need the trainvisor binary")
    (tmp / "fleet.toml").write_text(MANIFEST)
    env = dict(os.environ, TRAINVISOR_OPERATOR_TOKEN=OPERATOR_TOKEN,
               TRAINVISOR_WORKER_TOKEN=WORKER_TOKEN)
    with open(tmp / "url", "w") as out, open(tmp / "coordinator.log", "w") as err:
        proc = subprocess.Popen([TRAINVISOR, "coordinator", "--data-dir", str(tmp / "data"),
                                 "--manifest", str(tmp / "fleet.toml"), "--port", "0",
                                 *extra_args], stdout=out, stderr=err, env=env)
    try:
        until = time.monotonic() + 20
        while not (tmp / "url").read_text().strip():
            assert proc.poll() is None, (tmp / "coordinator.log").read_text()
            assert time.monotonic() < until, "the coordinator never printed its URL"
            time.sleep(0.05)
        yield (tmp / "url").read_text().splitlines()[0].strip()
        assert proc.poll() is None, "the coordinator died: " + (tmp / "coordinator.log").read_text()
    finally:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def url(tmp_path_factory):
    with coordinator_process(tmp_path_factory.mktemp("coordinator")) as u:
        yield u


def host_call(url, path, body, headers):
    request = urllib.request.Request(url + path, data=json.dumps(body).encode(),
                                     headers=headers, method="POST")
    with urllib.request.urlopen(request, timeout=10) as reply:
        return json.loads(reply.read())


@pytest.fixture(scope="module")
def running(url):
    """alpha (the higher priority), claimed and running by host h1, with two telemetry points:
    its id."""
    credential = host_call(url, "/v1/hosts/h1/enrol", {},
                           {"X-Worker-Token": WORKER_TOKEN})["credential"]
    as_host = {"X-Host-Credential": credential}
    claim = host_call(url, "/v1/job/claim",
                      {"worker": "h1", "capability": {"cores": 2, "ram_gib": 4.0}}, as_host)
    job = claim["job"]["id"]
    assert claim["job"]["name"] == "alpha"
    host_call(url, f"/v1/job/{job}/running", {"lease_token": claim["lease_token"]}, as_host)
    points = [{"step": s, "epoch": 0, "flags": 0, "wall_time_ns": 0, "loss": 1.0 / s,
               "grad_norm": 2.0, "config_revision": 1} for s in (10, 20)]
    host_call(url, f"/v1/job/{job}/telemetry", {"host": "h1", "points": points}, as_host)
    return job


def operator(url, name="ana"):
    return Coordinator(url, operator_token=OPERATOR_TOKEN, operator_name=name)


def supervisor(url):
    return Coordinator(url, worker_token=WORKER_TOKEN)


def test_jobs_are_listed_by_status_and_found_by_name_or_id_prefix(url, running):
    c = Coordinator(url)
    assert sorted(j["name"] for j in c.jobs()) == ["alpha", "beta"]
    assert [j["name"] for j in c.jobs("running")] == ["alpha"]
    assert [j["name"] for j in c.jobs("pending")] == ["beta"]
    assert c.job("alpha")["id"] == running
    assert c.job(running[:8])["name"] == "alpha"
    with pytest.raises(CoordinatorError) as e:
        c.job("gamma")
    assert e.value.status == 404 and "gamma" in e.value.message
    with pytest.raises(CoordinatorError) as e:
        c.jobs("sleeping")
    assert e.value.status == 400 and "sleeping" in e.value.message


def test_the_operator_reads_and_writes_the_config(url, running):
    c = operator(url)
    before = c.config(running)
    reply = c.set_config(running, {LR: 0.02, "training/control/max_epochs": 7}, "slower")
    assert reply == {"revision": before["revision"] + 1, "actor": "human:ana"}
    after = c.config(running)
    assert after["values"][LR] == 0.02 and after["values"]["training/control/max_epochs"] == 7
    entries = c.config_log(running, after=0, limit=1000)
    assert {(e["path"], e["reason"], e["actor"]) for e in entries[-2:]} == {
        (LR, "slower", "human:ana"), ("training/control/max_epochs", "slower", "human:ana")}
    # A key the trainer does not have is refused by name, and nothing changes.
    with pytest.raises(CoordinatorError) as e:
        c.set_config(running, {"training/optimizer/learning_rat": 0.1}, "typo")
    assert e.value.status == 400 and "training/optimizer/learning_rat" in e.value.message
    assert c.config(running)["revision"] == after["revision"]


def test_a_freeze_refuses_a_policy_write_with_the_hubs_reason_and_the_log_shows_it(url, running):
    op, policy = operator(url), supervisor(url)
    assert op.freeze(running, "training/optimizer") == ["training/optimizer"]
    try:
        decided_from = policy.config(running)["revision"]
        with pytest.raises(CoordinatorError) as e:
            policy.set_config(running, {LR: 0.01}, "loss flat", policy="py-test",
                              decided_from=decided_from)
        assert e.value.status == 409
        assert "under the frozen prefix training/optimizer" in e.value.message, e.value.message
        last = op.config_log(running, limit=1000)[-1]
        assert (last["actor"], last["accepted"], last["new"]) == ("policy:py-test", False, 0.01)
        assert "frozen prefix training/optimizer" in last["refusal"]
        # A human's write lands under the freeze.
        assert op.set_config(running, {LR: 0.03}, "by hand")["actor"] == "human:ana"
    finally:
        assert op.unfreeze(running, "training/optimizer") == []
    # Unfrozen, a decision made before the human's write is refused: the human's value stands.
    with pytest.raises(CoordinatorError) as e:
        policy.set_config(running, {LR: 0.01}, "loss flat", policy="py-test",
                          decided_from=decided_from)
    assert e.value.status == 412 and "the human's value stands" in e.value.message
    fresh = policy.config(running)["revision"]
    reply = policy.set_config(running, {LR: 0.015}, "loss flat", policy="py-test",
                              decided_from=fresh)
    assert reply == {"revision": fresh + 1, "actor": "policy:py-test"}


def test_telemetry_is_read_with_the_applied_revision(url, running):
    curve = Coordinator(url).telemetry(running, max_points=10)
    assert curve["job"] == running
    assert [p["step"] for p in curve["points"]] == [10, 20]
    assert curve["points"][1]["loss"] == 0.05 and curve["points"][0]["val_loss"] is None
    assert curve["applied"]["revision"] == 1 and curve["applied"]["host"] == "h1"


def test_a_policy_write_to_a_pending_job_and_a_bad_name_are_refused(url, running):
    pending = Coordinator(url).job("beta")["id"]
    with pytest.raises(CoordinatorError) as e:
        supervisor(url).set_config(pending, {LR: 0.01}, "early", policy="py-test")
    assert e.value.status == 409 and "is pending" in e.value.message
    with pytest.raises(CoordinatorError) as e:
        supervisor(url).set_config(running, {LR: 0.01}, "x", policy="Py Test")
    assert e.value.status == 400 and "policy name 'Py Test'" in e.value.message


def test_wrong_tokens_are_refused_and_a_missing_one_is_named(url, running):
    for c, call in ((Coordinator(url, operator_token="wrong"), lambda c: c.cancel(running)),
                    (Coordinator(url, operator_token="wrong"),
                     lambda c: c.set_config(running, {LR: 0.01}, "x")),
                    (Coordinator(url, worker_token="wrong"),
                     lambda c: c.set_config(running, {LR: 0.01}, "x", policy="py-test"))):
        with pytest.raises(CoordinatorError) as e:
            call(c)
        assert e.value.status == 401, e.value
    with pytest.raises(ValueError, match="operator token"):
        Coordinator(url).freeze(running, "training")
    with pytest.raises(ValueError, match="worker token"):
        Coordinator(url).set_config(running, {LR: 0.01}, policy="py-test")


def test_cancel_and_requeue(url, running):
    op = operator(url)
    beta = op.job("beta")["id"]
    assert op.cancel(beta)["was_running"] is False
    assert op.job(beta)["status"] == "cancelled"
    op.requeue(beta)
    assert op.job(beta)["status"] == "pending"
    with pytest.raises(CoordinatorError) as e:
        op.cancel("no-such-id")
    assert e.value.status == 404 and "no-such-id" in e.value.message


def test_an_unreachable_coordinator_is_named_by_its_url():
    with socket.socket() as s:  # a port nothing listens on once it is closed
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    c = Coordinator(f"http://127.0.0.1:{port}", timeout=5)
    with pytest.raises(CoordinatorUnreachable) as e:
        c.jobs()
    assert e.value.url == f"http://127.0.0.1:{port}"
    assert f"cannot reach the coordinator at http://127.0.0.1:{port}" in str(e.value)


def test_bad_arguments_are_refused_before_any_request():
    with pytest.raises(ValueError, match="is not http://HOST:PORT"):
        Coordinator("127.0.0.1:8470")
    with pytest.raises(ValueError, match="ca_file"):
        Coordinator("http://127.0.0.1:8470", ca_file="/etc/ca.pem")
    c = Coordinator("http://127.0.0.1:1", operator_token="t")
    with pytest.raises(ValueError, match="non-empty dict"):
        c.set_config("job", {}, "nothing")
    with pytest.raises(ValueError):
        c.set_config("job", {LR: float("nan")}, "not a number")


def self_signed(tmp, name):
    cert, key = tmp / f"{name}.pem", tmp / f"{name}-key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return str(cert), str(key)


def test_https_is_verified_against_the_ca_file(tmp_path):
    cert, key = self_signed(tmp_path, "cert")
    other, _ = self_signed(tmp_path, "other")
    with coordinator_process(tmp_path, "--tls-cert", cert, "--tls-key", key) as printed:
        url = "https://localhost:" + printed.rsplit(":", 1)[1]
        assert sorted(j["name"] for j in Coordinator(url, ca_file=cert).jobs()) == \
            ["alpha", "beta"]
        with pytest.raises(CoordinatorUnreachable) as e:
            Coordinator(url, ca_file=other).jobs()
        assert e.value.url == url and "certificate verify failed" in e.value.reason
