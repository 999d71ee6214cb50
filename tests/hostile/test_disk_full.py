"""A full disk under the coordinator: telemetry and config writes get 507 "disk full" naming what
could not be written and the database file, reads go on (jobs, health, telemetry, configs), the
coordinator lives, and once space is freed writes succeed again without a restart. Every write
acknowledged with 200 is kept, and the database passes PRAGMA integrity_check.

The data directory is a small tmpfs mounted in a mount namespace of its own (unshare -m), which
the coordinator and the test's helpers enter with nsenter; the disk is filled with a file
written into it. That needs root: without it the test is skipped, and tv_store_tests'
StorageFullTest (PRAGMA max_page_count) covers the store layer everywhere.
"""
import json
import os
import shutil
import subprocess
import sys

import pytest

from conftest import TRAINVISOR, start_coordinator, wait_for

TMPFS_SIZE = "32m"
WORKER = "disk-full-host"


class SmallDisk:
    """A tmpfs of TMPFS_SIZE at `mountpoint`, seen only by the processes run through `prefix`."""

    def __init__(self, procs, mountpoint):
        self.mountpoint = mountpoint
        os.makedirs(mountpoint)
        ready = mountpoint + ".mounted"
        self.holder = procs.spawn(
            ["unshare", "-m", "--propagation", "private", "sh", "-c",
             'mount -t tmpfs -o size=' + TMPFS_SIZE + ' tmpfs "$1" && touch "$2" && '
             'exec sleep 100000', "sh", mountpoint, ready],
            stderr=subprocess.PIPE)
        wait_for(lambda: os.path.exists(ready) or self.holder.poll() is not None, 20,
                 "the tmpfs mount")
        if not os.path.exists(ready):
            pytest.skip("cannot mount a tmpfs in a new mount namespace here: " +
                        self.holder.stderr.read().decode(errors="replace"))
        self.prefix = ["nsenter", "-t", str(self.holder.pid), "-m", "--"]

    def run(self, *args, check=True):
        r = subprocess.run([*self.prefix, *args], capture_output=True, text=True, timeout=120)
        if check and r.returncode != 0:
            raise AssertionError(f"{' '.join(args)} failed ({r.returncode}): {r.stderr}")
        return r

    def python(self, code, *args):
        return self.run(sys.executable, "-c", code, *args).stdout.strip()

    def available(self):
        return int(self.python("import os, sys; s = os.statvfs(sys.argv[1]); "
                               "print(s.f_bavail * s.f_frsize)", self.mountpoint))

    def fill(self):
        # dd stops with ENOSPC once the file system is full: that is the point.
        self.run("dd", "if=/dev/zero", "of=" + self.filler(), "bs=64k", check=False)
        assert self.available() == 0, f"{self.available()} bytes still free after the fill"

    def free(self):
        self.run("rm", "-f", self.filler())

    def filler(self):
        return os.path.join(self.mountpoint, "filler")


def need_root():
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a small tmpfs (unshare -m, mount -t tmpfs); "
                    "tv_store_tests' StorageFullTest covers the class without root")
    for tool in ("unshare", "nsenter"):
        if not shutil.which(tool):
            pytest.skip(f"{tool} (util-linux) is not installed")


def points(first, count):
    return [{"step": s, "epoch": 0, "flags": 0, "wall_time_ns": s, "config_revision": 1,
             "loss": 1.0 / s, "learning_rate": 0.1} for s in range(first, first + count)]


def claim(c):
    cap = subprocess.run([TRAINVISOR, "host", "--print-capability", "-o", "json"],
                         capture_output=True, text=True, check=True, timeout=60).stdout
    status, reply = c.worker("POST", "/v1/job/claim",
                             {"worker": WORKER, "capability": json.loads(cap)})
    assert status == 200 and reply.get("job"), f"claim: {status} {reply}"
    return reply["job"]["id"], reply["lease_token"]


def send_telemetry(c, job, lease, first, count):
    return c.worker("POST", f"/v1/job/{job}/telemetry",
                    {"host": WORKER, "points": points(first, count)},
                    {"X-Lease-Token": lease})


def write_lr(c, job, value):
    return c.operator("POST", f"/v1/job/{job}/config",
                      {"writes": {"training/optimizer/learning_rate": value},
                       "reason": "disk full test"})


def audit_log(c, job):
    entries, after = [], 0
    while True:
        status, page = c.request("GET", f"/v1/job/{job}/config/log?after={after}&limit=1000")
        assert status == 200, page
        if not page["entries"]:
            return entries
        entries += page["entries"]
        after = page["entries"][-1]["seq"]


def assert_disk_full(status, body, what, c):
    assert status == 507, f"expected 507, got {status}: {body}"
    error = body["error"] if isinstance(body, dict) else body
    assert "disk full" in error and what in error, error
    assert os.path.join(c.data_dir, "coordinator.sqlite") in error, error


def test_writes_on_a_full_disk_get_507_reads_go_on_and_writes_resume(procs, tmp):
    need_root()
    disk = SmallDisk(procs, os.path.join(tmp, "data"))
    c = start_coordinator(procs, tmp, prefix=disk.prefix)
    job, lease = claim(c)

    status, body = send_telemetry(c, job, lease, 1, 100)
    assert status == 200, body
    status, body = write_lr(c, job, 0.01)
    assert status == 200, body
    acked_lr = [(body["revision"], 0.01)]
    next_step = 101

    disk.fill()
    # SQLite reuses the room its log already has, so a few writes may still fit: write until
    # the disk says no, keeping what was acknowledged.
    telemetry_full = None
    for _ in range(200):
        status, body = send_telemetry(c, job, lease, next_step, 2000)
        if status != 200:
            telemetry_full = (status, body)
            break
        next_step += 2000
    assert telemetry_full, "200 batches of 2000 points fit on a full disk"
    assert_disk_full(*telemetry_full, "telemetry store", c)
    config_full = None
    for i in range(500):
        value = 0.02 + i * 1e-4
        status, body = write_lr(c, job, value)
        if status != 200:
            config_full = (status, body)
            break
        acked_lr.append((body["revision"], value))
    assert config_full, "500 config writes fit on a full disk"
    assert_disk_full(*config_full, "config hub", c)
    # Nothing of a refused batch was stored, and the disk stays full for the next one too.
    assert_disk_full(*send_telemetry(c, job, lease, next_step, 2000), "telemetry store", c)

    # Reads go on while the disk is full.
    for path in ("/v1/health", "/v1/jobs", f"/v1/job/{job}", f"/v1/job/{job}/config/log",
                 "/v1/workers"):
        status, body = c.request("GET", path)
        assert status == 200, f"GET {path} on a full disk: {status} {body}"
    status, curve = c.request("GET", f"/v1/job/{job}/telemetry?max_points=50")
    assert status == 200, curve
    assert curve["applied"]["last_step"] == next_step - 1, curve["applied"]
    status, config = c.request("GET", f"/v1/job/{job}/config")
    assert status == 200, config
    assert config["revision"] == acked_lr[-1][0], (config, acked_lr[-1])
    assert c.alive(), c.log()
    assert "disk full" in c.log(), c.log()

    # Space freed: the same coordinator writes again.
    disk.free()
    status, body = send_telemetry(c, job, lease, next_step, 2000)
    assert status == 200, f"telemetry after space was freed: {status} {body}"
    status, body = write_lr(c, job, 0.5)
    assert status == 200, f"config write after space was freed: {status} {body}"
    acked_lr.append((body["revision"], 0.5))

    # Every acknowledged write is kept, in order, and nothing else was accepted.
    accepted = [(e["revision"], e["new"]) for e in audit_log(c, job)
                if e["accepted"] and e["path"] == "training/optimizer/learning_rate"]
    assert accepted == acked_lr, (accepted, acked_lr)
    status, curve = c.request("GET", f"/v1/job/{job}/telemetry?max_points=0")
    assert status == 200
    assert curve["applied"]["last_step"] == next_step + 1999
    assert [p["step"] for p in curve["points"]] == list(range(1, next_step + 2000))

    c.proc.terminate()
    c.proc.wait(timeout=30)
    check = ("import sqlite3, sys; db = sqlite3.connect(sys.argv[1]); "
             "print(db.execute('PRAGMA integrity_check').fetchone()[0])")
    assert disk.python(check, os.path.join(c.data_dir, "coordinator.sqlite")) == "ok"
