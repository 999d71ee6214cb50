"""The coordinator's routes and headers the Python package speaks: its one copy of them, kept
equal to core/fleet/api/include/trainvisor/fleet/api/paths.hpp (tests/test_routes.py checks it).
A pattern's {name} parts are filled, percent-encoded, by target()."""
import urllib.parse

PIPELINE_SAMPLES = "/v1/pipeline/{name}/samples"
JOBS = "/v1/jobs"  # ?status=S
JOB_BY_REF = "/v1/jobs/{ref}"
JOB_CANCEL = "/v1/job/{id}/cancel"
JOB_REQUEUE = "/v1/job/{id}/requeue"
JOB_CONFIG = "/v1/job/{id}/config"
JOB_CONFIG_FREEZE = "/v1/job/{id}/config/freeze"
JOB_CONFIG_UNFREEZE = "/v1/job/{id}/config/unfreeze"
JOB_CONFIG_LOG = "/v1/job/{id}/config/log"  # ?after=&limit=
JOB_TELEMETRY = "/v1/job/{id}/telemetry"  # ?max_points=N

INGEST_TOKEN_HEADER = "X-Ingest-Token"
IDEMPOTENCY_KEY_HEADER = "Idempotency-Key"
WORKER_TOKEN_HEADER = "X-Worker-Token"
OPERATOR_TOKEN_HEADER = "X-Operator-Token"
READ_TOKEN_HEADER = "X-Read-Token"
OPERATOR_NAME_HEADER = "X-Operator-Name"


def target(pattern: str, **params: str) -> str:
    """`pattern` with each {name} replaced by params[name], every character but RFC 3986's
    unreserved ones percent-encoded (as the C++ client's target() does)."""
    return pattern.format(**{k: urllib.parse.quote(v, safe="") for k, v in params.items()})
