#!/usr/bin/python3
"""Writes the seed inputs of the sample_batch fuzz target into tests/fuzz/corpus/sample_batch/:
batches as np.save writes them (every accepted label dtype, datetime64 timestamps, .npy format
versions 1.0 to 3.0, samples of rank 1 to 4) and a few that the codec must refuse. Each file is
named by the SHA-1 of its bytes, as libFuzzer names the inputs it adds. Needs numpy only."""

import hashlib
import io
import pathlib

import numpy as np
from numpy.lib import format as npy_format

OUT = pathlib.Path(__file__).resolve().parent / "corpus" / "sample_batch"


def body(x, y, t, version=(1, 0)):
    f = io.BytesIO()
    for a in (x, y, t):
        npy_format.write_array(f, a, version=version)
    return f.getvalue()


def seeds():
    rng = np.random.default_rng(1)
    t3 = np.array([10, 10, 30], dtype=np.int64)
    yield body(rng.random((3, 4), dtype=np.float32), np.array([0, 1, 9]), t3)
    yield body(rng.random((2, 1, 3, 3), dtype=np.float32), np.array([3, 4], dtype=np.uint8),
               np.array(["2024-01-01", "2024-01-02"], dtype="datetime64[ns]"), (2, 0))
    yield body(rng.random((1, 2, 1, 2, 1), dtype=np.float32), np.array([5], dtype=np.int16),
               np.array([7], dtype=np.int64), (3, 0))
    yield body(np.zeros((3, 2), dtype=np.float32), np.array([1, 2, 3], dtype=np.int32), t3)
    # Refused: float64 features, a NaN, time going back, a label out of range, a cut-off body.
    yield body(np.zeros((3, 2)), np.array([1, 2, 3]), t3)
    yield body(np.array([[np.nan, 1]], dtype=np.float32), np.array([0]), np.array([1]))
    yield body(np.zeros((2, 2), dtype=np.float32), np.array([0, 1]), np.array([5, 4]))
    yield body(np.zeros((1, 2), dtype=np.float32), np.array([-1]), np.array([1]))
    yield body(np.zeros((3, 2), dtype=np.float32), np.array([1, 2, 3]), t3)[:-5]


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    for data in seeds():
        (OUT / hashlib.sha1(data).hexdigest()).write_bytes(data)


if __name__ == "__main__":
    main()
