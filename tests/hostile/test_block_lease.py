"""One lease, one trainer: a host dies, another host on the same machine takes its job over. The
dead host's trainer (an orphan) must stop as soon as the block is not its lease's, saying why,
well before --orphan-after; it must never write into the new holder's telemetry ring (the new
holder's block is a new object the orphan does not have mapped); the job completes once."""
import json
import os
import signal
import time

from conftest import start_coordinator, wait_for
from hosts import alive, block_path, job, mapped_block, read, start_host, trainer_pid

MANIFEST = """
[[jobs]]
name = "long"
model = "tiny"
seed = 1
[jobs.hyper]
training.control.max_epochs = 100000
"""

# Far longer than the takeover takes: an orphan that stops within the bound below stopped
# because of the lease, not because the block's heartbeat went stale.
ORPHAN_AFTER = "30"
STOP_BOUND_S = 10


def test_orphan_stops_when_another_host_takes_its_block(procs, tmp):
    c = start_coordinator(procs, tmp, MANIFEST, ["--stale-after", "1.5", "--sweep-every", "0.3"])
    host_a, log_a, work_a = start_host(procs, c, tmp, "host-a", "--orphan-after", ORPHAN_AFTER)
    wait_for(lambda: job(c, "long")["status"] == "running", 60, "host A to run the job")
    job_id = job(c, "long")["id"]
    orphan = wait_for(lambda: trainer_pid(work_a, job_id), 20, "host A's trainer")
    wait_for(lambda: os.path.exists(block_path(job_id)), 20, "the job's block")
    old_inode = os.stat(block_path(job_id)).st_ino

    # Host A dies; its trainer is frozen so that what it has mapped can be looked at after the
    # takeover, before it could notice anything.
    host_a.send_signal(signal.SIGKILL)
    host_a.wait()
    os.kill(orphan, signal.SIGSTOP)
    try:
        host_b, log_b, work_b = start_host(procs, c, tmp, "host-b", "--orphan-after",
                                           ORPHAN_AFTER)
        wait_for(lambda: job(c, "long")["attempt"] == 2 and job(c, "long")["status"] == "running",
                 60, "host B to take the job over")
        trainer_b = wait_for(lambda: trainer_pid(work_b, job_id), 20, "host B's trainer")
        wait_for(lambda: mapped_block(trainer_b, job_id), 20, "host B's trainer to attach")

        # The name now holds a new object, stamped with attempt 2; the orphan's mapping is the
        # old one, unlinked: whatever it pushes cannot reach host B's ring.
        new_inode = os.stat(block_path(job_id)).st_ino
        assert new_inode != old_inode
        assert mapped_block(trainer_b, job_id) == (new_inode, False)
        assert mapped_block(orphan, job_id) == (old_inode, True)
        inspect = json.loads(c.cli("shm", "inspect", job_id, "-o", "json").stdout)
        assert inspect["lease"]["attempt"] == 2, inspect["lease"]
        assert inspect["writer"]["pid"] == host_b.pid, inspect["writer"]
        assert "belonged to attempt 1" in read(log_b), read(log_b)
    finally:
        os.kill(orphan, signal.SIGCONT)

    # The orphan sees the stamp on its own mapping at its next step.
    thawed = time.monotonic()
    wait_for(lambda: not alive(orphan), STOP_BOUND_S, "the orphaned trainer to stop")
    stopped_after = time.monotonic() - thawed
    log = read(os.path.join(work_a, job_id, "trainer.log"))
    assert "belongs to attempt 2, not mine (1)" in log, log[-2000:]
    assert "no heartbeat from the config agent" not in log, log[-2000:]
    assert read(os.path.join(work_a, job_id, "exit_code")).strip() == "4"
    print(f"orphan stopped {stopped_after:.2f} s after it could run again")

    # Host B's trainer goes on alone and the job completes once, as attempt 2.
    assert alive(trainer_b)
    c.cli("config", "set", "long", "training/control/max_epochs", "3", "--reason", "finish")
    wait_for(lambda: job(c, "long")["status"] == "completed", 120, "the job to complete")
    j = job(c, "long")
    assert j["attempt"] == 2, j
    assert read(log_b).count("host: finished long") == 1, read(log_b)
    assert host_b.poll() is None, read(log_b)
