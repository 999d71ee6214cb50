"""The Python package's routes and headers are the coordinator's: each constant of
trainvisor/routes.py is spelled the same in the C++ protocol header."""
import os
import re

from trainvisor import routes

HEADER = os.path.join(os.path.dirname(__file__), "..", "..", "core", "fleet", "api", "include",
                      "trainvisor", "fleet", "api", "paths.hpp")


def cpp_constants():
    with open(HEADER) as f:
        return dict(re.findall(r'constexpr std::string_view (k\w+) = "([^"]*)";', f.read()))


def test_every_route_and_header_matches_the_cpp_protocol():
    cpp = cpp_constants()
    pairs = {"PIPELINE_SAMPLES": "kPipelineSamples",
             "JOBS": "kJobs",
             "JOB_BY_REF": "kJobByRef",
             "JOB_CANCEL": "kJobCancel",
             "JOB_REQUEUE": "kJobRequeue",
             "JOB_CONFIG": "kJobConfig",
             "JOB_CONFIG_FREEZE": "kJobConfigFreeze",
             "JOB_CONFIG_UNFREEZE": "kJobConfigUnfreeze",
             "JOB_CONFIG_LOG": "kJobConfigLog",
             "JOB_TELEMETRY": "kJobTelemetry",
             "INGEST_TOKEN_HEADER": "kIngestTokenHeader",
             "IDEMPOTENCY_KEY_HEADER": "kIdempotencyKeyHeader",
             "WORKER_TOKEN_HEADER": "kWorkerTokenHeader",
             "OPERATOR_TOKEN_HEADER": "kOperatorTokenHeader",
             "READ_TOKEN_HEADER": "kReadTokenHeader",
             "OPERATOR_NAME_HEADER": "kOperatorNameHeader"}
    ours = {k for k in vars(routes) if k.isupper()}
    assert ours == set(pairs), "a constant of routes.py has no C++ counterpart listed here"
    for py, c in pairs.items():
        assert getattr(routes, py) == cpp[c], (py, c)


def test_target_percent_encodes_like_the_cpp_client():
    assert routes.target(routes.PIPELINE_SAMPLES, name="a b/c") == "/v1/pipeline/a%20b%2Fc/samples"
    assert routes.target(routes.PIPELINE_SAMPLES, name="fmnist-1.x_y~") == \
        "/v1/pipeline/fmnist-1.x_y~/samples"
