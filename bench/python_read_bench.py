#!/usr/bin/python3
"""What live knobs and telemetry cost a Python trainer, each against a baseline from this run.

  handle.get()        vs a bare nested-dict read plus float(), and vs a Kiponos-style read (an
                      RLock acquired, then a walk over nested dicts along "a/b/c")
  snapshot, 2 keys    vs two bare nested-dict reads
  telemetry push      vs appending a dict record to a bounded deque (an in-process buffer)
  a training step     a small MLP on a 128x784 batch with SGD: run.apply + run.push +
                      run.should_stop each step against the same loop with fixed hyperparameters

Each figure is the median of repeats (timeit). A C++ writer process (tv_shm_test_writer, from
$TV_SHM_TEST_WRITER or build/bin/) holds the block; the client uses trainvisor._shmfast when it
is built (shm.implementation() is printed), and the ctypes figures come from a second process
with TRAINVISOR_SHM_NO_EXT=1 for reference. Run with Debian's /usr/bin/python3 (python3-torch).
After the table it prints one RESULT line per figure against its target, in the format of
bench/bench_result.hpp (scripts/bench.sh builds its table from them), and exits 1 when a target
was missed.
Usage: python_read_bench.py [--quick] [--json FILE]
"""

import argparse
import collections
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import timeit
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "python"))

from trainvisor import shm, trainer  # noqa: E402

LR = "training/optimizer/learning_rate"


def per_call_ns(stmt, env, number, repeats):
    return statistics.median(timeit.repeat(stmt, globals=env, number=number, repeat=repeats)) \
        / number * 1e9


def kiponos_read(lock, tree, path):
    with lock:
        node = tree
        for part in path.split("/"):
            node = node[part]
        return float(node)


def read_figures(block, number, repeats):
    cfg = {"training": {"optimizer": {"learning_rate": 0.05}, "control": {"max_epochs": 5}}}
    env = {"cfg": cfg, "lock": threading.RLock(), "kiponos_read": kiponos_read, "LR": LR,
           "h": block.resolve(LR, float),
           "snap": block.snapshot([(LR, 0.0), ("training/control/max_epochs", 0)]),
           "push": block.push, "buf": collections.deque(maxlen=1024), "nan": math.nan}
    f = {}
    f["dict_float_ns"] = per_call_ns('float(cfg["training"]["optimizer"]["learning_rate"])', env,
                                     number, repeats)
    f["kiponos_ns"] = per_call_ns("kiponos_read(lock, cfg, LR)", env, number, repeats)
    f["get_ns"] = per_call_ns("h.get()", env, number, repeats)
    f["two_dict_reads_ns"] = per_call_ns(
        'cfg["training"]["optimizer"]["learning_rate"]; cfg["training"]["control"]["max_epochs"]',
        env, number, repeats)
    f["snapshot_ns"] = per_call_ns("snap.read()", env, number, repeats)
    f["deque_record_ns"] = per_call_ns(
        'buf.append({"step": 1, "epoch": 0, "flags": 0, "loss": 0.5, "grad_norm": 1.0, '
        '"learning_rate": 0.05, "config_revision": 3})', env, number, repeats)
    f["push_ns"] = per_call_ns("push(1, 0, 0, 0.5, 1.0, 0.05, 3)", env, number // 4, repeats)
    block.poll_telemetry(1024)
    return f


def training_figures(run, steps, repeats):
    import torch
    from torch import nn

    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Dropout(0.1), nn.Linear(256, 10))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    x, y = torch.rand(128, 784), torch.randint(0, 10, (128,))

    def step():
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        return loss.item()

    def fixed(i):
        step()

    def live(i):
        if run.should_stop(0) is not None:
            raise RuntimeError("the bench's block asked to stop")
        run.apply(optimizer, model)
        run.push(i, 0, step())

    def live_calls_only():
        for i in range(steps):
            run.should_stop(0)
            run.apply(optimizer, model)
            run.push(i, 0, 0.5)

    def timed(fn, i):
        t0 = time.perf_counter()
        fn(i)
        return time.perf_counter() - t0

    for i in range(steps):  # warm up
        fixed(i), live(i)
    # Step by step, alternating which goes first, so that a shared machine's drifts hit both
    # loops alike; the medians drop the steps another process interrupted.
    fixed_s, live_s = [], []
    for i in range(steps * repeats):
        first, second = (fixed, live) if i % 2 else (live, fixed)
        a, b = timed(first, i), timed(second, i)
        fixed_s.append(a if first is fixed else b)
        live_s.append(b if first is fixed else a)
    calls = statistics.median(timeit.repeat(live_calls_only, number=1, repeat=repeats)) / steps
    run.block.poll_telemetry(1024)
    return {"step_fixed_us": statistics.median(fixed_s) * 1e6,
            "step_live_us": statistics.median(live_s) * 1e6, "steps_timed": len(fixed_s),
            "live_calls_per_step_ns": calls * 1e9}


def writer_path():
    env = os.environ.get("TV_SHM_TEST_WRITER")
    path = Path(env) if env else ROOT / "build" / "bin" / "tv_shm_test_writer"
    if not path.is_file():
        sys.exit(f"python_read_bench: {path} not found: build tv_shm_test_writer or set "
                 "TV_SHM_TEST_WRITER")
    return path


def ctypes_reference(name, number, repeats):
    """The read figures of the ctypes path, from a process that keeps to it."""
    code = ("import json, sys; sys.path.insert(0, sys.argv[1]); import python_read_bench as b; "
            "from trainvisor import shm; blk = shm.Block(sys.argv[2], read_write=True); "
            "print(json.dumps(b.read_figures(blk, int(sys.argv[3]), int(sys.argv[4]))))")
    env = dict(os.environ, TRAINVISOR_SHM_NO_EXT="1")
    out = subprocess.run([sys.executable, "-c", code, str(Path(__file__).parent), name,
                          str(number), str(repeats)], env=env, capture_output=True, text=True,
                         check=True).stdout
    return json.loads(out)


def report(f, c):
    rows = [
        ("handle.get()", f["get_ns"], f"{f['get_ns'] / f['dict_float_ns']:.2f}x dict+float "
         f"(goal <= 2.5x); Kiponos-style read {f['kiponos_ns']:.0f} ns is "
         f"{f['kiponos_ns'] / f['get_ns']:.1f}x slower (goal >= 10x)"),
        ("snapshot, 2 keys", f["snapshot_ns"], f"{f['snapshot_ns'] / f['two_dict_reads_ns']:.2f}x "
         f"two dict reads ({f['two_dict_reads_ns']:.0f} ns); goal <= 1000 ns"),
        ("telemetry push", f["push_ns"], f"{f['push_ns'] / f['deque_record_ns']:.2f}x a dict "
         f"record into a deque ({f['deque_record_ns']:.0f} ns); goal <= 1000 ns"),
    ]
    print(f"implementation: {f['implementation']}; baseline dict+float {f['dict_float_ns']:.0f} ns")
    for label, ns, text in rows:
        print(f"  {label:18} {ns:8.0f} ns   {text}")
    overhead = f["step_live_us"] / f["step_fixed_us"] - 1
    print(f"  {'training step':18} {f['step_live_us']:8.1f} us   vs {f['step_fixed_us']:.1f} us "
          f"fixed: {overhead * 100:+.2f} % (goal <= 1 %); the live calls alone "
          f"{f['live_calls_per_step_ns']:.0f} ns = "
          f"{f['live_calls_per_step_ns'] / 1e3 / f['step_fixed_us'] * 100:.3f} % of a step")
    print(f"ctypes path for reference: get {c['get_ns']:.0f} ns, snapshot {c['snapshot_ns']:.0f} "
          f"ns, push {c['push_ns']:.0f} ns")


def result(name, value, unit, target, ok):
    """One RESULT line (bench/bench_result.hpp); `ok` None is an informational figure."""
    verdict = "info" if ok is None else ("ok" if ok else "MISSED")
    print(f"RESULT\t{name}\t{value:.4g}\t{unit}\t{target}\t{verdict}")
    return ok is not False


def verdicts(f):
    """The RESULT lines of the figures; False when a target was missed."""
    get_vs_floor = f["get_ns"] / f["dict_float_ns"]
    kiponos_vs_get = f["kiponos_ns"] / f["get_ns"]
    overhead = (f["step_live_us"] / f["step_fixed_us"] - 1) * 100
    live_share = f["live_calls_per_step_ns"] / 1e3 / f["step_fixed_us"] * 100
    met = [
        result("handle.get() ns", f["get_ns"], " ns", "", None),
        result("dict read + float() ns (the floor)", f["dict_float_ns"], " ns", "", None),
        result("handle.get() / dict read + float()", get_vs_floor, "x", "<= 2.50x",
               get_vs_floor <= 2.5),
        result("Kiponos-style read / handle.get()", kiponos_vs_get, "x", ">= 10.00x",
               kiponos_vs_get >= 10),
        result("snapshot of 2 keys ns", f["snapshot_ns"], " ns", "<= 1000 ns",
               f["snapshot_ns"] <= 1000),
        result("telemetry push ns", f["push_ns"], " ns", "<= 1000 ns", f["push_ns"] <= 1000),
        result("PyTorch step, live / fixed - 1", overhead, "%", "", None),
        result("live calls per step / step", live_share, "%", "<= 1.00%", live_share <= 1),
    ]
    return all(met)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats (a smoke run)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    number, repeats, steps = (20000, 5, 20) if args.quick else (200000, 15, 50)
    name = f"trainvisor.bench-python-read-{os.getpid()}"
    writer = subprocess.Popen([writer_path(), "serve", name, f"{LR}=f64:0.05",
                               "training/control/max_epochs=i64:5", "trainvisor/revision=i64:1"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        if writer.stdout.readline().strip() != "ready":
            sys.exit("python_read_bench: the writer did not create the block")
        with tempfile.TemporaryDirectory() as out_dir:
            env = {"TRAINVISOR_BLOCK": name, "TRAINVISOR_JOB_ID": name.split(".", 1)[1],
                   "TRAINVISOR_OUT_DIR": out_dir, "TRAINVISOR_ATTEMPT": "0",
                   "TRAINVISOR_LEASE_DIGEST": "0" * 64}
            with trainer.attach(env, handle_sigterm=False) as run:
                figures = {"implementation": shm.implementation(),
                           **read_figures(run.block, number, repeats),
                           **training_figures(run, steps, repeats)}
        reference = ctypes_reference(name, number // 10, repeats)
    finally:
        writer.stdin.close()
        writer.wait(timeout=30)
        subprocess.run([writer_path(), "remove-quietly", name], capture_output=True)
    report(figures, reference)
    if args.json:
        args.json.write_text(json.dumps({**figures, "ctypes": reference}, indent=2) + "\n")
    sys.exit(0 if verdicts(figures) else 1)


if __name__ == "__main__":
    main()
