"""Fuzzing of the readers: harnesses, atheris drivers, hypothesis tests and regression inputs."""
