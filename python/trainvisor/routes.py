"""The coordinator's routes and headers the Python package speaks: its one copy of them, kept
equal to core/fleet/api/include/trainvisor/fleet/api/paths.hpp (tests/test_routes.py checks it).
A pattern's {name} parts are filled, percent-encoded, by target()."""
import urllib.parse

PIPELINE_SAMPLES = "/v1/pipeline/{name}/samples"

INGEST_TOKEN_HEADER = "X-Ingest-Token"
IDEMPOTENCY_KEY_HEADER = "Idempotency-Key"


def target(pattern: str, **params: str) -> str:
    """`pattern` with each {name} replaced by params[name], every character but RFC 3986's
    unreserved ones percent-encoded (as the C++ client's target() does)."""
    return pattern.format(**{k: urllib.parse.quote(v, safe="") for k, v in params.items()})
