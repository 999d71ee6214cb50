"""Python clients of Trainvisor.

trainvisor.attach() is the entry point of a PyTorch script run as a fleet job (trainer.py); shm is
the shared-memory block client it stands on; Coordinator is the coordinator's HTTP client, for a
supervisor or a tool of its own (client.py); ingest posts samples to the coordinator.
"""

from trainvisor.client import Coordinator, CoordinatorError, CoordinatorUnreachable
from trainvisor.trainer import (ExitCode, Knobs, KnobSpec, Refresh, Run, SCHEMA, Stop,
                                TrainerError, attach)

__all__ = ["Coordinator", "CoordinatorError", "CoordinatorUnreachable", "ExitCode", "Knobs",
           "KnobSpec", "Refresh", "Run", "SCHEMA", "Stop", "TrainerError", "attach"]
