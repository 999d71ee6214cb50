"""Python clients of Trainvisor."""
from .client import Coordinator, CoordinatorError, CoordinatorUnreachable  # noqa: F401
