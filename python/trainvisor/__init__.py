"""Python clients of Trainvisor."""
