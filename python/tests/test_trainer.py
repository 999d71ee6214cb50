"""The trainer API (trainvisor.trainer) and the example script against blocks a C++ process
serves (tests/shm/shm_test_process.cpp, mode serve), as the host's config agent would.

ctest runs this file twice: with the C extension and with TRAINVISOR_SHM_NO_EXT=1 (ctypes).
"""

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import trainvisor
from trainvisor import shm, trainer

torch = pytest.importorskip("torch")

WRITER = os.environ.get("TV_SHM_TEST_WRITER", "")
PYTHONPATH = str(Path(__file__).resolve().parents[1])
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "python-trainer" / "train.py"
NO_LEASE = "0" * 64
LEASE_A = "a1" * 32
LEASE_B = "b2" * 32

pytestmark = pytest.mark.skipif(not Path(WRITER).is_file(),
                                reason="TV_SHM_TEST_WRITER is not set (run through ctest)")


class Agent:
    """A C++ config writer serving a block; set() applies one batch, as the agent does."""

    def __init__(self, name, *entries, lease=None):
        args = [WRITER, "serve", name] + ([lease] if lease else []) + list(entries)
        self.p = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.p.stdout.readline().strip() == "ready"
        self.p.stdout.readline()  # generation=1

    def command(self, line):
        self.p.stdin.write(line + "\n")
        self.p.stdin.flush()
        return self.p.stdout.readline().strip()

    def set(self, *entries):
        answer = self.command(" ".join(entries))
        assert answer.startswith("applied"), answer

    def close(self):
        if self.p.poll() is None:
            self.p.stdin.close()
            self.p.wait(timeout=30)
        assert self.p.returncode == 0


@pytest.fixture
def name(request):
    n = f"trainvisor.pytest-{request.node.name.replace('_', '-')}-{os.getpid()}"[:200]
    subprocess.run([WRITER, "remove-quietly", n], capture_output=True)
    yield n
    Path("/dev/shm", n).unlink(missing_ok=True)


@pytest.fixture
def agents():
    started = []
    yield lambda *a, **kw: started.append(Agent(*a, **kw)) or started[-1]
    for a in started:
        a.close()


def job_env(name, out_dir, attempt=0, digest=NO_LEASE, **extra):
    return {"TRAINVISOR_BLOCK": name, "TRAINVISOR_JOB_ID": name.removeprefix("trainvisor."),
            "TRAINVISOR_OUT_DIR": str(out_dir), "TRAINVISOR_ATTEMPT": str(attempt),
            "TRAINVISOR_LEASE_DIGEST": digest, **extra}


def test_the_expected_implementation_serves():
    wanted = ("extension" if os.environ.get("TRAINVISOR_SHM_EXT")
              and not os.environ.get("TRAINVISOR_SHM_NO_EXT") else "ctypes")
    assert shm.implementation() == wanted


def test_attach_reads_the_environment_and_typed_knobs(name, agents, tmp_path):
    agents(name, "training/optimizer/learning_rate=f64:0.125", "trainvisor/revision=i64:3",
           "training/control/batch_size=i64:32")
    with trainvisor.attach(job_env(name, tmp_path), handle_sigterm=False) as run:
        k = run.knobs()
        assert (k.learning_rate, k.revision, k.batch_size) == (0.125, 3, 32)
        assert k.momentum == 0.9 and k.optimizer == "sgd"  # not in the block: the schema's
        assert run.knob(trainer.LEARNING_RATE).get() == 0.125
        assert run.knob(trainer.MAX_EPOCHS).get() == 5
        assert run.knob(trainer.EARLY_STOP).get() is False
        assert run.out_dir == tmp_path and run.attempt == 0
        with pytest.raises(trainvisor.TrainerError, match="unknown knob 'training/lr'"):
            run.knob("training/lr")


def test_attach_refuses_a_missing_or_bad_environment(name, agents, tmp_path):
    env = job_env(name, tmp_path)
    for key in ("TRAINVISOR_BLOCK", "TRAINVISOR_LEASE_DIGEST"):
        partial = {k: v for k, v in env.items() if k != key}
        with pytest.raises(trainvisor.TrainerError, match=f"^{key} not set: this script runs as"):
            trainvisor.attach(partial)
    bad = {"TRAINVISOR_ATTEMPT": "two", "TRAINVISOR_LEASE_DIGEST": "abc",
           "TRAINVISOR_ORPHAN_AFTER_S": "-1", "TRAINVISOR_OUT_DIR": str(tmp_path / "none")}
    for key, value in bad.items():
        with pytest.raises(trainvisor.TrainerError, match=f"{key}=.*{value}"):
            trainvisor.attach({**env, key: value})
    with pytest.raises(trainvisor.TrainerError, match=f"cannot attach to the job's block:.*{name}"):
        trainvisor.attach(env)
    agents(name, "training/optimizer/learning_rate=i64:1")  # a knob with the wrong type
    with pytest.raises(trainvisor.TrainerError, match="learning_rate.*int64, not float64"):
        trainvisor.attach(env)


def test_a_block_of_another_lease_is_refused_naming_both_blocks(name, agents, tmp_path):
    agents(name, lease=f"2:{LEASE_B}")
    env = job_env(name, tmp_path, attempt=1, digest=LEASE_A, TRAINVISOR_JOB_ID="other-job")
    with pytest.raises(trainvisor.TrainerError) as e:
        trainvisor.attach(env)
    assert str(e.value) == (
        f"the block {name} belongs to attempt 2 (lease b2b2b2b2...), not to this job's lease "
        f"(attempt 1 (lease a1a1a1a1...)); job other-job's block is trainvisor.other-job, "
        f"not {name}")
    with trainvisor.attach(job_env(name, tmp_path, 2, LEASE_B.upper()), handle_sigterm=False):
        pass  # its own lease, in either case of hex digits


def two_group_sgd(run):
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Dropout(0.0), torch.nn.Linear(4, 2))
    groups = [{"params": model[0].parameters()}, {"params": model[2].parameters()}]
    return model, run.make_optimizer(groups)


def test_apply_moves_every_param_group_at_the_next_call(name, agents, tmp_path):
    agent = agents(name, "training/optimizer/learning_rate=f64:0.1")
    with trainvisor.attach(job_env(name, tmp_path), handle_sigterm=False) as run:
        model, opt = two_group_sgd(run)
        assert isinstance(opt, torch.optim.SGD)
        assert run.apply(opt, model) == {}  # built from the same knobs
        agent.set("training/optimizer/learning_rate=f64:0.2", "training/optimizer/momentum=f64:0.5",
                  "training/optimizer/weight_decay=f64:0.01",
                  "training/regularization/dropout=f64:0.3", "trainvisor/revision=i64:4")
        assert [g["lr"] for g in opt.param_groups] == [0.1, 0.1]  # nothing moves by itself
        changes = run.apply(opt, model)
        assert changes == {trainer.LEARNING_RATE: (0.1, 0.2), trainer.MOMENTUM: (0.9, 0.5),
                           trainer.WEIGHT_DECAY: (0.0, 0.01), trainer.DROPOUT: (0.0, 0.3)}
        for g in opt.param_groups:
            assert (g["lr"], g["momentum"], g["weight_decay"]) == (0.2, 0.5, 0.01)
        assert model[1].p == 0.3 and run.applied.revision == 4
        assert run.apply(opt, model) == {}
        # Out of range: refused, the old value kept, the next record flagged.
        agent.set("training/optimizer/learning_rate=f64:50", "trainvisor/revision=i64:5")
        assert run.refresh().refused == (
            "training/optimizer/learning_rate: 50.0 is above the maximum 10; keeping 0.2",)
        assert run.apply(opt, model) == {} and opt.param_groups[0]["lr"] == 0.2
        assert run.applied.revision == 5
        run.push(1, 0, 0.5)
        run.push(2, 0, 0.5)
        with shm.Block(name, read_write=True) as agent_side:
            records, _ = agent_side.poll_telemetry()
        assert [r.flags & shm.FLAG_CONFIG_REFUSED for r in records] == [shm.FLAG_CONFIG_REFUSED, 0]


def test_adamw_keeps_its_betas(name, agents, tmp_path):
    agent = agents(name, "training/optimizer/name=str:adamw")
    with trainvisor.attach(job_env(name, tmp_path), handle_sigterm=False) as run:
        model, opt = two_group_sgd(run)
        assert isinstance(opt, torch.optim.AdamW)
        agent.set("training/optimizer/momentum=f64:0.5",
                  "training/optimizer/learning_rate=f64:0.01", "training/optimizer/name=str:sgd")
        assert run.apply(opt, model) == {trainer.LEARNING_RATE: (0.05, 0.01)}
        assert opt.param_groups[0]["betas"] == (0.9, 0.999)
        assert run.applied.optimizer == "sgd"  # applied, yet the optimizer counts at start only


def test_knobs_come_from_one_generation(name, agents, tmp_path):
    agent = agents(name, "training/optimizer/learning_rate=f64:0", "trainvisor/revision=i64:0")
    with trainvisor.attach(job_env(name, tmp_path), handle_sigterm=False) as run:
        batches = "".join(f"training/optimizer/learning_rate=f64:{i / 1000} trainvisor/revision="
                          f"i64:{i}\n" for i in range(1, 2001))
        agent.p.stdin.write(batches)
        agent.p.stdin.flush()
        seen = set()
        while len(seen) < 2000 and (not seen or max(seen) < 2000):
            k = run.knobs()
            assert k.learning_rate == k.revision / 1000, k
            seen.add(k.revision)
        assert len(seen) > 1  # the values moved under the reader
        for _ in range(2000):
            assert agent.p.stdout.readline().startswith("applied")


def test_telemetry_carries_the_applied_revision_and_rate(name, agents, tmp_path):
    agent = agents(name, "training/optimizer/learning_rate=f64:0.1", "trainvisor/revision=i64:7")
    with trainvisor.attach(job_env(name, tmp_path), handle_sigterm=False) as run:
        run.refresh()
        run.push(1, 0, 2.5, 1.25)
        agent.set("training/optimizer/learning_rate=f64:0.3", "trainvisor/revision=i64:8")
        run.push(2, 0, 2.0, 1.0)  # not refreshed yet: still revision 7's values
        run.refresh()
        run.push(3, 1, flags=shm.FLAG_EVAL, val_loss=0.75, val_accuracy=0.5)
        with shm.Block(name, read_write=True) as agent_side:
            records, missed = agent_side.poll_telemetry()
    assert missed == 0
    assert [(r.step, r.epoch, r.config_revision, r.learning_rate) for r in records] == [
        (1, 0, 7, 0.1), (2, 0, 7, 0.1), (3, 1, 8, 0.3)]
    assert (records[0].loss, records[0].grad_norm) == (2.5, 1.25)
    assert records[2].flags == shm.FLAG_EVAL and records[2].val_accuracy == 0.5
    assert math.isnan(records[2].loss)
    assert abs(records[0].wall_time_ns - time.time_ns()) < 60e9


def test_should_stop_on_max_epochs_and_early_stop(name, agents, tmp_path):
    agent = agents(name, "training/control/max_epochs=i64:2")
    with trainvisor.attach(job_env(name, tmp_path), handle_sigterm=False) as run:
        assert run.should_stop(1) is None
        assert run.should_stop(2) == (trainvisor.ExitCode.COMPLETED, "max_epochs")
        agent.set("training/control/early_stop=bool:true")
        assert run.should_stop(0) is None  # seen at the next refresh, as at the next step
        run.refresh()
        assert run.should_stop(0) == (trainvisor.ExitCode.EARLY_STOPPED, "early_stop")


def test_eval_and_checkpoint_cadence(name, agents, tmp_path):
    agent = agents(name)
    with trainvisor.attach(job_env(name, tmp_path), handle_sigterm=False) as run:
        assert not run.eval_due(3, False) and run.eval_due(3, True)
        assert not run.checkpoint_due(3)
        agent.set("training/control/eval_every=i64:3", "training/control/checkpoint_every=i64:2")
        run.refresh()
        assert run.eval_due(3, False) and not run.eval_due(4, True)
        assert run.checkpoint_due(4) and not run.checkpoint_due(3)


def test_sigterm_interrupts_and_a_checkpoint_round_trips(name, agents, tmp_path):
    agents(name)
    before = signal.getsignal(signal.SIGTERM)
    with trainvisor.attach(job_env(name, tmp_path)) as run:
        assert not run.interrupted
        assert run.load_checkpoint() is None
        os.kill(os.getpid(), signal.SIGTERM)
        assert run.interrupted and run.should_stop(0) == (trainvisor.ExitCode.INTERRUPTED,
                                                          "SIGTERM")
        state = {"weights": torch.arange(6.0).reshape(2, 3), "step": 17}
        assert run.save_checkpoint(state) == tmp_path / "checkpoint.pt"
    assert signal.getsignal(signal.SIGTERM) is before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt"]  # no temporary left
    with trainvisor.attach(job_env(name, tmp_path), handle_sigterm=False) as run:
        loaded = run.load_checkpoint()
        assert loaded["step"] == 17 and torch.equal(loaded["weights"], state["weights"])
        (tmp_path / "checkpoint.pt").write_bytes(b"not a checkpoint")
        with pytest.raises(trainvisor.TrainerError, match="checkpoint.pt is unreadable"):
            run.load_checkpoint()


def test_a_lease_taken_over_interrupts_and_silences_telemetry(name, agents, tmp_path):
    first = agents(name, lease=f"1:{LEASE_A}")
    with trainvisor.attach(job_env(name, tmp_path, 1, LEASE_A), handle_sigterm=False) as run:
        old_block = shm.Block(name, read_write=True)  # the block this run is attached to
        assert not run.interrupted
        first.close()
        agents(name, lease=f"2:{LEASE_B}")  # the job's next attempt: a new block by that name
        assert run.interrupt_reason == (f"the block {name} belongs to attempt 2 (lease "
                                        "b2b2b2b2...), not mine (attempt 1 (lease a1a1a1a1...))")
        assert run.should_stop(0).code == trainvisor.ExitCode.INTERRUPTED
        run.push(1, 0, 0.5)
        assert old_block.poll_telemetry() == ([], 0)
        old_block.close()


def test_a_silent_agent_interrupts_when_asked_to_watch(name, agents, tmp_path):
    agent = agents(name)
    watched = trainvisor.attach(job_env(name, tmp_path, TRAINVISOR_ORPHAN_AFTER_S="1.5"),
                                handle_sigterm=False)
    unwatched = trainvisor.attach(job_env(name, tmp_path), handle_sigterm=False)
    time.sleep(0.5)
    assert not watched.interrupted  # the agent still beats, every 100 ms
    assert agent.command("silent") == "silent"
    deadline = time.monotonic() + 10
    while not watched.interrupted and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "no heartbeat from the config agent for" in (watched.interrupt_reason or "")
    assert "(limit 1.5 s): its host is gone" in watched.interrupt_reason
    assert not unwatched.interrupted
    watched.close()
    unwatched.close()


# ---- both implementations ----------------------------------------------------------------------

SAME = r"""
import math, sys
from trainvisor import shm
b = shm.Block(sys.argv[1], read_write=True)
out = [shm.implementation()]
lr = b.resolve("training/optimizer/learning_rate", float)
n = b.resolve("training/control/max_epochs", int, 5)
tag = b.resolve("training/optimizer/name", str, "sgd")
flag = b.resolve("training/control/early_stop", bool)
out += [lr.get(), lr.get(2), n.get(), n.get(9), tag.get(), tag.get("x"), flag.get(), lr.bound,
        b.resolve("training/missing", float, 1.5).get(), b.resolve("training/missing", str).get()]
for h, bad in ((lr, "x"), (n, 1.5), (tag, 3)):
    try:
        h.get(bad)
    except shm.ShmError as e:
        out.append(str(e))
for kind, bad in ((float, "x"), (int, 2.5), (str, 1)):
    try:
        b.resolve("training/other", kind, bad)
    except shm.ShmError as e:
        out.append(str(e))
s = b.snapshot([("training/optimizer/learning_rate", 0.0), ("training/control/max_epochs", 0),
                ("training/optimizer/name", ""), ("training/control/early_stop", True)])
out += [s.read(), s.read(), s.generation]
b.push(3, 1, 2, 0.5, 0.25, 0.125, 9, 1.5, 0.75, 100.0)
b.push(4)
try:
    b.push(1.5)
except TypeError:
    out.append("push(1.5): TypeError")
records, missed = b.poll_telemetry()
out += [[r._replace(wall_time_ns=0) for r in records], missed]
b.close()
try:
    b.push(5)
except shm.ShmError as e:
    out.append(str(e))
print(repr(out))
"""


def test_the_extension_and_ctypes_give_the_same_results(name, agents):
    if not os.environ.get("TRAINVISOR_SHM_EXT"):
        pytest.skip("TRAINVISOR_SHM_EXT is not set (run through ctest)")
    agents(name, "training/optimizer/learning_rate=f64:0.25", "training/control/max_epochs=i64:7",
           "training/optimizer/name=str:adamw")
    results = {}
    for off in ("", "1"):
        env = dict(os.environ, TRAINVISOR_SHM_NO_EXT=off, PYTHONPATH=PYTHONPATH)
        p = subprocess.run([sys.executable, "-c", SAME, name], env=env, capture_output=True,
                           text=True, timeout=60)
        assert p.returncode == 0, p.stderr
        implementation, rest = p.stdout.split(",", 1)
        results[implementation] = rest
    assert set(results) == {"['extension'", "['ctypes'"}
    assert results["['extension'"] == results["['ctypes'"]
    assert "default 'x' for key 'training/optimizer/learning_rate' is not a float" in rest
    assert "block is NULL" in rest


# ---- the example script ------------------------------------------------------------------------

def start_example(name, out_dir, *flags):
    env = dict(os.environ, PYTHONPATH=PYTHONPATH, **job_env(name, out_dir))
    return subprocess.Popen([sys.executable, str(EXAMPLE), "--max-train-samples", "256",
                             "--max-val-samples", "64", "--threads", "1", *flags],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def poll_until(agent_side, proc, done, timeout=120):
    """Polls telemetry into a list until done(records) or the process exits."""
    records = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got, _ = agent_side.poll_telemetry(1024)
        records += got
        if done(records) or proc.poll() is not None:
            return records
        time.sleep(0.005)
    raise AssertionError(f"timed out; {len(records)} records")


def test_the_example_trains_takes_a_live_change_and_stops_early(name, agents, tmp_path):
    agent = agents(name, "training/control/max_epochs=i64:100000",
                   "training/optimizer/learning_rate=f64:0.05",
                   "training/control/batch_size=i64:32", "training/control/eval_every=i64:5")
    with shm.Block(name, read_write=True) as agent_side:
        proc = start_example(name, tmp_path)
        records = poll_until(agent_side, proc, lambda r: len(r) >= 10)
        agent.set("training/optimizer/learning_rate=f64:0.2", "trainvisor/revision=i64:5")
        records += poll_until(agent_side, proc, lambda r: r and r[-1].config_revision == 5)
        agent.set("training/control/early_stop=bool:true", "trainvisor/revision=i64:6")
        _, err = proc.communicate(timeout=120)
        records += agent_side.poll_telemetry(1024)[0]
    assert proc.returncode == trainvisor.ExitCode.EARLY_STOPPED, err
    assert "revision 5: {'training/optimizer/learning_rate': (0.05, 0.2)}" in err
    by_revision = {r.config_revision: r.learning_rate for r in records}
    assert by_revision[0] == 0.05 and by_revision[5] == 0.2
    assert all(math.isfinite(r.loss) and r.grad_norm > 0 for r in records
               if not r.flags & shm.FLAG_FINISHED)
    evals = [r for r in records if r.flags & shm.FLAG_EVAL]
    assert evals and all(0 <= r.val_accuracy <= 1 for r in evals)
    assert all(r.step % 5 == 0 for r in evals if not r.flags & shm.FLAG_FINISHED)
    assert records[-1].flags & shm.FLAG_FINISHED and records[-1].config_revision == 6
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["result"] == "early_stop" and metrics["config_revision"] == 6
    assert metrics["steps"] == records[-1].step
    assert set(torch.load(tmp_path / "model.pt")) == {"layers.0.weight", "layers.0.bias",
                                                       "layers.3.weight", "layers.3.bias"}


def test_the_example_checkpoints_on_sigterm_and_resumes(name, agents, tmp_path):
    agent = agents(name, "training/control/max_epochs=i64:100000",
                   "training/control/batch_size=i64:32")
    with shm.Block(name, read_write=True) as agent_side:
        proc = start_example(name, tmp_path)
        poll_until(agent_side, proc, lambda r: len(r) >= 20)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == trainvisor.ExitCode.INTERRUPTED, err
        assert "(SIGTERM): checkpoint written" in err
        stopped_at = torch.load(tmp_path / "checkpoint.pt")["step"]
        assert stopped_at >= 10 and not (tmp_path / "model.pt").exists()
        agent.set("training/control/max_epochs=i64:4")  # 8 steps an epoch: 32 in all
        agent_side.poll_telemetry(1024)
        proc = start_example(name, tmp_path)
        _, err = proc.communicate(timeout=120)
        records, _ = agent_side.poll_telemetry(1024)
    assert proc.returncode == trainvisor.ExitCode.COMPLETED, err
    assert f"resumed at step {stopped_at}" in err
    if stopped_at < 32:
        assert records[0].step == stopped_at + 1
    assert json.loads((tmp_path / "metrics.json").read_text())["steps"] == max(stopped_at, 32)


def test_the_example_refuses_to_run_outside_a_job(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRAINVISOR_")}
    p = subprocess.run([sys.executable, str(EXAMPLE)], env=dict(env, PYTHONPATH=PYTHONPATH),
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == trainvisor.ExitCode.BAD_INPUT
    assert "train.py: TRAINVISOR_BLOCK, TRAINVISOR_JOB_ID" in p.stderr
