#!/usr/bin/env python3
"""A training supervisor as a process of its own: it watches one job's telemetry through the
coordinator and retunes the job's live config with three rules.

  plateau     the newest evaluation's val_loss is within --plateau-delta of the one before:
              learning_rate *= --plateau-factor (not below --min-lr)
  explosion   the newest training step's grad_norm is above --grad-norm-above:
              learning_rate *= --explosion-lr-factor, grad_clip_max = --explosion-clip (unless
              clipping is already tighter); then quiet for --explosion-cooldown steps
  divergence  the newest evaluation's val_loss is above --diverged-above:
              early_stop = true (the trainer stops at its next step)

It writes as policy:NAME (--name) with the fleet's worker token, each write with its reason and
the config revision it decided from. The trainer never waits for it: the host applies a write at
the trainer's next step boundary, and the telemetry's config_revision says when.

The coordinator holds it like any policy, and it logs what it is refused and goes on: a frozen
folder (trainvisor config freeze JOB training/optimizer), a human's write of a key after the
revision it decided from (the human's value stands), a value out of range. It also leaves a key a
human wrote alone for --human-grace-steps training steps. It stops when the job finishes.

    PYTHONPATH=python examples/python-supervisor.py --coordinator http://127.0.0.1:8470 \\
        --job my-job --worker-token-file ~/.config/trainvisor/worker-token
"""

import argparse
import dataclasses
import logging
import math
import os
import sys
import time

try:
    from trainvisor import Coordinator, CoordinatorError, CoordinatorUnreachable
except ImportError:
    sys.exit("python-supervisor: the trainvisor package is not importable: set PYTHONPATH to "
             "the repository's python/ folder")

LEARNING_RATE = "training/optimizer/learning_rate"
GRAD_CLIP_MAX = "training/regularization/grad_clip_max"
EARLY_STOP = "training/control/early_stop"
EVALUATION = 1 << 0  # TelemetryPoint flags: the record holds an evaluation
FINISHED = ("completed", "stopped", "failed", "cancelled")

log = logging.getLogger("python-supervisor")


@dataclasses.dataclass
class Rules:
    plateau_delta: float = 1e-4
    plateau_factor: float = 0.5
    min_lr: float = 1e-6
    grad_norm_above: float = 10.0
    explosion_lr_factor: float = 0.25
    explosion_clip: float = 0.5
    explosion_cooldown: int = 100
    diverged_above: float = 5.0
    human_grace_steps: int = 5000


RULE_HELP = {
    "plateau_delta": "plateau: the val_loss change below which training is flat",
    "plateau_factor": "plateau: what the learning rate is multiplied by",
    "min_lr": "the lowest learning rate the rules write",
    "grad_norm_above": "explosion: the gradient norm above which it reacts",
    "explosion_lr_factor": "explosion: what the learning rate is multiplied by",
    "explosion_clip": "explosion: the grad_clip_max it sets",
    "explosion_cooldown": "explosion: steps without a reaction after one",
    "diverged_above": "divergence: the val_loss above which it stops the job",
    "human_grace_steps": "steps a key a human wrote is left alone",
}


@dataclasses.dataclass
class Memory:
    """What one round leaves for the next."""
    last_eval: dict | None = None  # the newest evaluation seen, for the plateau rule
    quiet_until_step: int = -1     # the explosion rule's cooldown
    log_cursor: int = 0            # the config log read so far
    writers: dict = dataclasses.field(default_factory=dict)  # path -> its last accepted write


@dataclasses.dataclass
class Decision:
    writes: dict
    reasons: list
    explosion_at: int | None = None  # the step whose spike it reacts to


def number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def decide(points: list, values: dict, rules: Rules, memory: Memory) -> Decision:
    """The three rules on the curve (oldest first) and the live config values."""
    training = [p for p in points if not p["flags"] & EVALUATION]
    evals = [p for p in points if p["flags"] & EVALUATION and number(p["val_loss"])]
    # A rate the manifest did not set is not in the config: the trainer's records say what it is.
    lr = values.get(LEARNING_RATE)
    if lr is None and training:
        lr = training[-1]["learning_rate"]
    d = Decision({}, [])
    proposed_lr = lr = lr if number(lr) else math.inf

    if evals:
        newest = evals[-1]
        before = memory.last_eval or (evals[-2] if len(evals) > 1 else None)
        if before and before["step"] < newest["step"] and \
                abs(newest["val_loss"] - before["val_loss"]) < rules.plateau_delta:
            proposed_lr = min(proposed_lr, lr * rules.plateau_factor)
            d.reasons.append(f"plateau: val_loss {before['val_loss']:.6g} -> "
                             f"{newest['val_loss']:.6g} at step {newest['step']}")
        memory.last_eval = newest
        if newest["val_loss"] > rules.diverged_above and values.get(EARLY_STOP) is not True:
            d.writes[EARLY_STOP] = True
            d.reasons.append(f"divergence: val_loss {newest['val_loss']:.6g} > "
                             f"{rules.diverged_above:g} at step {newest['step']}")

    if training:
        step = training[-1]
        norm = step["grad_norm"]
        quiet = step["step"] < memory.quiet_until_step
        if number(norm) and norm > rules.grad_norm_above and not quiet:
            proposed_lr = min(proposed_lr, lr * rules.explosion_lr_factor)
            clip = values.get(GRAD_CLIP_MAX, 0.0)
            if not 0 < clip <= rules.explosion_clip:
                d.writes[GRAD_CLIP_MAX] = float(rules.explosion_clip)
            d.explosion_at = step["step"]
            d.reasons.append(f"gradient explosion: grad_norm {norm:.6g} > "
                             f"{rules.grad_norm_above:g} at step {step['step']}")

    proposed_lr = max(proposed_lr, rules.min_lr)
    if proposed_lr < lr and math.isfinite(proposed_lr):
        d.writes[LEARNING_RATE] = float(proposed_lr)
    return d


def human_holds(client: Coordinator, job: str, points: list, rules: Rules,
                memory: Memory) -> dict:
    """path -> why it is held: a key whose last accepted write is a human's, until the trainer
    has run --human-grace-steps steps with it (counted from its first record of that revision)."""
    while True:
        page = client.config_log(job, after=memory.log_cursor, limit=1000)
        for e in page:
            memory.log_cursor = max(memory.log_cursor, e["seq"])
            if e["kind"] == "write" and e["accepted"]:
                memory.writers[e["path"]] = e
        if len(page) < 1000:
            break
    latest = points[-1]["step"] if points else 0
    held = {}
    for path, w in memory.writers.items():
        if not w["actor"].startswith("human:"):
            continue
        since = next((p["step"] for p in points if p["config_revision"] >= w["revision"]), None)
        if since is None or latest - since < rules.human_grace_steps:
            until = "its first step" if since is None else f"step {since + rules.human_grace_steps}"
            held[path] = f"{w['actor']}'s write of revision {w['revision']} (until {until})"
    return held


def one_round(client: Coordinator, job: dict, name: str, rules: Rules, memory: Memory) -> bool:
    """Reads, decides, writes and logs; False once the job has finished."""
    job = client.job(job["id"])
    label = f"job {job['name']} ({job['id'][:12]})"
    if job["status"] in FINISHED:
        log.info("%s is %s: done", label, job["status"])
        return False
    if job["status"] == "pending":
        log.info("%s is pending: waiting for a host to run it", label)
        return True
    config = client.config(job["id"])
    points = client.telemetry(job["id"], max_points=400)["points"]
    decision = decide(points, config["values"], rules, memory)
    held = human_holds(client, job["id"], points, rules, memory) if decision.writes else {}
    for path in [p for p in decision.writes if p in held]:
        log.info("left alone: %s is held by %s", path, held[path])
        del decision.writes[path]
    if not decision.writes:
        log.info("%s at step %s: nothing to change", label, points[-1]["step"] if points else 0)
        return True
    reason = "; ".join(decision.reasons)
    changes = ", ".join(f"{p} {config['values'].get(p, '(unset)')} -> {v}"
                        for p, v in decision.writes.items())
    try:
        reply = client.set_config(job["id"], decision.writes, reason, policy=name,
                                  decided_from=config["revision"])
    except CoordinatorError as e:
        if e.status in (400, 409, 412):  # frozen, a human's later write, out of range, finished
            log.warning("refused (%d): %s [wanted %s]", e.status, e.message, changes)
            return True
        raise
    if decision.explosion_at is not None:
        memory.quiet_until_step = decision.explosion_at + rules.explosion_cooldown
    log.info("wrote revision %d as %s: %s (%s)", reply["revision"], reply["actor"], changes,
             reason)
    return True


def arguments(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--coordinator", default=os.environ.get("TRAINVISOR_COORDINATOR"),
                   help="the coordinator's URL (default: $TRAINVISOR_COORDINATOR)")
    p.add_argument("--job", required=True, help="the job: its name, id or an id prefix")
    p.add_argument("--worker-token-file",
                   help="a file holding the fleet's worker token (default: "
                        "$TRAINVISOR_WORKER_TOKEN)")
    p.add_argument("--ca-file", help="the CA that signed an https coordinator's certificate")
    p.add_argument("--name", default="py-supervisor",
                   help="the policy name it writes as, policy:NAME (a-z, 0-9, '_', '-')")
    p.add_argument("--poll-every", type=float, default=10.0, help="seconds between rounds")
    p.add_argument("--once", action="store_true", help="one decision round, then exit")
    rules = p.add_argument_group("rules")
    for field in dataclasses.fields(Rules):
        rules.add_argument("--" + field.name.replace("_", "-"), type=field.type,
                           default=field.default, metavar="N",
                           help=f"{RULE_HELP[field.name]} (default {field.default:g})")
    args = p.parse_args(argv)
    if not args.coordinator:
        p.error("--coordinator URL is required (or $TRAINVISOR_COORDINATOR)")
    if args.poll_every <= 0:
        p.error(f"--poll-every {args.poll_every} is not a positive number of seconds")
    return args


def worker_token(args) -> str:
    if args.worker_token_file:
        try:
            with open(args.worker_token_file) as f:
                token = f.read().strip()
        except OSError as e:
            sys.exit(f"python-supervisor: --worker-token-file: {e}")
        if not token:
            sys.exit(f"python-supervisor: --worker-token-file {args.worker_token_file} is empty")
        return token
    token = os.environ.get("TRAINVISOR_WORKER_TOKEN", "")
    if not token:
        sys.exit("python-supervisor: no worker token: give --worker-token-file or set "
                 "$TRAINVISOR_WORKER_TOKEN")
    return token


def main(argv=None) -> int:
    args = arguments(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stdout,
                        format=f"%(asctime)s policy:{args.name}: %(message)s")
    rules = Rules(**{f.name: getattr(args, f.name) for f in dataclasses.fields(Rules)})
    client = Coordinator(args.coordinator, worker_token=worker_token(args), ca_file=args.ca_file)
    memory = Memory()
    job = None
    while True:
        try:
            job = job or client.job(args.job)
            if not one_round(client, job, args.name, rules, memory) or args.once:
                return 0
        except CoordinatorUnreachable as e:
            if args.once:
                log.error("%s", e)
                return 1
            log.warning("%s; trying again in %g s", e, args.poll_every)
        except CoordinatorError as e:  # a wrong token, an unknown job: nothing to wait for
            log.error("%s", e)
            return 2
        time.sleep(args.poll_every)


if __name__ == "__main__":
    sys.exit(main())
