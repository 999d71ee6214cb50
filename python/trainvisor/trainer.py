"""The trainer side of a Trainvisor job, for a PyTorch script the host daemon runs.

The host creates the job's shared-memory block, keeps its knobs current, reads the telemetry the
script pushes, and starts the script with this environment:

  TRAINVISOR_BLOCK          the block's name
  TRAINVISOR_JOB_ID         the job
  TRAINVISOR_OUT_DIR        where the script writes its model and checkpoints (bundled and uploaded
                            when it exits 0 or 3; kept for a retry on the same host)
  TRAINVISOR_ATTEMPT        the lease the block is stamped with: its attempt ...
  TRAINVISOR_LEASE_DIGEST   ... and its token's digest (64 hex digits)
  TRAINVISOR_ORPHAN_AFTER_S optional: stop once the config agent has been silent that long

attach() reads it and returns a Run. Knobs mirror the C++ trainer (core/trainer/src): they are
read from the block at a step boundary (Run.apply, Run.refresh), one seqlock generation at a time;
a value outside its range is refused and the old one kept; the optimizer's name counts at start
only (Run.make_optimizer), the batch size at the next epoch (read Run.knobs().batch_size when an
epoch starts), early_stop at the next step (Run.should_stop). Telemetry carries the revision whose
values were applied and the learning rate in use. The script exits with an ExitCode.

Only shared memory is touched: nothing here waits on the network or on the agent. Standard
library only; torch is imported by the methods that take torch objects. A Run belongs to the
thread that runs the training loop; its SIGTERM handler only sets a flag.
"""

from __future__ import annotations

import enum
import logging
import math
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any, Mapping, NamedTuple

from trainvisor import shm

log = logging.getLogger("trainvisor.trainer")

ENV_BLOCK = "TRAINVISOR_BLOCK"
ENV_JOB_ID = "TRAINVISOR_JOB_ID"
ENV_OUT_DIR = "TRAINVISOR_OUT_DIR"
ENV_ATTEMPT = "TRAINVISOR_ATTEMPT"
ENV_LEASE_DIGEST = "TRAINVISOR_LEASE_DIGEST"
ENV_ORPHAN_AFTER_S = "TRAINVISOR_ORPHAN_AFTER_S"

CHECKPOINT_FILE = "checkpoint.pt"


class ExitCode(enum.IntEnum):
    """The exit status of a trainer (core/include/trainvisor/core/trainer_exit_code.hpp)."""

    COMPLETED = 0  # reached max_epochs; the model is written
    FAILED = 1  # the script's own failure
    BAD_INPUT = 2  # no or bad environment, block, data or checkpoint
    EARLY_STOPPED = 3  # early_stop became true; the model is written
    INTERRUPTED = 4  # SIGTERM, agent silent or the block's lease not ours: checkpoint written


class TrainerError(RuntimeError):
    """The job cannot run as set up (the script should exit ExitCode.BAD_INPUT)."""


class KnobSpec(NamedTuple):
    """One live knob (core/src/trainer_knobs.cpp): its key, type, default and range."""

    path: str
    kind: type
    default: Any
    min: float | None = None
    max: float | None = None
    allowed: tuple[str, ...] = ()

    def check(self, value) -> str | None:
        """Why `value` is refused (param_schema.cpp's wording), or None."""
        if self.kind in (int, float) and not isinstance(value, bool):
            if not math.isfinite(value):
                return f"must be a finite number, got {value}"
            if self.min is not None and value < self.min:
                return f"{value} is below the minimum {self.min:g}"
            if self.max is not None and value > self.max:
                return f"{value} is above the maximum {self.max:g}"
        if self.allowed and value not in self.allowed:
            return f'"{value}" is not one of: {", ".join(self.allowed)}'
        return None


OPTIMIZER = "training/optimizer/name"
LEARNING_RATE = "training/optimizer/learning_rate"
MOMENTUM = "training/optimizer/momentum"
WEIGHT_DECAY = "training/optimizer/weight_decay"
GRAD_CLIP_MAX = "training/regularization/grad_clip_max"
DROPOUT = "training/regularization/dropout"
BATCH_SIZE = "training/control/batch_size"
EVAL_EVERY = "training/control/eval_every"
MAX_EPOCHS = "training/control/max_epochs"
EARLY_STOP = "training/control/early_stop"
CHECKPOINT_EVERY = "training/control/checkpoint_every"
REVISION = "trainvisor/revision"

# In the order of Knobs' fields.
SCHEMA: tuple[KnobSpec, ...] = (
    KnobSpec(OPTIMIZER, str, "sgd", allowed=("sgd", "adamw")),
    KnobSpec(LEARNING_RATE, float, 0.05, 0.0, 10.0),
    KnobSpec(MOMENTUM, float, 0.9, 0.0, 0.999),
    KnobSpec(WEIGHT_DECAY, float, 0.0, 0.0, 1.0),
    KnobSpec(GRAD_CLIP_MAX, float, 0.0, 0.0, 1e6),
    KnobSpec(DROPOUT, float, 0.0, 0.0, 0.95),
    KnobSpec(BATCH_SIZE, int, 64, 1, 65536),
    KnobSpec(EVAL_EVERY, int, 0, 0, 1e9),
    KnobSpec(MAX_EPOCHS, int, 5, 1, 1e6),
    KnobSpec(EARLY_STOP, bool, False),
    KnobSpec(CHECKPOINT_EVERY, int, 0, 0, 1e9),
    KnobSpec(REVISION, int, 0, 0),
)
_SPEC = {s.path: s for s in SCHEMA}


class Knobs(NamedTuple):
    """The knobs as applied, from one generation of the block; revision is the config revision
    the agent wrote with them."""

    optimizer: str
    learning_rate: float
    momentum: float
    weight_decay: float
    grad_clip_max: float
    dropout: float
    batch_size: int
    eval_every: int
    max_epochs: int
    early_stop: bool
    checkpoint_every: int
    revision: int

    def by_path(self) -> dict[str, Any]:
        return {spec.path: v for spec, v in zip(SCHEMA, self)}


_DEFAULTS = Knobs(*(s.default for s in SCHEMA))
_INDEX = {s.path: i for i, s in enumerate(SCHEMA)}


class Refresh(NamedTuple):
    """What one read of the block changed: the keys applied and the values refused (why)."""

    changed: tuple[str, ...] = ()
    refused: tuple[str, ...] = ()


class Stop(NamedTuple):
    """Why the loop ends and with which exit status."""

    code: ExitCode
    reason: str


_NOTHING = Refresh()


def _env(env: Mapping[str, str]) -> dict[str, str]:
    required = (ENV_BLOCK, ENV_JOB_ID, ENV_OUT_DIR, ENV_ATTEMPT, ENV_LEASE_DIGEST)
    missing = [k for k in required if not env.get(k)]
    if missing:
        raise TrainerError(
            f"{', '.join(missing)} not set: this script runs as a Trainvisor job, whose host sets "
            f"{', '.join(required)}")
    return {k: env[k] for k in required}


def _lease_text(attempt: int, digest: str) -> str:
    return f"attempt {attempt} (lease {digest[:8]}...)"


class Run:
    """A job's training run, attached to its block. Made by attach()."""

    def __init__(self, env: Mapping[str, str], block: shm.Block, orphan_after_s: float | None):
        self.block_name = env[ENV_BLOCK]
        self.job_id = env[ENV_JOB_ID]
        self.out_dir = Path(env[ENV_OUT_DIR])
        self.attempt = int(env[ENV_ATTEMPT])
        self.lease_digest = env[ENV_LEASE_DIGEST].lower()
        self.orphan_after_s = orphan_after_s
        self.block = block
        self._snapshot = block.snapshot([(s.path, s.default) for s in SCHEMA])
        self._push = block.push
        self._applied = _DEFAULTS
        self._seen_generation = -1
        self._refused_pending = False
        self._sigterm = False
        self._lost: str | None = None  # why the block is no longer this run's
        self._own_lease_version = block.lease_version()
        self._next_slow_check = 0.0
        self._applied_to: tuple | None = None  # (optimizer, model, generation) apply() last saw
        self._previous_sigterm = None
        self.refresh()

    # ---- knobs ---------------------------------------------------------------------------------

    def knob(self, path: str) -> shm.Handle:
        """A handle on one knob, typed from the schema, whose get() returns the knob's default
        while the block lacks it. Reads the block as it is now: for values that change together,
        use knobs()."""
        spec = _SPEC.get(path)
        if spec is None:
            raise TrainerError(f"unknown knob '{path}' (knobs: {', '.join(_SPEC)})")
        return self.block.resolve(path, spec.kind, spec.default)

    def refresh(self) -> Refresh:
        """Reads every knob from one generation of the block and applies the values in range;
        a value out of range is refused (logged, flagged in the next telemetry record)."""
        values = self._snapshot.read()[1]
        generation = self._snapshot.generation
        if generation == self._seen_generation:
            return _NOTHING
        try:
            self.block.check()  # a truncated block reads zeros, which are not values
        except shm.ShmError as e:
            self._lost = str(e)
            return _NOTHING
        self._seen_generation = generation
        applied = list(self._applied)
        changed, refused = [], []
        for i, (spec, value) in enumerate(zip(SCHEMA, values)):
            if value == applied[i]:
                continue
            why = spec.check(value)
            if why is not None:
                refused.append(f"{spec.path}: {why}; keeping {applied[i]}")
                continue
            applied[i] = value
            changed.append(spec.path)
        self._applied = Knobs(*applied)
        if refused:
            self._refused_pending = True
            log.warning("config refused: %s", "; ".join(refused))
        return Refresh(tuple(changed), tuple(refused))

    def knobs(self) -> Knobs:
        """The knobs at this step boundary (refreshed from the block), with their revision."""
        self.refresh()
        return self._applied

    @property
    def applied(self) -> Knobs:
        """The knobs as last refreshed, without reading the block."""
        return self._applied

    # ---- torch helpers -------------------------------------------------------------------------

    def make_optimizer(self, parameters):
        """SGD (with the momentum knob) or AdamW, as the optimizer knob says now; the knob is
        read here only, as the C++ trainer does."""
        torch = _torch()
        k = self.knobs()
        if k.optimizer == "adamw":
            return torch.optim.AdamW(parameters, lr=k.learning_rate, weight_decay=k.weight_decay)
        return torch.optim.SGD(parameters, lr=k.learning_rate, momentum=k.momentum,
                               weight_decay=k.weight_decay)

    def apply(self, optimizer, model=None) -> dict[str, tuple[Any, Any]]:
        """Refreshes the knobs and applies them: learning rate and weight decay to every param
        group, momentum to SGD's (AdamW's betas stay), dropout p to model's dropout modules.
        Returns {knob path: (old, new)} for what changed in the optimizer or model."""
        self.refresh()
        seen = (optimizer, model, self._seen_generation)
        last = self._applied_to
        if last is not None and last[0] is optimizer and last[1] is model and last[2] == seen[2]:
            return {}
        torch = _torch()
        k = self._applied
        targets = [("lr", LEARNING_RATE, k.learning_rate),
                   ("weight_decay", WEIGHT_DECAY, k.weight_decay)]
        if isinstance(optimizer, torch.optim.SGD):
            targets.append(("momentum", MOMENTUM, k.momentum))
        changes: dict[str, tuple[Any, Any]] = {}
        for group in optimizer.param_groups:
            for option, path, value in targets:
                if option in group and group[option] != value:
                    changes.setdefault(path, (group[option], value))
                    group[option] = value
        if model is not None:
            for module in model.modules():
                if isinstance(module, _dropout_types(torch)) and module.p != k.dropout:
                    changes.setdefault(DROPOUT, (module.p, k.dropout))
                    module.p = k.dropout
        self._applied_to = seen
        return changes

    def clip_grad_norm(self, parameters) -> float:
        """Clips the gradients' norm to grad_clip_max (0: no clipping); returns the norm."""
        torch = _torch()
        clip = self._applied.grad_clip_max
        norm = torch.nn.utils.clip_grad_norm_(parameters, clip if clip > 0 else math.inf)
        return float(norm)

    # ---- telemetry -----------------------------------------------------------------------------

    def push(self, step: int, epoch: int, loss=math.nan, grad_norm=math.nan, *, flags: int = 0,
             val_loss=math.nan, val_accuracy=math.nan, samples_per_sec=math.nan) -> None:
        """One telemetry record for `step`, with the learning rate and revision applied. Nothing
        is pushed once the block is no longer this run's."""
        if self._lost is not None:
            return
        if self._refused_pending:
            flags |= shm.FLAG_CONFIG_REFUSED
            self._refused_pending = False
        k = self._applied
        self._push(step, epoch, flags, loss, grad_norm, k.learning_rate, k.revision, val_loss,
                   val_accuracy, samples_per_sec)

    # ---- stopping ------------------------------------------------------------------------------

    @property
    def interrupted(self) -> bool:
        """True once the run must stop, write a checkpoint and exit ExitCode.INTERRUPTED: on
        SIGTERM, when the block's lease is no longer this run's, when the block was truncated, or
        when the config agent has been silent longer than TRAINVISOR_ORPHAN_AFTER_S."""
        return self.interrupt_reason is not None

    @property
    def interrupt_reason(self) -> str | None:
        if self._sigterm:
            return "SIGTERM"
        if self._lost is None and self.block.lease_version() != self._own_lease_version:
            self._check_lease()
        if self._lost is None and time.monotonic() >= self._next_slow_check:
            # An fstat and a clock read: once a second, as the C++ trainer does.
            self._next_slow_check = time.monotonic() + 1.0
            self._check_block()
        return self._lost

    def should_stop(self, epoch: int) -> Stop | None:
        """Whether the loop ends before its next step, and how: interrupted, early_stop (as
        last refreshed), or `epoch` (the epochs completed) reaching max_epochs."""
        why = self.interrupt_reason
        if why is not None:
            return Stop(ExitCode.INTERRUPTED, why)
        if self._applied.early_stop:
            return Stop(ExitCode.EARLY_STOPPED, "early_stop")
        if epoch >= self._applied.max_epochs:
            return Stop(ExitCode.COMPLETED, "max_epochs")
        return None

    def eval_due(self, steps_done: int, epoch_end: bool) -> bool:
        """Whether to evaluate now: every eval_every steps, or at each epoch end when it is 0."""
        every = self._applied.eval_every
        return (steps_done % every == 0) if every > 0 else epoch_end

    def checkpoint_due(self, steps_done: int) -> bool:
        """Whether checkpoint_every asks for a checkpoint after `steps_done` steps."""
        every = self._applied.checkpoint_every
        return every > 0 and steps_done % every == 0

    def _check_lease(self) -> None:
        version = self.block.lease_version()
        found = self.block.lease()
        if found == (self.attempt, self.lease_digest):
            self._own_lease_version = version
            return
        mine = _lease_text(self.attempt, self.lease_digest)
        if found is None:
            self._lost = f"the block {self.block_name} is being taken over by another lease, " \
                         f"not mine ({mine})"
        else:
            self._lost = f"the block {self.block_name} belongs to {_lease_text(*found)}, not " \
                         f"mine ({mine})"

    def _check_block(self) -> None:
        try:
            self.block.check()
        except shm.ShmError as e:
            self._lost = str(e)
            return
        if not self.orphan_after_s:
            return
        beat = self.block.heartbeat_unix_ns()
        if beat == 0:
            return  # a writer that never beats is not watched
        silent_s = (time.time_ns() - beat) / 1e9
        if silent_s > self.orphan_after_s:
            self._lost = (f"no heartbeat from the config agent for {silent_s:.1f} s (limit "
                          f"{self.orphan_after_s:g} s): its host is gone")

    def _on_sigterm(self, signum, frame) -> None:
        self._sigterm = True

    # ---- checkpoints ---------------------------------------------------------------------------

    @property
    def checkpoint_path(self) -> Path:
        return self.out_dir / CHECKPOINT_FILE

    def save_checkpoint(self, state) -> Path:
        """Writes `state` (torch.save) to TRAINVISOR_OUT_DIR/checkpoint.pt atomically: a temporary
        file, flushed to disk, renamed over the old one."""
        torch = _torch()
        path = self.checkpoint_path
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            with open(tmp, "wb") as f:
                torch.save(state, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        _fsync_dir(path.parent)
        return path

    def load_checkpoint(self):
        """The state the last save_checkpoint wrote (a previous attempt's too), or None."""
        torch = _torch()
        path = self.checkpoint_path
        if not path.exists():
            return None
        try:
            return torch.load(path, map_location="cpu", weights_only=False)
        except Exception as e:  # torch.load raises many types for a damaged file
            raise TrainerError(f"checkpoint {path} is unreadable: {e}") from e

    # ---- lifetime ------------------------------------------------------------------------------

    def close(self) -> None:
        """Restores the SIGTERM handler attach() replaced and detaches from the block."""
        if self._previous_sigterm is not None:
            signal.signal(signal.SIGTERM, self._previous_sigterm)
            self._previous_sigterm = None
        self.block.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _check_lease_env(env: dict[str, str]) -> tuple[int, str]:
    try:
        attempt = int(env[ENV_ATTEMPT])
        if attempt < 0:
            raise ValueError
    except ValueError:
        raise TrainerError(f"{ENV_ATTEMPT}={env[ENV_ATTEMPT]!r} is not an attempt number "
                           "(a non-negative integer)") from None
    digest = env[ENV_LEASE_DIGEST].lower()
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise TrainerError(f"{ENV_LEASE_DIGEST}={env[ENV_LEASE_DIGEST]!r} is not a lease digest "
                           "(64 hex digits)")
    return attempt, digest


def _orphan_after(env: Mapping[str, str]) -> float | None:
    text = env.get(ENV_ORPHAN_AFTER_S)
    if not text:
        return None
    try:
        value = float(text)
        if not math.isfinite(value) or value <= 0:
            raise ValueError
    except ValueError:
        raise TrainerError(f"{ENV_ORPHAN_AFTER_S}={text!r} is not a positive number of "
                           "seconds") from None
    return value


def attach(env: Mapping[str, str] | None = None, handle_sigterm: bool = True) -> Run:
    """The job's Run, from the environment the host sets (os.environ by default): attaches
    read-write to the block and checks that it is stamped with this job's lease. Raises
    TrainerError, with what is missing or whose block it is, otherwise. handle_sigterm: SIGTERM
    sets run.interrupted instead of ending the process (needs the main thread)."""
    env = os.environ if env is None else env
    values = _env(env)
    attempt, digest = _check_lease_env(values)
    orphan_after_s = _orphan_after(env)
    out_dir = Path(values[ENV_OUT_DIR])
    if not out_dir.is_dir():
        raise TrainerError(f"{ENV_OUT_DIR}={out_dir} is not a directory")
    name = values[ENV_BLOCK]
    try:
        block = shm.Block(name, read_write=True)
        found = block.lease()
    except shm.ShmError as e:
        raise TrainerError(f"cannot attach to the job's block: {e}") from None
    if found != (attempt, digest):
        block.close()
        raise TrainerError(_refusal(values, name, found, attempt, digest))
    try:
        run = Run(values, block, orphan_after_s)
    except shm.ShmError as e:  # a knob the block holds with another type
        block.close()
        raise TrainerError(f"the job's block {name}: {e}") from None
    if handle_sigterm:
        if threading.current_thread() is not threading.main_thread():
            run.close()
            raise TrainerError("attach(handle_sigterm=True) must run on the main thread (Python "
                               "delivers signals there); pass handle_sigterm=False elsewhere")
        run._previous_sigterm = signal.signal(signal.SIGTERM, run._on_sigterm)
    return run


def _refusal(env: dict[str, str], name: str, found, attempt: int, digest: str) -> str:
    mine = _lease_text(attempt, digest)
    whose = ("is being taken over by another lease" if found is None
             else f"belongs to {_lease_text(*found)}")
    text = f"the block {name} {whose}, not to this job's lease ({mine})"
    try:
        own = shm.block_name_for_job(env[ENV_JOB_ID])
    except shm.ShmError:
        own = None
    if own is not None and own != name:
        text += f"; job {env[ENV_JOB_ID]}'s block is {own}, not {name}"
    return text


def _torch():
    import torch  # the user's; imported only by the methods that take torch objects

    return torch


def _dropout_types(torch) -> tuple[type, ...]:
    nn = torch.nn
    return (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout,
            nn.FeatureAlphaDropout)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
