"""Sends samples to a Trainvisor pipeline's data stream (routes.PIPELINE_SAMPLES).

Standard library and numpy only. A batch is three arrays, written back to back exactly as
np.save(f, x); np.save(f, y); np.save(f, t) writes them into one file object (the coordinator's
decoder is core/fleet/pipelines/include/trainvisor/fleet/pipelines/sample_batch.hpp):

  x  features, float32, shape (rows, *sample_shape): rows >= 1, a sample of rank 1 to 4, finite;
  y  labels, shape (rows,), integers in [0, 2**31), sent as int64;
  t  timestamps, shape (rows,), Unix nanoseconds (int64, or datetime64 of any unit), >= 0 and
     non-decreasing; a pipeline's batches must not go back in time either.

encode_batch() checks and converts the arrays (numbers to float32, integer labels and times to
int64, datetime64 to nanoseconds) and raises BatchError naming the array and the reason for what
the coordinator would refuse. IngestClient.send() posts a batch and returns the coordinator's JSON
reply; a refusal raises IngestError carrying the HTTP status and the coordinator's message.

An idempotency key makes a retry safe: when an acknowledgement is lost, send the same batch again
with the same key and the coordinator stores it once.
"""

from __future__ import annotations

import io
import json
import urllib.error
import urllib.request

import numpy as np

from . import routes
from .client import server_message

CONTENT_TYPE = "application/x-trainvisor-batch"
LABEL_LIMIT = 2**31


class BatchError(ValueError):
    """Arrays the coordinator would refuse; the message names the array (features, labels,
    timestamps) and the reason."""


class IngestError(RuntimeError):
    """The coordinator refused a batch or could not be reached; `status` is the HTTP status
    (0 when no answer came) and the message is the coordinator's own."""

    def __init__(self, message: str, status: int = 0):
        super().__init__(message)
        self.status = status


def _features(x) -> np.ndarray:
    x = np.asarray(x)
    if x.dtype.kind not in "fiu":
        raise BatchError(f"features: dtype {x.dtype} is not a real number type")
    if x.ndim < 2 or x.ndim > 5:
        raise BatchError(f"features: shape {x.shape} is not (rows, *sample_shape) with a "
                         "sample of rank 1 to 4")
    if x.shape[0] == 0 or 0 in x.shape[1:]:
        raise BatchError(f"features: shape {x.shape} has no rows or an empty sample")
    with np.errstate(over="ignore"):
        x = np.ascontiguousarray(x, dtype="<f4")
    bad = np.flatnonzero(~np.isfinite(x.reshape(x.shape[0], -1)).all(axis=1))
    if bad.size:
        raise BatchError(f"features: row {bad[0]} holds a value that is not finite in float32")
    return x


def _labels(y, rows: int) -> np.ndarray:
    y = np.asarray(y)
    if y.dtype.kind not in "iu":
        raise BatchError(f"labels: dtype {y.dtype} is not an integer type; "
                         "send y.astype(np.int64)")
    if y.shape != (rows,):
        raise BatchError(f"labels: shape {y.shape} does not match the {rows} rows of features")
    bad = np.flatnonzero((y < 0) | (y >= LABEL_LIMIT))
    if bad.size:
        raise BatchError(f"labels: row {bad[0]} ({y[bad[0]]}) is not in [0, 2**31)")
    return np.ascontiguousarray(y, dtype="<i8")


def _timestamps(t, rows: int) -> np.ndarray:
    t = np.asarray(t)
    if t.dtype.kind == "M":
        t = t.astype("datetime64[ns]").view(np.int64)
    elif t.dtype.kind not in "iu":
        raise BatchError(f"timestamps: dtype {t.dtype} is not int64 Unix nanoseconds or "
                         "datetime64")
    if t.shape != (rows,):
        raise BatchError(f"timestamps: shape {t.shape} does not match the {rows} rows of "
                         "features")
    if t.dtype == np.uint64 and (t > np.iinfo(np.int64).max).any():
        raise BatchError("timestamps: a value does not fit in int64")
    t = np.ascontiguousarray(t, dtype="<i8")
    if (t < 0).any():
        row = int(np.flatnonzero(t < 0)[0])
        raise BatchError(f"timestamps: row {row} ({t[row]}) is negative; send Unix nanoseconds")
    back = np.flatnonzero(t[1:] < t[:-1])
    if back.size:
        row = int(back[0]) + 1
        raise BatchError(f"timestamps: row {row} ({t[row]}) is before row {row - 1} "
                         f"({t[row - 1]})")
    return t


def encode_batch(x, y, t) -> bytes:
    """The body of one batch: x as float32, y and t as int64, each written by np.save."""
    x = _features(x)
    rows = x.shape[0]
    arrays = (x, _labels(y, rows), _timestamps(t, rows))
    out = io.BytesIO()
    for a in arrays:
        np.save(out, a, allow_pickle=False)
    return out.getvalue()


class IngestClient:
    """Posts batches to one coordinator. `base_url` is the coordinator's address
    ("http://127.0.0.1:8470"); `token`, when given, goes in the `token_header` header."""

    def __init__(self, base_url: str, token: str | None = None,
                 token_header: str = routes.INGEST_TOKEN_HEADER, timeout: float = 60.0):
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.token_header = token_header
        self.timeout = timeout

    def url(self, pipeline: str) -> str:
        return self.base_url + routes.target(routes.PIPELINE_SAMPLES, name=pipeline)

    def send(self, pipeline: str, x, y, t, idempotency_key: str | None = None) -> dict:
        """Sends one batch; returns the coordinator's JSON reply once the batch is stored."""
        headers = {"Content-Type": CONTENT_TYPE}
        if self.token is not None:
            headers[self.token_header] = self.token
        if idempotency_key is not None:
            headers[routes.IDEMPOTENCY_KEY_HEADER] = idempotency_key
        request = urllib.request.Request(self.url(pipeline), data=encode_batch(x, y, t),
                                         headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as reply:
                return json.loads(reply.read() or b"{}")
        except urllib.error.HTTPError as e:
            raise IngestError(f"pipeline {pipeline!r}: {e.code}: {server_message(e)}",
                              e.code) from None
        except urllib.error.URLError as e:
            raise IngestError(f"pipeline {pipeline!r}: cannot reach {self.base_url}: "
                              f"{e.reason}") from None

