"""Terminal injection and unbounded text: a worker name is a host name (a charset and a length)
or refused; free text (reasons) is bounded, refused beyond with nothing stored; and whatever
stored text the CLI prints reaches the terminal with its control characters escaped."""
import json
import urllib.parse

EVIL = "evil\n\x1b[2J\x1b]0;owned\x07\r\x9b31m"


def error_of(body):
    return body.get("error", "") if isinstance(body, dict) else str(body)


def jobs(c):
    status, body = c.operator("GET", "/v1/jobs")
    assert status == 200, body
    return {j["name"]: j for j in body["jobs"]}


def workers(c):
    status, body = c.operator("GET", "/v1/workers")
    assert status == 200, body
    return body["workers"]


def claim(c, worker, capability=None):
    return c.worker("POST", "/v1/job/claim",
                    {"worker": worker, "capability": capability or {"cores": 2}})


def assert_clean(output, rows=None):
    assert "\x1b" not in output and "\x07" not in output and "\r" not in output, repr(output)
    assert "\x9b" not in output, repr(output)
    if rows is not None:
        assert len(output.splitlines()) == rows, output


def test_hostile_worker_names_are_refused(coordinator):
    for name in (EVIL, "a b", "-rf", ".hidden", "x" * 65, "x" * 500_000, ""):
        # Neither enrolled under that name ...
        status, body = coordinator.request(
            "POST", "/v1/hosts/%s/enrol" % urllib.parse.quote(name, safe=""), {},
            {"X-Worker-Token": coordinator.worker_token})
        assert status in (400, 404, 413, 431), (name[:80], status, body)
        # ... nor named in a claim by an enrolled host.
        status, body = coordinator.worker("POST", "/v1/job/claim",
                                          {"worker": name, "capability": {"cores": 2}},
                                          host="probe")
        assert status in (400, 413), (name[:80], status, body)
        assert status == 413 or "worker" in error_of(body), body
    assert workers(coordinator) == []
    assert all(j["status"] == "pending" for j in jobs(coordinator).values())
    status, body = claim(coordinator, "gpu-box.lab_1")
    assert status == 200 and body["job"] is not None, body


def test_unbounded_reasons_are_refused_and_nothing_is_stored(coordinator):
    status, body = claim(coordinator, "h1")
    assert status == 200, body
    job, token = body["job"]["id"], body["lease_token"]
    big = "r" * (900 * 1024)
    status, reply = coordinator.worker(
        "POST", f"/v1/job/{job}/fail",
        {"lease_token": token, "class": "trainer_failure", "reason": big})
    assert status in (400, 413), (status, reply)
    assert status == 413 or "reason" in error_of(reply), reply
    status, info = coordinator.operator("GET", f"/v1/job/{job}")
    assert status == 200 and info["status"] == "claimed" and info["last_error"] == "", info
    status, reply = coordinator.operator(
        "POST", f"/v1/job/{job}/config",
        {"writes": {"training/optimizer/learning_rate": 0.05}, "reason": big})
    assert status in (400, 413), (status, reply)
    status, log = coordinator.operator("GET", f"/v1/job/{job}/config/log")
    assert status == 200 and all(e["reason"] != big for e in log["entries"]), log
    status, reply = coordinator.worker(
        "POST", f"/v1/job/{job}/telemetry",
        {"host": "h1", "points": [], "refusals": [{"revision": 1, "reason": big}]})
    assert status in (400, 413), (status, reply)
    # 4 KiB is accepted.
    status, reply = coordinator.worker(
        "POST", f"/v1/job/{job}/fail",
        {"lease_token": token, "class": "trainer_failure", "reason": "r" * 4096})
    assert status == 200, reply


def test_the_cli_escapes_stored_text(coordinator):
    status, body = claim(coordinator, "h1", {"cores": 2, "hostname": EVIL, "torch_version": EVIL})
    assert status == 200, body
    job, token = body["job"]["id"], body["lease_token"]
    status, reply = coordinator.operator(
        "POST", f"/v1/job/{job}/config",
        {"writes": {"training/optimizer/learning_rate": 0.05}, "reason": "set by " + EVIL})
    assert status == 200, reply
    status, reply = coordinator.worker(
        "POST", f"/v1/job/{job}/fail",
        {"lease_token": token, "class": "trainer_failure", "reason": "crashed: " + EVIL})
    assert status == 200, reply
    name = body["job"]["name"]
    assert "\x1b" in jobs(coordinator)[name]["last_error"]  # stored as given, within the bound

    out = coordinator.cli("workers").stdout
    assert_clean(out, rows=2)
    out = coordinator.cli("jobs", "list").stdout
    assert_clean(out, rows=1 + len(jobs(coordinator)))
    out = coordinator.cli("jobs", "show", name).stdout
    assert_clean(out)
    assert "evil\\x0A\\x1B[2J" in out, out
    out = coordinator.cli("config", "log", name).stdout
    assert_clean(out)
    assert "set by evil\\x0A\\x1B[2J" in out, out
    assert len([l for l in out.splitlines() if "learning_rate" in l]) == 1, out
    # -o json stays valid JSON, in ASCII.
    out = coordinator.cli("jobs", "show", name, "-o", "json").stdout
    assert_clean(out)
    assert EVIL in json.loads(out)["last_error"]
