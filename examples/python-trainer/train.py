#!/usr/bin/python3
"""Fashion-MNIST with a small MLP, run as a Trainvisor job: copy this to start your own.

The host daemon starts it with the job's environment (see trainvisor/trainer.py); the knobs an
operator or a policy changes reach the loop at its next step:

  learning rate, momentum, weight decay, dropout   every step (run.apply)
  gradient clipping                                 every step (run.clip_grad_norm)
  batch size                                        at the next epoch
  early_stop, max_epochs                            before the next step (run.should_stop)
  eval_every, checkpoint_every                      after each step

Every step pushes a telemetry record (loss, gradient norm, learning rate, config revision); an
evaluation pushes one with val_loss and val_accuracy. SIGTERM (or losing the job's lease) writes a
checkpoint and exits 4; a later attempt on the same host resumes from it. At the end the model
(model.pt) and metrics.json go to TRAINVISOR_OUT_DIR; the exit status is 0, or 3 after early_stop.
"""

import argparse
import gzip
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

import trainvisor
from trainvisor import shm

DATA = Path("/usr/share/datasets/fashion-mnist")


def read_idx(path: Path, max_items: int) -> np.ndarray:
    """An idx file (gzip): images as float32 in [0, 1] flattened, labels as int64."""
    with gzip.open(path, "rb") as f:
        raw = f.read()
    dims = raw[3]
    shape = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(dims)]
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)
    if max_items > 0:
        data = data[:max_items]
    if dims == 1:
        return data.astype(np.int64)
    return data.reshape(len(data), -1).astype(np.float32) / 255.0


def load_data(args):
    try:
        train_x = read_idx(args.data / "train-images-idx3-ubyte.gz", args.max_train_samples)
        train_y = read_idx(args.data / "train-labels-idx1-ubyte.gz", args.max_train_samples)
        val_x = read_idx(args.data / "t10k-images-idx3-ubyte.gz", args.max_val_samples)
        val_y = read_idx(args.data / "t10k-labels-idx1-ubyte.gz", args.max_val_samples)
    except (OSError, ValueError, IndexError) as e:
        raise trainvisor.TrainerError(f"cannot read Fashion-MNIST from {args.data}: {e}") from e
    return tuple(torch.from_numpy(a) for a in (train_x, train_y, val_x, val_y))


class MLP(nn.Module):
    def __init__(self, dropout: float):
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Dropout(dropout),
                                    nn.Linear(256, 10))

    def forward(self, x):
        return self.layers(x)


def evaluate(model, x, y):
    model.eval()
    with torch.no_grad():
        logits = model(x)
        loss = nn.functional.cross_entropy(logits, y).item()
        accuracy = (logits.argmax(1) == y).float().mean().item()
    model.train()
    return loss, accuracy


def epoch_order(seed: int, epoch: int, n: int):
    # From the seed and the epoch alone, so a resumed run sees the same batches.
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1000003 + epoch))


def train(run, args) -> int:
    train_x, train_y, val_x, val_y = load_data(args)
    torch.manual_seed(args.seed)
    model = MLP(dropout=run.knobs().dropout)
    optimizer = run.make_optimizer(model.parameters())  # SGD or AdamW: the knob counts at start
    step, epoch, batch, batch_size = 0, 0, 0, run.knobs().batch_size
    saved = run.load_checkpoint()
    if saved is not None:
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        step, epoch, batch, batch_size = (saved[k] for k in ("step", "epoch", "batch",
                                                             "batch_size"))
        print(f"resumed at step {step} (epoch {epoch})", file=sys.stderr)

    def checkpoint():
        run.save_checkpoint({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                             "step": step, "epoch": epoch, "batch": batch,
                             "batch_size": batch_size})

    order = epoch_order(args.seed, epoch, len(train_x))
    val = (float("nan"), float("nan"))
    last_loss = float("nan")  # every record carries it: a policy reads the loss of each
    while (stop := run.should_stop(epoch)) is None:
        if batch == 0:
            batch_size = run.knobs().batch_size  # a new batch size counts from an epoch's start
            order = epoch_order(args.seed, epoch, len(train_x))
        changes = run.apply(optimizer, model)
        if changes:
            print(f"step {step}: revision {run.applied.revision}: {changes}", file=sys.stderr)
        started = time.perf_counter()
        idx = order[batch * batch_size:(batch + 1) * batch_size]
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(model(train_x[idx]), train_y[idx])
        grad_norm, flags = float("nan"), shm.FLAG_NON_FINITE_LOSS
        if torch.isfinite(loss):  # a diverged step is reported, not applied
            loss.backward()
            grad_norm, flags = run.clip_grad_norm(model.parameters()), 0
            optimizer.step()
        step, batch, last_loss = step + 1, batch + 1, loss.item()
        epoch_end = batch * batch_size >= len(train_x)
        run.push(step, epoch, last_loss, grad_norm, flags=flags,
                 samples_per_sec=len(idx) / (time.perf_counter() - started))
        if run.eval_due(step, epoch_end):
            val = evaluate(model, val_x, val_y)
            flags = shm.FLAG_EVAL | (shm.FLAG_EPOCH_END if epoch_end else 0)
            run.push(step, epoch, last_loss, grad_norm, flags=flags, val_loss=val[0],
                     val_accuracy=val[1])
        if epoch_end:
            epoch, batch = epoch + 1, 0
        if run.checkpoint_due(step):
            checkpoint()

    if stop.code == trainvisor.ExitCode.INTERRUPTED:
        checkpoint()
        print(f"interrupted at step {step} ({stop.reason}): checkpoint written", file=sys.stderr)
        return stop.code
    val = evaluate(model, val_x, val_y)
    run.push(step, epoch, last_loss, flags=shm.FLAG_EVAL | shm.FLAG_FINISHED, val_loss=val[0],
             val_accuracy=val[1])
    torch.save(model.state_dict(), run.out_dir / "model.pt")
    metrics = {"result": stop.reason, "steps": step, "epochs": epoch, "val_loss": val[0],
               "val_accuracy": val[1], "config_revision": run.applied.revision}
    (run.out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    print(f"{stop.reason} after {step} steps: val_accuracy {val[1]:.4f}", file=sys.stderr)
    return stop.code


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA, help="Fashion-MNIST's *-idx?-ubyte.gz")
    parser.add_argument("--max-train-samples", type=int, default=0, help="0: all 60000")
    parser.add_argument("--max-val-samples", type=int, default=0, help="0: all 10000")
    # The job's seed, which the host passes on; 1 outside a job.
    parser.add_argument("--seed", type=int, default=int(os.environ.get("TRAINVISOR_SEED", "1")))
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's choice)")
    args = parser.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    try:
        with trainvisor.attach() as run:
            return train(run, args)
    except trainvisor.TrainerError as e:
        print(f"train.py: {e}", file=sys.stderr)
        return trainvisor.ExitCode.BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
