#!/usr/bin/env python3
"""The kill -9 campaign: a fleet of real processes (a coordinator, host daemons, their trainers)
runs a manifest of short jobs of the "tiny" model with config writes and telemetry flowing; each
round kills one kind of process with SIGKILL at a random moment, lets the fleet recover, and
checks the invariants:

  integrity    PRAGMA integrity_check of the coordinator's database is ok (on a copy, taken
               while no process has it open: after each kill of the coordinator and at the end)
  jobs         no job lost: every manifest job is listed once, with a status that agrees with
               its fields (a finished job has finished_ms, a completed one its artifact)
  completion   no job completed twice: no finished job ever runs again, and no two host
               daemons report finishing the same job
  config       no acknowledged config write lost: every write the campaign got a 200 for is an
               accepted entry of the job's audit log, with its revision and value
  trainers     no two trainers for one job: sampled through /proc every 50 ms; two live trainers
               of one job for longer than 3 s (an orphan's moment to see that another trainer
               has taken its job's block) fail
  reads        every trainer read of its config block returns within 16 attempts (the
               trainers' "config reads:" line); reads that fell back to the last good values are
               counted in the summary

Kinds: coordinator (restarted on its data directory and port), host (another host, or the same
one again, takes over), trainer (the host sees it die and fails or requeues the job per its
policy), agent (a host is killed while a burst of config writes for its jobs is in flight, then
restarted on its work directory). Each round has a seed; a failure prints it, and
`--kind K --seed S --rounds 1` replays that round's choices.

Standard library only; run through scripts/campaign.sh.
"""
import argparse
import glob
import http.client
import json
import os
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time

KINDS = ("coordinator", "host", "trainer", "agent")
OPERATOR, WORKER = "campaign-operator-token", "campaign-worker-token"
FINISHED = {"completed", "stopped", "failed", "cancelled"}
STATUSES = FINISHED | {"pending", "claimed", "running"}
# The lease timing of the defaults (30 s stale, 5 s sweeps and heartbeats, 60 s orphan), scaled
# down: a lost host's job is taken over well before its orphaned trainer gives up on its own.
STALE_AFTER, SWEEP_EVERY, HEARTBEAT_EVERY, POLL_EVERY, ORPHAN_AFTER = 1.0, 0.2, 0.2, 0.2, 6.0
# How long two trainers of one job may be seen alive together: the moment an orphaned trainer
# needs to see that another has taken its job's block (it looks once a second), with margin.
SETTLE_GRACE = 3.0
READS_BOUND = 16
READS_LINE = re.compile(r"config reads: (\d+) reads, at most (\d+) attempts per read "
                        r"\(bound \d+\), (\d+) retries, (\d+) fell back")


class Api:
    def __init__(self, url):
        self.host, port = url.rsplit("//", 1)[1].rsplit(":", 1)
        self.port = int(port)

    def call(self, method, path, body=None, token=OPERATOR, timeout=5.0):
        """(status, JSON body); status 0 when the coordinator cannot be reached."""
        c = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            headers = {"X-Operator-Token": token, "Content-Type": "application/json"}
            c.request(method, path, body=None if body is None else json.dumps(body),
                      headers=headers)
            r = c.getresponse()
            raw = r.read()
            try:
                return r.status, json.loads(raw)
            except ValueError:
                return r.status, raw.decode(errors="replace")
        except (OSError, http.client.HTTPException):
            return 0, None
        finally:
            c.close()

    def jobs(self):
        status, body = self.call("GET", "/v1/jobs")
        return body["jobs"] if status == 200 else None


class Round:
    """One round: its processes, its observations and its checks."""

    def __init__(self, args, kind, seed):
        self.args, self.kind, self.seed = args, kind, seed
        self.rng = random.Random(seed)
        self.dir = tempfile.mkdtemp(prefix=f"tv-kill9-{kind}-{seed}-")
        self.data = os.path.join(self.dir, "data")
        self.env = dict(os.environ, TRAINVISOR_OPERATOR_TOKEN=OPERATOR,
                        TRAINVISOR_WORKER_TOKEN=WORKER)
        self.coordinator = None
        self.port = 0
        self.api = None
        self.hosts = {}  # name -> Popen
        self.host_count = 0
        self.lock = threading.Lock()
        self.acked = []  # (job id, revision, value) of config writes answered 200
        self.seen_finished = {}  # job id -> status it finished with
        self.reran = []  # (job id, status seen after it had finished)
        self.overlaps = {}  # job id -> since when two of its trainers are alive
        self.double_trainers = {}  # job id -> (pids, seconds alive together) past the grace
        self.integrity = []
        self.stop = threading.Event()
        self.jobs = []  # the manifest's names

    # ---- processes -------------------------------------------------------------------------

    def spawn(self, args, log):
        with open(log, "a") as err:
            return subprocess.Popen([self.args.trainvisor, *args], env=self.env,
                                    stdout=subprocess.PIPE if args[0] == "coordinator" else
                                    subprocess.DEVNULL, stderr=err, start_new_session=True)

    def start_coordinator(self):
        args = ["coordinator", "--data-dir", self.data, "--manifest",
                os.path.join(self.dir, "fleet.toml"), "--port", str(self.port),
                "--stale-after", str(STALE_AFTER), "--sweep-every", str(SWEEP_EVERY)]
        deadline = time.monotonic() + 20
        while True:
            p = self.spawn(args, os.path.join(self.dir, "coordinator.log"))
            line = p.stdout.readline().decode().strip()
            if line:
                break
            p.wait()
            # The port may be a moment from free after a kill: try again.
            if time.monotonic() > deadline:
                raise RuntimeError("the coordinator did not start: " + self.log("coordinator"))
            time.sleep(0.2)
        self.coordinator = p
        self.port = int(line.rsplit(":", 1)[1])
        self.api = Api(line)
        self.env["TRAINVISOR_COORDINATOR"] = line

    def start_host(self, name=None):
        if name is None:
            self.host_count += 1
            name = f"host-{self.host_count}"
        self.hosts[name] = self.spawn(
            ["host", "--name", name, "--work-dir", os.path.join(self.dir, "work", name),
             "--slots", "2", "--heartbeat-every", str(HEARTBEAT_EVERY), "--poll-every",
             str(POLL_EVERY), "--orphan-after", str(ORPHAN_AFTER)],
            os.path.join(self.dir, f"{name}.log"))
        return name

    def log(self, name):
        try:
            with open(os.path.join(self.dir, f"{name}.log"), errors="replace") as f:
                return f.read()[-2000:]
        except OSError:
            return ""

    def trainers(self):
        """{job id: [pid, ...]} of this round's live trainers (their --out is under our dir)."""
        out = {}
        for d in glob.glob("/proc/[0-9]*"):
            try:
                with open(d + "/cmdline", "rb") as f:
                    argv = f.read().split(b"\0")
                with open(d + "/stat") as f:
                    state = f.read().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue
            if state == "Z" or b"train" not in argv or b"--job-id" not in argv:
                continue
            if not any(a.startswith(self.dir.encode()) for a in argv):
                continue
            job = argv[argv.index(b"--job-id") + 1].decode()
            out.setdefault(job, []).append(int(d[6:]))
        return out

    def kill_everything(self):
        procs = [self.coordinator, *self.hosts.values()]
        for p in procs:
            if p and p.poll() is None:
                p.kill()
        for p in procs:
            if p:
                p.wait()
        for pids in self.trainers().values():
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        until = time.monotonic() + 10
        while self.trainers() and time.monotonic() < until:
            time.sleep(0.05)

    # ---- background activity --------------------------------------------------------------

    def write_config(self, rng, jobs, reason):
        """One config write to one of `jobs`; kept when acknowledged (a finished job refuses)."""
        job = rng.choice(jobs)
        value = round(rng.uniform(0.001, 0.2), 6)
        status, body = self.api.call(
            "POST", f"/v1/job/{job}/config",
            {"writes": {"training/optimizer/learning_rate": value}, "reason": reason})
        if status == 200:
            with self.lock:
                self.acked.append((job, body["revision"], value))

    def writer(self, job_ids, pause):
        rng = random.Random(self.seed * 7 + 1)
        while not self.stop.is_set():
            self.write_config(rng, job_ids, "kill9")
            time.sleep(pause)

    def sampler(self):
        """Watches for two trainers of one job and for finished jobs that run again."""
        next_jobs = 0.0
        while not self.stop.is_set():
            now = time.monotonic()
            live = self.trainers()
            for job, pids in live.items():
                if len(pids) < 2:
                    self.overlaps.pop(job, None)
                    continue
                since = self.overlaps.setdefault(job, now)
                if now - since > SETTLE_GRACE:
                    held = self.double_trainers.get(job, ([], 0))
                    self.double_trainers[job] = (sorted(set(held[0]) | set(pids)), now - since)
            for job in list(self.overlaps):
                if len(live.get(job, [])) < 2:
                    del self.overlaps[job]
            if now >= next_jobs:
                next_jobs = now + 0.2
                self.watch_statuses()
            time.sleep(0.05)

    def watch_statuses(self):
        jobs = self.api.jobs() if self.api else None
        for j in jobs or []:
            if j["status"] in FINISHED:
                self.seen_finished.setdefault(j["id"], j["status"])
            elif j["id"] in self.seen_finished:
                self.reran.append((j["id"], j["status"]))

    # ---- the round -------------------------------------------------------------------------

    def write_manifest(self):
        lines = []
        for i in range(self.args.jobs):
            name = f"job-{i}"
            self.jobs.append(name)
            lines += ["[[jobs]]", f'name = "{name}"', 'model = "tiny"', f"seed = {i + 1}",
                      "max_attempts = 3", "[jobs.hyper]",
                      f"training.control.max_epochs = {self.rng.randint(800, 2000)}", ""]
        with open(os.path.join(self.dir, "fleet.toml"), "w") as f:
            f.write("\n".join(lines))

    def wait_for(self, predicate, seconds):
        until = time.monotonic() + seconds
        while time.monotonic() < until:
            if predicate():
                return True
            time.sleep(0.05)
        return False

    def training(self):
        for log in glob.glob(os.path.join(self.dir, "work", "*", "*", "trainer.log")):
            with open(log, errors="replace") as f:
                if "epoch 0 done" in f.read():
                    return True
        return False

    def settled(self):
        jobs = self.api.jobs()
        return jobs is not None and all(j["status"] in FINISHED for j in jobs) and \
            not self.trainers()

    def running_jobs(self):
        return [j for j in self.api.jobs() or [] if j["status"] == "running"]

    def check_integrity(self, when):
        """integrity_check on a copy of the database, taken while no process has it open."""
        copy = os.path.join(self.dir, "copy")
        shutil.rmtree(copy, ignore_errors=True)
        os.makedirs(copy)
        for f in glob.glob(os.path.join(self.data, "coordinator.sqlite*")):
            shutil.copy2(f, copy)
        db = sqlite3.connect(os.path.join(copy, "coordinator.sqlite"))
        try:
            result = db.execute("PRAGMA integrity_check").fetchone()[0]
        finally:
            db.close()
        self.integrity.append((when, result))

    def kill(self):
        """The round's kill -9; returns what it did."""
        victim = self.kind
        if victim == "coordinator":
            self.coordinator.kill()
            self.coordinator.wait()
            self.check_integrity("after the kill")
            time.sleep(self.rng.uniform(0, 1.0))
            self.start_coordinator()
            return "coordinator killed and restarted"
        running = self.running_jobs()
        if victim == "trainer":
            live = self.trainers()
            if not live:
                return "no trainer alive to kill"
            job = self.rng.choice(sorted(live))
            os.kill(self.rng.choice(live[job]), signal.SIGKILL)
            return f"trainer of {job[:12]} killed"
        holders = sorted({j["worker"] for j in running if j["worker"] in self.hosts})
        name = self.rng.choice(holders) if holders else self.rng.choice(sorted(self.hosts))
        if victim == "agent":
            # A burst of writes for the host's jobs, the kill landing among them.
            targets = [j["id"] for j in running if j["worker"] == name] or \
                [j["id"] for j in running] or [self.rng.choice(self.job_ids)]
            burst = [threading.Thread(target=self.burst, args=(targets, 10, self.rng.random()))
                     for _ in range(4)]
            for t in burst:
                t.start()
            time.sleep(self.rng.uniform(0.0, 0.05))
        self.hosts[name].kill()
        self.hosts[name].wait()
        if victim == "agent":
            for t in burst:
                t.join()
        time.sleep(self.rng.uniform(0, 1.0))
        if victim == "host" and self.rng.random() < 0.5:
            del self.hosts[name]
            return f"{name} killed; {self.start_host()} started"
        self.start_host(name)
        return f"{name} killed and started again on its work directory"

    def burst(self, targets, n, seed):
        rng = random.Random(seed)
        for _ in range(n):
            self.write_config(rng, targets, "burst")

    def run(self):
        self.write_manifest()
        self.start_coordinator()
        self.job_ids = [j["id"] for j in self.api.jobs()]
        for _ in range(2):
            self.start_host()
        threads = [threading.Thread(target=self.writer, args=(self.job_ids, 0.05)),
                   threading.Thread(target=self.sampler)]
        for t in threads:
            t.start()
        try:
            # The kill lands while trainers train (not while they load), or later.
            self.wait_for(self.training, 60)
            time.sleep(self.rng.uniform(0.0, 2.5))
            action = self.kill()
            # Settled: every job finished, or the round's time is up (the checks still hold).
            self.wait_for(self.settled, self.args.settle)
        finally:
            self.stop.set()
            for t in threads:
                t.join()
        return action

    # ---- the checks ------------------------------------------------------------------------

    def checks(self):
        """[(name, problem or None)] in the order of the module's docstring."""
        results = []
        jobs = self.api.jobs()
        audit = {job: self.audit(job) for job in self.job_ids}
        reads = self.read_stats()
        finishes = self.finish_reports()
        self.kill_everything()
        self.check_integrity("at the end")
        bad = [f"{when}: {r}" for when, r in self.integrity if r != "ok"]
        results.append(("integrity", "; ".join(bad) or None))

        problem = None
        if jobs is None:
            problem = "the coordinator did not list its jobs"
        else:
            names = sorted(j["name"] for j in jobs)
            if names != sorted(self.jobs):
                problem = f"jobs listed {names}, the manifest has {sorted(self.jobs)}"
            for j in jobs:
                if j["status"] not in STATUSES:
                    problem = f"{j['name']}: unknown status {j['status']}"
                elif j["status"] in FINISHED and not j["finished_ms"]:
                    problem = f"{j['name']}: {j['status']} without finished_ms"
                elif j["status"] == "completed" and not j["artifact"]:
                    problem = f"{j['name']}: completed without an artifact"
        results.append(("jobs", problem))

        twice = [f"{job} reported finished by {n} hosts" for job, n in finishes.items() if n > 1]
        twice += [f"{job[:12]} ran again ({status}) after it had finished"
                  for job, status in self.reran]
        results.append(("completion", "; ".join(twice) or None))

        lost = []
        for job, revision, value in self.acked:
            entries = audit.get(job)
            if entries is None:
                lost.append(f"{job[:12]}: audit log unreadable")
                continue
            if not any(e["accepted"] and e["revision"] == revision and e["new"] == value and
                       e["path"] == "training/optimizer/learning_rate" for e in entries):
                lost.append(f"{job[:12]} revision {revision} = {value}")
        results.append(("config", f"{len(lost)} of {len(self.acked)} acknowledged writes lost: "
                        + ", ".join(lost[:5]) if lost else None))

        results.append(("trainers", "; ".join(
            f"{job[:12]}: trainers {pids} alive together for {held:.1f} s"
            for job, (pids, held) in self.double_trainers.items()) or None))

        over = [r for r in reads if r["max"] > READS_BOUND]
        problem = None
        if not reads:
            problem = "no trainer reported its config reads"
        elif over:
            problem = f"a read took {max(r['max'] for r in over)} attempts"
        results.append(("reads", problem))
        self.fallbacks = sum(r["fallbacks"] for r in reads)
        self.reads = sum(r["reads"] for r in reads)
        self.max_attempts = max((r["max"] for r in reads), default=0)
        return results

    def audit(self, job):
        entries, after = [], 0
        while True:
            status, page = self.api.call("GET", f"/v1/job/{job}/config/log?after={after}"
                                         "&limit=1000")
            if status != 200:
                return None
            if not page["entries"]:
                return entries
            entries += page["entries"]
            after = page["entries"][-1]["seq"]

    def read_stats(self):
        out = []
        for log in glob.glob(os.path.join(self.dir, "work", "*", "*", "trainer.log")):
            with open(log, errors="replace") as f:
                for m in READS_LINE.finditer(f.read()):
                    out.append({"reads": int(m[1]), "max": int(m[2]), "fallbacks": int(m[4])})
        return out

    def finish_reports(self):
        counts = {}
        for log in glob.glob(os.path.join(self.dir, "host-*.log")):
            with open(log, errors="replace") as f:
                for m in re.finditer(r"^host: finished \S+ \((\w+)\)", f.read(), re.M):
                    counts[m[1]] = counts.get(m[1], 0) + 1
        return counts


def run_round(args, kind, seed):
    r = Round(args, kind, seed)
    started = time.monotonic()
    try:
        action = r.run()
        results = r.checks()
    except Exception as e:  # a round that could not run is a failure to look at, not a crash
        r.kill_everything()
        action, results = f"round aborted: {e!r}", [("round", str(e))]
        r.fallbacks = r.reads = r.max_attempts = 0
    failed = [(name, p) for name, p in results if p]
    took = time.monotonic() - started
    line = (f"{kind:11} seed {seed}: {action}; {len(results) - len(failed)}/{len(results)} "
            f"checks ok, {len(r.acked)} acknowledged writes, reads {r.reads} "
            f"(at most {r.max_attempts} attempts, {r.fallbacks} fell back) in {took:.1f} s")
    print(line, flush=True)
    for name, p in failed:
        print(f"    FAIL {name}: {p}  (replay: --kind {kind} --seed {seed} --rounds 1; "
              f"files kept in {r.dir})", flush=True)
    if not failed and not args.keep:
        shutil.rmtree(r.dir, ignore_errors=True)
    return results, r


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=50, help="rounds per kind (default 50)")
    p.add_argument("--kind", choices=(*KINDS, "all"), default="all")
    p.add_argument("--seed", type=int, default=None,
                   help="the first round's seed (default: from the clock); round i uses seed+i")
    p.add_argument("--jobs", type=int, default=4, help="jobs in each round's manifest")
    p.add_argument("--settle", type=float, default=30,
                   help="seconds a round waits after its kill for every job to finish")
    p.add_argument("--trainvisor", default=os.environ.get(
        "TRAINVISOR", os.path.join(here, "..", "build", "bin", "trainvisor")))
    p.add_argument("--keep", action="store_true", help="keep every round's files")
    args = p.parse_args()
    if not os.access(args.trainvisor, os.X_OK):
        sys.exit(f"kill9: no trainvisor binary at {args.trainvisor} (build it, or --trainvisor)")
    base = args.seed if args.seed is not None else int(time.time()) % 1000000
    kinds = KINDS if args.kind == "all" else (args.kind,)
    print(f"kill9: {args.rounds} round(s) per kind of {', '.join(kinds)}; first seed {base}",
          flush=True)
    summary = {}
    for kind in kinds:
        stats = summary[kind] = {"rounds": 0, "checks": 0, "passed": 0, "failures": [],
                                 "reads": 0, "fallbacks": 0, "max_attempts": 0}
        for i in range(args.rounds):
            seed = base + i
            results, r = run_round(args, kind, seed)
            stats["rounds"] += 1
            stats["checks"] += len(results)
            stats["passed"] += sum(1 for _, problem in results if not problem)
            stats["failures"] += [(seed, name, problem) for name, problem in results if problem]
            stats["reads"] += r.reads
            stats["fallbacks"] += r.fallbacks
            stats["max_attempts"] = max(stats["max_attempts"], r.max_attempts)
    print("\nkill9 summary")
    for kind, s in summary.items():
        print(f"  {kind:11} {s['rounds']} rounds, {s['passed']}/{s['checks']} checks passed; "
              f"trainer reads: {s['reads']}, at most {s['max_attempts']} attempts, "
              f"{s['fallbacks']} fell back to the last good values")
        for seed, name, problem in s["failures"]:
            print(f"    seed {seed} {name}: {problem}")
    return 1 if any(s["failures"] for s in summary.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
