"""Python clients of Trainvisor.

trainvisor.attach() is the entry point of a PyTorch script run as a fleet job (trainer.py); shm is
the shared-memory block client it stands on; ingest posts samples to the coordinator.
"""

from trainvisor.trainer import (ExitCode, Knobs, KnobSpec, Refresh, Run, SCHEMA, Stop,
                                TrainerError, attach)

__all__ = ["ExitCode", "Knobs", "KnobSpec", "Refresh", "Run", "SCHEMA", "Stop", "TrainerError",
           "attach"]
