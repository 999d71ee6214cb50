"""Checked ranges: a number outside its field's range, a float where an integer belongs, a
negative count or a non-number is refused with 400 naming the field, and nothing is stored:
no host registered or granted a job, no telemetry point kept."""
import json

import pytest

CAPABILITY_CASES = [
    ("cores", "1e26", "capability.cores: 1e+26 is out of range (0..1048576)"),
    ("cores", "-1", "capability.cores: -1 is out of range"),
    ("cores", "9223372036854775808", "capability.cores: 9223372036854775808 is out of range"),
    ("cores", "2.5", "capability.cores: 2.5 is not an integer"),
    ("cores", '"8"', "capability.cores: must be an integer"),
    ("cuda_devices", "-3", "capability.cuda_devices: -3 is out of range"),
    ("ram_gib", "-0.5", "capability.ram_gib: -0.5 is out of range"),
    ("ram_gib", "1e300", "capability.ram_gib: 1e+300 is out of range"),
    ("ram_gib", "1e999", "number overflow parsing '1e999'"),  # refused by the JSON parser
    ("ram_gib", '"NaN"', "capability.ram_gib: must be a number"),
    ("vram_gib", '"Infinity"', "capability.vram_gib: must be a number"),
]


def error_of(body):
    return body.get("error", "") if isinstance(body, dict) else str(body)


def jobs(c):
    status, body = c.operator("GET", "/v1/jobs")
    assert status == 200, body
    return body["jobs"]


def claim(c, worker="h1", capability='{"cores":2,"ram_gib":4.0}'):
    return c.worker("POST", "/v1/job/claim",
                    '{"worker":%s,"capability":%s}' % (json.dumps(worker), capability),
                    {"Content-Type": "application/json"}, host=worker)


def test_out_of_range_capabilities_are_refused_and_nothing_is_claimed(coordinator):
    for field, value, reason in CAPABILITY_CASES:
        status, body = claim(coordinator, capability='{"%s":%s}' % (field, value))
        assert status == 400, (field, value, status, body)
        assert reason in error_of(body), (field, value, body)
    assert all(j["status"] == "pending" and j["worker"] == "" for j in jobs(coordinator))
    status, body = coordinator.operator("GET", "/v1/workers")
    assert status == 200 and body["workers"] == [], body


def held_job(c):
    status, body = claim(c)
    assert status == 200 and body["job"] is not None, body
    return body["job"]["id"]


def test_telemetry_with_negative_or_huge_steps_is_refused_and_not_stored(coordinator):
    job = held_job(coordinator)
    cases = [
        ('{"step":-1}', "point.step: -1 is out of range"),
        ('{"step":18446744073709551615}', "point.step: 18446744073709551615 is out of range"),
        ('{"step":1e30}', "point.step: 1e+30 is out of range"),
        ('{"step":3.5}', "point.step: 3.5 is not an integer"),
        ('{"step":1,"epoch":-2}', "point.epoch: -2 is out of range"),
        ('{"step":1,"epoch":4294967296}', "point.epoch: 4294967296 is out of range"),
        ('{"step":1,"config_revision":-1}', "point.config_revision: -1 is out of range"),
        ('{"step":1,"loss":"NaN"}', "point.loss: must be a number"),
        ('{"step":1,"loss":1e999}', "number overflow parsing '1e999'"),
    ]
    for point, reason in cases:
        # A good point first: the whole batch is refused, not just the bad one.
        body = '{"host":"h1","points":[{"step":0,"loss":1.0},%s]}' % point
        status, reply = coordinator.worker("POST", f"/v1/job/{job}/telemetry", body)
        assert status == 400, (point, status, reply)
        assert reason in error_of(reply), (point, reply)
    status, reply = coordinator.worker("POST", f"/v1/job/{job}/telemetry",
                                       '{"host":"h1","missed":-5,"points":[]}')
    assert status == 400 and "missed: -5 is out of range" in error_of(reply), reply
    status, curve = coordinator.operator("GET", f"/v1/job/{job}/telemetry")
    assert status == 200 and curve["points"] == [], curve
    # The holder still reports normally afterwards.
    status, reply = coordinator.worker("POST", f"/v1/job/{job}/telemetry",
                                       '{"host":"h1","points":[{"step":7,"loss":0.5}]}')
    assert status == 200, reply
    status, curve = coordinator.operator("GET", f"/v1/job/{job}/telemetry")
    assert [p["step"] for p in curve["points"]] == [7], curve


@pytest.mark.parametrize("query,reason", [
    ("telemetry?max_points=100001", "query parameter 'max_points': 100001 is out of range"),
    ("telemetry?max_points=99999999999999999999999", "query parameter 'max_points': "),
    ("telemetry?max_points=-1", "query parameter 'max_points': '-1' is not a whole number"),
    ("telemetry?max_points=1e3", "query parameter 'max_points': '1e3' is not a whole number"),
    ("config/log?limit=1001", "query parameter 'limit': 1001 is out of range (0..1000)"),
    ("config/log?after=9223372036854775808", "query parameter 'after': 9223372036854775808 is"),
    ("config/log?after=18446744073709551616", "query parameter 'after': "),
    ("config/log?after=", "query parameter 'after': '' is not a whole number"),
])
def test_query_parameters_out_of_range_are_400(coordinator, query, reason):
    job = jobs(coordinator)[0]["id"]
    status, body = coordinator.operator("GET", f"/v1/job/{job}/{query}")
    assert status == 400, (query, status, body)
    assert reason in error_of(body), (query, body)


def test_config_write_numbers_are_checked(coordinator):
    job = jobs(coordinator)[0]["id"]
    _, before = coordinator.operator("GET", f"/v1/job/{job}/config")
    status, body = coordinator.operator(
        "POST", f"/v1/job/{job}/config",
        '{"writes":{"training/optimizer/learning_rate":0.01},"decided_from":-4}')
    assert status == 400 and "decided_from: -4 is out of range" in error_of(body), body
    _, after = coordinator.operator("GET", f"/v1/job/{job}/config")
    assert after == before
