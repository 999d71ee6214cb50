"""One bad block breaks one job: a host runs two jobs, and any process of the same user cuts one
job's block in /dev/shm short. The host must not die (no SIGBUS): it reports that job's block as
truncated, stops its trainer and hands the job back with the reason, while the other job keeps
training, on the same trainer, to completion."""
import os
import time

import conftest
from conftest import start_coordinator, wait_for
from hosts import alive, block_path, job, read, start_host, trainer_pid

# The harness's two jobs, made long: each runs until the test finishes it with a config write.
MANIFEST = conftest.MANIFEST.replace("max_epochs = 2", "max_epochs = 100000")


def test_truncated_block_fails_its_job_alone(procs, tmp):
    c = start_coordinator(procs, tmp, MANIFEST)
    host, log_path, work = start_host(procs, c, tmp, "two-slots", "--slots", "2",
                                      "--orphan-after", "30")
    for name in ("alpha", "beta"):
        wait_for(lambda: job(c, name)["status"] == "running", 60, f"{name} to run")
    alpha, beta = job(c, "alpha")["id"], job(c, "beta")["id"]
    alpha_trainer = wait_for(lambda: trainer_pid(work, alpha), 20, "alpha's trainer")
    beta_trainer = wait_for(lambda: trainer_pid(work, beta), 20, "beta's trainer")
    wait_for(lambda: os.path.exists(block_path(alpha)), 20, "alpha's block")
    expected = os.stat(block_path(alpha)).st_size

    os.truncate(block_path(alpha), 0)  # what any process of this user can do

    reason = f"was truncated to 0 bytes (expected {expected})"
    wait_for(lambda: reason in read(log_path), 20, "the host to report alpha's block")
    wait_for(lambda: not alive(alpha_trainer), 30, "alpha's trainer to stop")
    # It stopped on purpose with a checkpoint, saying why, rather than being killed by SIGBUS:
    # itself on seeing the cut, or on the host's SIGTERM, whichever came first.
    trainer_log = read(os.path.join(work, alpha, "trainer.log"))
    assert reason in trainer_log or "interrupted at step" in trainer_log, trainer_log[-2000:]
    wait_for(lambda: reason in (job(c, "alpha").get("last_error") or ""), 30,
             "alpha to be handed back with the reason")
    assert host.poll() is None, read(log_path)

    # Beta never noticed: same attempt, same trainer, still training; then it completes.
    assert job(c, "beta")["attempt"] == 1 and alive(beta_trainer)
    time.sleep(1)
    assert job(c, "beta")["status"] == "running" and alive(beta_trainer)
    c.cli("config", "set", "beta", "training/control/max_epochs", "3", "--reason", "finish")
    wait_for(lambda: job(c, "beta")["status"] == "completed", 120, "beta to complete")
    assert job(c, "beta")["attempt"] == 1
    assert host.poll() is None, read(log_path)
    assert "SIGBUS" not in read(log_path)
