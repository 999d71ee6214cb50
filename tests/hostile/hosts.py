"""Host daemons and trainers as the block tests see them: start a host on a coordinator, read a
job's state, find a job's trainer and the shared-memory object it has mapped. Stdlib only."""
import json
import os

from conftest import TRAINVISOR


def start_host(procs, coordinator, tmp, name, *extra):
    """A `trainvisor host` named `name` with fast heartbeats and polls, its work dir and log
    under tmp/<name>; returns (process, log path, work dir)."""
    work = os.path.join(tmp, name)
    log_path = os.path.join(tmp, name + ".log")
    env = dict(coordinator.env, TRAINVISOR_COORDINATOR=coordinator.url)
    if os.environ.get("TV_PLUGIN_DIR"):
        extra = ("--plugin-dir", os.environ["TV_PLUGIN_DIR"], *extra)
    with open(log_path, "w") as log:
        p = procs.spawn([TRAINVISOR, "host", "--name", name, "--work-dir", work,
                         "--heartbeat-every", "0.3", "--poll-every", "0.3", *extra],
                        stdout=log, stderr=log, env=env)
    return p, log_path, work


def job(coordinator, name):
    return json.loads(coordinator.cli("jobs", "show", name, "-o", "json").stdout)


def read(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return ""


def trainer_pid(work, job_id):
    """The pid of the trainer a host started for the job (its holder file), or None."""
    try:
        with open(os.path.join(work, job_id, "holder.json")) as f:
            return json.load(f)["pid"]
    except (FileNotFoundError, ValueError, KeyError):
        return None


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def block_path(job_id):
    return "/dev/shm/trainvisor." + job_id


def mapped_block(pid, job_id):
    """(inode, deleted) of the job's block as process `pid` has it mapped, or None."""
    with open(f"/proc/{pid}/maps") as f:
        for line in f:
            fields = line.split()
            if len(fields) >= 6 and fields[5] == block_path(job_id):
                return int(fields[4]), line.rstrip().endswith("(deleted)")
    return None
