"""A hostile manifest: nesting deep enough to overflow a recursive parser, a file too large, a
NaN where a number belongs. Each is refused with its reason at reload (HTTP or SIGHUP) while the
coordinator keeps serving its jobs, and at start with a non-zero exit, never a crash signal. An
allowed_hosts entry that no host has is accepted with a warning the operator sees."""
import os
import signal
import subprocess

from conftest import MANIFEST, TRAINVISOR, start_coordinator, wait_for

DEPTH_REASON = "nested deeper than 32 levels"

DEEP_KEY = MANIFEST + "[jobs.params]\n" + ".".join(["a"] * 100000) + " = 1\n"
DEEP_TABLE = MANIFEST + "[" + ".".join(["t"] * 100000) + "]\n"
DEEP_ARRAY = MANIFEST + "[jobs.params]\nx = " + "[" * 100000 + "]" * 100000 + "\n"
DEEP_INLINE = MANIFEST + "[jobs.params]\nx = " + "{a = " * 50000 + "1" + "}" * 50000 + "\n"
NAN_CONSTRAINT = MANIFEST.replace("seed = 2", "seed = 2\nmin_ram_gib = nan")
INF_CONSTRAINT = MANIFEST.replace("seed = 2", "seed = 2\nmin_vram_gib = inf")


def write_manifest(tmp, text):
    with open(os.path.join(tmp, "fleet.toml"), "w") as f:
        f.write(text)


def snapshot(c):
    status, body = c.operator("GET", "/v1/jobs")
    assert status == 200, body
    return sorted((j["id"], j["status"]) for j in body["jobs"])


def reload_refused(c, tmp, text, reason):
    before = snapshot(c)
    write_manifest(tmp, text)
    status, body = c.operator("POST", "/v1/manifest/reload")
    assert 400 <= status < 500, (status, body)
    lines = [body.get("error", "")] + body.get("diagnostics", [])
    assert any(reason in line for line in lines), body
    assert any("fleet.toml:" in line for line in lines), body
    assert c.alive()
    status, health = c.request("GET", "/v1/health")
    assert status == 200, health
    assert snapshot(c) == before


def test_deep_nesting_is_refused_at_http_reload(coordinator, tmp):
    for text in (DEEP_KEY, DEEP_TABLE, DEEP_ARRAY, DEEP_INLINE):
        reload_refused(coordinator, tmp, text, DEPTH_REASON)


def test_non_finite_constraints_are_refused_at_reload(coordinator, tmp):
    reload_refused(coordinator, tmp, NAN_CONSTRAINT, "'min_ram_gib' must be a finite number")
    reload_refused(coordinator, tmp, INF_CONSTRAINT, "'min_vram_gib' must be a finite number")


def test_an_oversized_manifest_is_refused(coordinator, tmp):
    reload_refused(coordinator, tmp, MANIFEST + "#" + "x" * (5 << 20) + "\n", "over the limit of")


def test_deep_nesting_is_refused_at_sighup(coordinator, tmp):
    before = snapshot(coordinator)
    write_manifest(tmp, DEEP_KEY)
    coordinator.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: DEPTH_REASON in coordinator.log(), 20, "the refused reload in the log")
    assert coordinator.alive()
    assert snapshot(coordinator) == before


def test_a_coordinator_does_not_start_on_a_deep_manifest(tmp):
    path = os.path.join(tmp, "deep.toml")
    for text in (DEEP_KEY, DEEP_TABLE, NAN_CONSTRAINT):
        with open(path, "w") as f:
            f.write(text)
        env = dict(os.environ, TRAINVISOR_OPERATOR_TOKEN="op", TRAINVISOR_WORKER_TOKEN="wk")
        r = subprocess.run([TRAINVISOR, "coordinator", "--data-dir", os.path.join(tmp, "data"),
                            "--manifest", path, "--port", "0"],
                           env=env, capture_output=True, text=True, timeout=60)
        assert r.returncode > 0, (r.returncode, r.stderr)  # an exit code, not a signal
        assert "deep.toml:" in r.stderr and ("nested deeper" in r.stderr or
                                             "finite number" in r.stderr), r.stderr


def test_an_unknown_allowed_host_is_warned(procs, tmp):
    text = MANIFEST.replace('name = "beta"', 'name = "beta"\nallowed_hosts = ["ghost-box"]')
    c = start_coordinator(procs, tmp, text)
    wait_for(lambda: "ghost-box" in c.log(), 20, "the start-up warning in the log")
    assert "warning" in c.log()
    status, body = c.operator("POST", "/v1/manifest/reload?dry_run=1")
    assert status == 200, body
    assert len(body["warnings"]) == 1 and "'ghost-box'" in body["warnings"][0], body
    assert "fleet.toml:" in body["warnings"][0]
    out = c.cli("reload").stdout
    assert "warning" in out and "ghost-box" in out, out
    # Once a worker of that name has claimed, it is a known host: no warning.
    status, _ = c.worker("POST", "/v1/job/claim",
                         {"worker": "ghost-box", "capability": {"cores": 1}})
    assert status == 200
    status, body = c.operator("POST", "/v1/manifest/reload?dry_run=1")
    assert status == 200 and body["warnings"] == [], body
