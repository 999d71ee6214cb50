"""The Python client against blocks written by a C++ process (tests/shm/shm_test_process.cpp).

Real processes throughout: a C++ writer, Python reader and trainer processes, and a C++ agent
that polls what the Python trainer pushed.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from trainvisor import shm

WRITER = os.environ.get("TV_SHM_TEST_WRITER", "")
ROLES = Path(__file__).with_name("shm_roles.py")
ENV = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))

pytestmark = pytest.mark.skipif(not Path(WRITER).is_file(),
                                reason="TV_SHM_TEST_WRITER is not set (run through ctest)")


@pytest.fixture
def name(request):
    n = f"trainvisor.pytest-{request.node.name.replace('_', '-')}-{os.getpid()}"
    subprocess.run([WRITER, "remove-quietly", n], capture_output=True)
    yield n
    Path("/dev/shm", n).unlink(missing_ok=True)


def facts(text):
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def start(*args, **kw):
    return subprocess.Popen(list(args), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True, env=ENV, **kw)


def hold_block(name, *entries):
    """A C++ writer process that creates the block and holds it until its stdin closes."""
    p = start(WRITER, "create", name, *entries)
    assert p.stdout.readline().strip() == "ready"
    p.stdout.readline()  # took_over=...
    return p


def release(p):
    out, _ = p.communicate(timeout=30)
    assert p.returncode == 0, out
    return out


def test_python_readers_never_see_a_broken_invariant(name):
    writer = start(WRITER, "invariant-writer", name, "0")
    assert writer.stdout.readline().strip() == "ready"
    readers = [start(sys.executable, str(ROLES), "reader", name, "100000") for _ in range(2)]
    results = [r.communicate(timeout=240)[0] for r in readers]
    writer_out = release(writer)
    for r, out in zip(readers, results):
        f = facts(out)
        assert r.returncode == 0, out
        assert f["violations"] == "0", out
        assert int(f["fresh"]) > 0, out
        assert int(f["distinct"]) > 1, out  # the values moved under the reader
    assert int(facts(writer_out)["batches"]) > 0


def test_python_trainer_telemetry_reaches_a_cpp_agent(name):
    holder = hold_block(name, "training/optimizer/learning_rate=f64:0.125",
                        "training/control/max_epochs=i64:3")
    steps = 500
    trainer = subprocess.run([sys.executable, str(ROLES), "trainer", name, str(steps)],
                             capture_output=True, text=True, env=ENV, timeout=120)
    assert trainer.returncode == 0, trainer.stderr
    agent = subprocess.run([WRITER, "telemetry-expect", name, str(steps), "20"],
                           capture_output=True, text=True, timeout=60)
    release(holder)
    got = facts(agent.stdout)
    assert agent.returncode == 0, agent.stdout
    assert got["received"] == str(steps) and got["missed"] == "0"
    assert got["out_of_order"] == "0"
    assert got["last_step"] == str(steps - 1)
    assert int(got["flags"]) & shm.FLAG_EVAL
    assert got["loss_sum"] == facts(trainer.stdout)["loss_sum"]
    assert facts(trainer.stdout)["last_lr"] == "0.125"


def test_cpp_telemetry_reaches_python(name):
    holder = hold_block(name)
    subprocess.run([WRITER, "telemetry-push", name, "40"], check=True, capture_output=True)
    with shm.Block(name, read_write=True) as block:
        records, missed = block.poll_telemetry(100)
    release(holder)
    assert missed == 0
    assert [r.step for r in records] == list(range(40))
    assert records[3].loss == 1.0 / 4


def test_reads_every_type_and_a_key_that_appears_later(name):
    release(hold_block(name, "training/optimizer/learning_rate=f64:0.5",
                       "training/control/max_epochs=i64:7", "training/control/early_stop=bool:true",
                       "training/optimizer/name=str:adamw"))
    block = shm.Block(name)
    assert block.resolve("training/optimizer/learning_rate", float).get(0.0) == 0.5
    assert block.resolve("training/control/max_epochs", int).get(0) == 7
    assert block.resolve("training/control/early_stop", bool).get(False) is True
    assert block.resolve("training/optimizer/name", str).get("sgd") == "adamw"
    late = block.resolve("training/regularization/grad_clip_max", float)
    assert late.get(2.5) == 2.5 and not late.bound
    snap = block.snapshot([("training/control/max_epochs", 0), ("training/late_flag", False)])
    assert snap.read() == (True, (7, False))
    # A new writer takes the block over and adds the keys; the same handle sees them.
    release(hold_block(name, "training/optimizer/learning_rate=f64:0.25",
                       "training/regularization/grad_clip_max=f64:1.0",
                       "training/late_flag=bool:true"))
    assert late.get(2.5) == 1.0 and late.bound
    assert block.resolve("training/optimizer/learning_rate", float).get(0.0) == 0.25
    assert snap.read() == (True, (7, True))
    assert snap.generation >= 2


def test_errors_name_the_block_or_key(name):
    with pytest.raises(shm.ShmError, match=name + ".*does not exist"):
        shm.Block(name)
    with pytest.raises(shm.ShmError, match="'trainvisor.a/b'"):
        shm.Block("trainvisor.a/b")
    with pytest.raises(shm.ShmError, match="'job id/x'"):
        shm.block_name_for_job("job id/x")
    assert shm.block_name_for_job("job-1") == "trainvisor.job-1"
    release(hold_block(name, "training/control/max_epochs=i64:7"))
    block = shm.Block(name)
    with pytest.raises(shm.ShmError, match="'training/control/max_epochs'.*holds int64, not float64"):
        block.resolve("training/control/max_epochs", float)
    with pytest.raises(shm.ShmError, match="'bad key'"):
        block.resolve("bad key", float)
    with pytest.raises(shm.ShmError, match="read-only"):
        block.push_telemetry(step=1)
    with pytest.raises(shm.ShmError, match="too long"):
        block.snapshot([("training/s", "x" * 49)])


def test_a_short_or_cut_block_is_a_clear_error_not_a_crash(name):
    path = Path("/dev/shm", name)
    path.write_bytes(b"\0" * 7)
    with pytest.raises(shm.ShmError, match=name + ".* is 7 bytes, smaller than a block header"):
        shm.Block(name)
    path.unlink()
    release(hold_block(name, "training/control/max_epochs=i64:7"))
    block = shm.Block(name, read_write=True)
    assert block.lease() == (0, "0" * 64)  # the test writer stamps no lease
    block.check()
    expected = path.stat().st_size
    os.truncate(path, 0)  # any process of the same user can
    block.push_telemetry(step=1)  # reads and writes zeros instead of raising SIGBUS
    with pytest.raises(shm.ShmError, match=f"was truncated to 0 bytes \\(expected {expected}\\)"):
        block.check()
    with pytest.raises(shm.ShmError, match="smaller than a block header"):
        shm.Block(name)
