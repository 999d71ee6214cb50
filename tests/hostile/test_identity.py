"""Forged identities: one enrolled host cannot act as another.

Two hosts enrol over HTTP with the worker token and each gets its own credential. Host A claims a
job; host B, holding the worker token, its own credential and even A's lease token, tries every
call on A's lease. Each is refused (403) and nothing is stored: the job row, the audit log, the
telemetry and the artifacts stay as they were. A does all of it itself. A host cannot enrol as
another, claim in another's name, end a job as cancelled, or write as a policy its job lacks; a
revoked credential is refused.
"""
import hashlib
import http.client

from conftest import start_coordinator

MANIFEST = """
[[jobs]]
name = "guarded"
model = "tiny"
seed = 11
priority = 9
[[jobs.policies]]
name = "plateau"

[[jobs]]
name = "other"
model = "tiny"
seed = 12
"""

CAPABILITY = {"cores": 2, "ram_gib": 4.0}
LR = "training/optimizer/learning_rate"


def point(step, loss=0.5, revision=1):
    return {"step": step, "epoch": 0, "flags": 0, "wall_time_ns": 0, "loss": loss,
            "config_revision": revision}


def claim(c, host):
    status, reply = c.as_host(host, "POST", "/v1/job/claim",
                              {"worker": host, "capability": CAPABILITY})
    assert status == 200, reply
    assert reply["job"] is not None, reply
    return reply["job"]["id"], reply["lease_token"]


def state(c, job):
    """Everything a forged call could change about `job`."""
    row = c.request("GET", f"/v1/job/{job}")[1]
    row.pop("config_lag", None)
    return {
        "row": row,
        "audit": c.request("GET", f"/v1/job/{job}/config/log?limit=1000")[1],
        "config": c.request("GET", f"/v1/job/{job}/config")[1],
        "telemetry": c.request("GET", f"/v1/job/{job}/telemetry")[1],
        "artifacts": c.request("GET", f"/v1/job/{job}/artifacts")[1],
    }


def upload(c, host, job, lease, data=b"TVBUNDLE1\nweights"):
    conn = http.client.HTTPConnection(c.host, c.port, timeout=10)
    try:
        conn.request("PUT", f"/v1/job/{job}/artifact/bundle.tvb", body=data, headers={
            "X-Host-Credential": c.enrol(host), "X-Lease-Token": lease,
            "X-Content-SHA256": hashlib.sha256(data).hexdigest(),
            "Content-Length": str(len(data))})
        r = conn.getresponse()
        return r.status, r.read().decode(errors="replace")
    finally:
        conn.close()


def stream_status(c, host, job):
    """The status a config stream upgrade for `job` gets with `host`'s credential."""
    conn = http.client.HTTPConnection(c.host, c.port, timeout=10)
    try:
        conn.request("GET", f"/v1/job/{job}/config/stream?from=0", headers={
            "X-Host-Credential": c.enrol(host), "Connection": "Upgrade", "Upgrade": "websocket",
            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version": "13"})
        return conn.getresponse().status
    finally:
        conn.close()


def forged_calls(c, job, lease):
    """Every call host-b could make on host-a's lease, with host-a's own lease token."""
    b = "host-b"
    yield "heartbeat", c.as_host(b, "POST", f"/v1/job/{job}/heartbeat", {"lease_token": lease})
    yield "running", c.as_host(b, "POST", f"/v1/job/{job}/running", {"lease_token": lease})
    yield "complete", c.as_host(b, "POST", f"/v1/job/{job}/complete", {"lease_token": lease})
    yield "fail", c.as_host(b, "POST", f"/v1/job/{job}/fail",
                            {"lease_token": lease, "class": "trainer_failure", "reason": "x"})
    yield "upload", upload(c, b, job, lease)
    # Telemetry as itself, and naming the holder in the body: both refused.
    yield "telemetry", c.as_host(b, "POST", f"/v1/job/{job}/telemetry",
                                 {"host": b, "points": [point(1, 1e300)]})
    yield "telemetry as a", c.as_host(b, "POST", f"/v1/job/{job}/telemetry", {
        "host": "host-a", "points": [point(1, 1e300, 77)],
        "refusals": [{"revision": 2, "reason": "forged"}]})
    yield "policy write", c.as_host(b, "POST", f"/v1/job/{job}/config",
                                    {"policy": "plateau", "writes": {LR: 0.5}, "reason": "x"})
    yield "config stream", (stream_status(c, b, job), "")


def test_another_host_can_do_nothing_on_a_lease_and_nothing_is_stored(procs, tmp):
    c = start_coordinator(procs, tmp, MANIFEST)
    c.enrol("host-b")
    job, lease = claim(c, "host-a")
    before = state(c, job)
    for what, (status, reply) in forged_calls(c, job, lease):
        assert status == 403, f"{what}: {status} {reply}"
        if what not in ("upload", "config stream", "telemetry as a"):
            assert "is held by host-a, not host-b" in str(reply), f"{what}: {reply}"
    assert state(c, job) == before
    # A worker token alone is no host at all.
    status, _ = c.request("POST", f"/v1/job/{job}/heartbeat", {"lease_token": lease},
                          {"X-Worker-Token": c.worker_token})
    assert status == 401
    assert c.alive()


def test_the_holder_does_all_of_it_itself(procs, tmp):
    c = start_coordinator(procs, tmp, MANIFEST)
    a = "host-a"
    job, lease = claim(c, a)
    assert c.as_host(a, "POST", f"/v1/job/{job}/running", {"lease_token": lease})[0] == 200
    assert c.as_host(a, "POST", f"/v1/job/{job}/heartbeat", {"lease_token": lease})[0] == 200
    status, reply = c.as_host(a, "POST", f"/v1/job/{job}/telemetry",
                              {"host": a, "points": [point(1), point(2)]})
    assert (status, reply.get("stored")) == (200, 2), reply
    status, reply = c.as_host(a, "POST", f"/v1/job/{job}/config",
                              {"policy": "plateau", "writes": {LR: 0.05}, "reason": "flat"})
    assert status == 200 and reply["actor"] == "policy:plateau", reply
    assert stream_status(c, a, job) == 101
    status, reply = upload(c, a, job, lease)
    assert status == 200, reply
    digest = hashlib.sha256(b"TVBUNDLE1\nweights").hexdigest()
    status, reply = c.as_host(a, "POST", f"/v1/job/{job}/complete",
                              {"lease_token": lease, "artifact": digest})
    assert status == 200, reply
    row = c.request("GET", f"/v1/job/{job}")[1]
    assert (row["status"], row["worker"], row["artifact"]) == ("completed", a, digest)
    assert len(c.request("GET", f"/v1/job/{job}/telemetry")[1]["points"]) == 2


def test_a_host_writes_only_as_a_policy_its_job_runs(procs, tmp):
    c = start_coordinator(procs, tmp, MANIFEST)
    job, _ = claim(c, "host-a")
    before = state(c, job)
    for policy in ("divergence", "no-such-policy"):
        status, reply = c.as_host("host-a", "POST", f"/v1/job/{job}/config",
                                  {"policy": policy, "writes": {LR: 0.5}})
        assert status == 403, reply
        assert f"runs no policy '{policy}'" in reply["error"], reply
    # The second job runs no policy at all.
    other, _ = claim(c, "host-a")
    status, reply = c.as_host("host-a", "POST", f"/v1/job/{other}/config",
                              {"policy": "plateau", "writes": {LR: 0.5}})
    assert status == 403 and "its policies: none" in reply["error"], reply
    assert state(c, job) == before


def test_no_host_enrols_or_claims_as_another(procs, tmp):
    c = start_coordinator(procs, tmp, MANIFEST)
    c.enrol("host-a")
    c.enrol("host-b")
    status, reply = c.request("POST", "/v1/hosts/host-a/enrol", {},
                              {"X-Worker-Token": c.worker_token})
    assert status == 409, reply
    assert "host host-a is already enrolled; an operator can revoke it" in reply["error"]
    assert c.request("POST", "/v1/hosts/host-c/enrol", {}, {"X-Worker-Token": "wrong"})[0] == 401
    assert c.request("POST", "/v1/hosts/host-c/enrol", {}, {"X-Host-Credential":
                                                             c.enrol("host-a")})[0] == 401
    for bad in ("a%3Ab", "a%0Ab", "%1B%5B31m", "x" * 129):
        status, reply = c.request("POST", f"/v1/hosts/{bad}/enrol", {},
                                  {"X-Worker-Token": c.worker_token})
        assert status == 400, (bad, reply)
    status, reply = c.as_host("host-b", "POST", "/v1/job/claim",
                              {"worker": "host-a", "capability": CAPABILITY})
    assert status == 403, reply
    assert all(j["status"] == "pending" for j in c.request("GET", "/v1/jobs")[1]["jobs"])
    # A credential with the right name and a wrong secret is no one.
    secret_b = c.enrol("host-b").split(":", 1)[1]
    status, _ = c.request("POST", "/v1/job/claim", {"worker": "host-a", "capability": CAPABILITY},
                          {"X-Host-Credential": "host-a:" + secret_b})
    assert status == 401


def test_a_host_cannot_end_a_job_cancelled(procs, tmp):
    c = start_coordinator(procs, tmp, MANIFEST)
    job, lease = claim(c, "host-a")
    before = state(c, job)
    status, reply = c.as_host("host-a", "POST", f"/v1/job/{job}/fail",
                              {"lease_token": lease, "class": "cancelled", "reason": "forged"})
    assert status == 400, reply
    assert "only after an operator's cancel" in reply["error"], reply
    assert state(c, job) == before
    # After an operator's cancel, the holder's report acknowledges it.
    assert c.operator("POST", f"/v1/job/{job}/cancel")[0] == 200
    status, reply = c.as_host("host-a", "POST", f"/v1/job/{job}/fail",
                              {"lease_token": lease, "class": "cancelled", "reason": "stopped"})
    assert status == 200, reply
    assert c.request("GET", f"/v1/job/{job}")[1]["status"] == "cancelled"


def test_a_revoked_credential_is_refused_until_an_operator_enrols_the_host(procs, tmp):
    c = start_coordinator(procs, tmp, MANIFEST)
    job, lease = claim(c, "host-a")
    old = c.enrol("host-a")
    assert c.request("POST", "/v1/hosts/host-a/revoke", {},
                     {"X-Worker-Token": c.worker_token})[0] == 401
    status, reply = c.operator("POST", "/v1/hosts/host-a/revoke", {})
    assert status == 200, reply
    before = state(c, job)
    for path, body in ((f"/v1/job/{job}/heartbeat", {"lease_token": lease}),
                       (f"/v1/job/{job}/telemetry", {"host": "host-a", "points": [point(1)]}),
                       ("/v1/job/claim", {"worker": "host-a", "capability": CAPABILITY})):
        assert c.as_host("host-a", "POST", path, body)[0] == 401, path
    assert state(c, job) == before
    status, reply = c.request("POST", "/v1/hosts/host-a/enrol", {},
                              {"X-Worker-Token": c.worker_token})
    assert status == 409 and "revoked" in reply["error"], reply
    status, reply = c.operator("POST", "/v1/hosts/host-a/enrol", {})
    assert status == 200 and reply["credential"] != old, reply
    c.credentials["host-a"] = reply["credential"]
    assert c.as_host("host-a", "POST", f"/v1/job/{job}/heartbeat",
                     {"lease_token": lease})[0] == 200
