"""Streams Fashion-MNIST into a pipeline as a Python user would: numpy arrays, sent in batches
through trainvisor.ingest. The images are rotated by 90 degrees from --rotate-from (a batch index)
on, a drift a data_drift trigger must see. Each batch carries an Idempotency-Key, so a batch sent
again after a lost reply is stored once. Prints one JSON line per acknowledged batch. With
--retry-seconds, a batch whose reply did not come (the coordinator down, a 5xx) is sent again,
with its key, until it is acknowledged or the time is up.

  pipeline_stream.py --url URL --token T --pipeline P --batches N --batch-size B
                     [--rotate-from K] [--first-batch I] [--seed S] [--flat] [--retry-seconds S]
"""
import argparse
import gzip
import http.client
import json
import os
import struct
import sys
import time

import numpy as np

sys.path.insert(0, os.environ.get("TRAINVISOR_PYTHON", ""))
from trainvisor.ingest import IngestClient, IngestError  # noqa: E402

DATA = "/usr/share/datasets/fashion-mnist"


def read_idx(name):
    with gzip.open(os.path.join(DATA, name), "rb") as f:
        magic = struct.unpack(">I", f.read(4))[0]
        dims = struct.unpack(">" + "I" * (magic & 0xFF), f.read(4 * (magic & 0xFF)))
        return np.frombuffer(f.read(), dtype=np.uint8).reshape(dims)


def send(client, a, x, y, t, key):
    deadline = time.monotonic() + a.retry_seconds
    while True:
        try:
            return client.send(a.pipeline, x, y, t, idempotency_key=key)
        except (IngestError, OSError, http.client.HTTPException) as e:
            lost = not isinstance(e, IngestError) or e.status == 0 or e.status >= 500
            if not lost or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--token", required=True)
    ap.add_argument("--pipeline", required=True)
    ap.add_argument("--batches", type=int, required=True)
    ap.add_argument("--batch-size", type=int, default=500)
    ap.add_argument("--first-batch", type=int, default=0)
    ap.add_argument("--rotate-from", type=int, default=-1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--flat", action="store_true", help="samples of shape (784,), not (1, 28, 28)")
    ap.add_argument("--retry-seconds", type=float, default=0)
    a = ap.parse_args()

    images = read_idx("train-images-idx3-ubyte.gz")
    labels = read_idx("train-labels-idx1-ubyte.gz")
    order = np.random.default_rng(a.seed).permutation(len(images))
    client = IngestClient(a.url, token=a.token)
    t0 = 1_700_000_000 * 10**9
    for b in range(a.first_batch, a.first_batch + a.batches):
        idx = order[(b * a.batch_size) % len(images):][: a.batch_size]
        x = images[idx].astype(np.float32) / 255.0
        if 0 <= a.rotate_from <= b:
            x = np.rot90(x, k=1, axes=(1, 2)).copy()
        x = x.reshape(len(idx), 784) if a.flat else x.reshape(len(idx), 1, 28, 28)
        y = labels[idx].astype(np.int64)
        t = t0 + (b * a.batch_size + np.arange(len(idx), dtype=np.int64)) * 10**6
        reply = send(client, a, x, y, t, f"{a.pipeline}-batch-{b}")
        print(json.dumps({"batch": b, "seq": reply["seq"], "rows": reply["rows"],
                          "repeated": reply["repeated"]}), flush=True)


if __name__ == "__main__":
    main()
