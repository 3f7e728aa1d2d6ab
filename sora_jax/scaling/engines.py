"""Where a ladder's or sweep's runs execute: `local` (one after another, in this process) or `ray`
(each run a Ray task, side by side, on whatever a Ray cluster offers; a local one by default).

    sora-jax ladder --config=sora_jax/configs/scaling.py:demo --workdir=out/ladder --engine=ray
    sora-jax sweep  --config=sora_jax/configs/scaling.py:gpu  --workdir=gs://.../sweep --engine=ray --ray_address=auto

A job is a module-level function and its arguments, so Ray ships it by reference. Runs stay
ordinary workdirs whichever engine trains them: a run the local engine started is resumed by a
Ray task and the other way round. A Ray task asks for its run's resources (`config.engine`:
CPUs, GPUs, TPU chips per run); when its worker dies (a killed process, a lost node) Ray retries
it, up to `max_retries` times, and the retry resumes from the run's last checkpoint. A job that
fails for any other reason (a NaN, a bad config) is not retried: the others finish, then the
engine raises, naming every failed job.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from collections.abc import Callable, Sequence

NAMES = ("local", "ray")
# What a Ray worker needs from the driver's environment to compute what the driver would (the
# platform, forced device counts, the compilation cache); Ray starts workers from its raylet's.
# gRPC (Ray's, Beam's) runs its fork handlers in every child a worker forks, and ffmpeg children
# (video reads and writes) then fail now and then ("Could not load meta information"); off.
NO_GRPC_FORK_HANDLERS = {"GRPC_ENABLE_FORK_SUPPORT": "false"}
FORWARDED_ENV = ("JAX_PLATFORMS", "XLA_FLAGS", "JAX_ENABLE_X64", "JAX_COMPILATION_CACHE_DIR",
                 "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES")


class Preempted(Exception):
    """A run saved a checkpoint and stopped on a preemption signal; rerunning it resumes."""


@dataclasses.dataclass(frozen=True)
class Job:
    name: str
    fn: Callable
    args: tuple = ()


class JobsFailed(RuntimeError):
    def __init__(self, failures: dict[str, BaseException]):
        self.failures = failures
        super().__init__("; ".join(f"{name}: {type(error).__name__}: {error}" for name, error in failures.items()))


class Local:
    """Runs jobs one after another in this process."""

    name = "local"

    def map(self, jobs: Sequence[Job], on_done: Callable | None = None) -> list:
        results = []
        for job in jobs:
            try:
                result = job.fn(*job.args)
            except Preempted as error:
                raise SystemExit(f"{error}; rerun the same command to resume") from None
            if on_done:
                on_done(job, result)
            results.append(result)
        return results


def _call(fn: Callable, args: tuple, verbosity: int):
    """A job in a Ray worker, logging at the driver's verbosity (absl's default there is INFO)."""
    from absl import logging

    logging.set_verbosity(verbosity)
    return fn(*args)


class Ray:
    """Runs jobs as Ray tasks: a local Ray instance (started here, this machine's CPUs and GPUs)
    when `address` is empty, else the cluster at `address` (`auto`: the one this machine belongs
    to, `ray://host:10001`: a remote one)."""

    name = "ray"

    def __init__(self, address: str = "", cpus: float = 1, gpus: float = 0, tpus: int = 0, max_retries: int = 3,
                 num_cpus: int | None = None):
        self.address, self.max_retries, self.num_cpus = address or None, max_retries, num_cpus
        self.resources = {"num_cpus": cpus, "num_gpus": gpus}
        if tpus:
            self.resources["resources"] = {"TPU": tpus}

    def _connect(self):
        try:
            import ray
        except ImportError:
            raise SystemExit("--engine=ray needs Ray: pip install -e '.[cluster]'") from None
        if not ray.is_initialized():
            env = {**NO_GRPC_FORK_HANDLERS, **{key: os.environ[key] for key in FORWARDED_ENV if key in os.environ}}
            ray.init(address=self.address, num_cpus=None if self.address else self.num_cpus,
                     include_dashboard=False, log_to_driver=True, runtime_env={"env_vars": env})
            print(f"engine: ray at {self.address or 'a local instance'}: {ray.cluster_resources()}", flush=True)
        return ray

    def map(self, jobs: Sequence[Job], on_done: Callable | None = None) -> list:
        from absl import logging

        ray = self._connect()
        remote = ray.remote(**self.resources, max_retries=self.max_retries, retry_exceptions=[Preempted])(_call)
        verbosity = logging.get_verbosity()
        refs = {remote.options(name=job.name).remote(job.fn, job.args, verbosity): index
                for index, job in enumerate(jobs)}
        results, failures = [None] * len(jobs), {}
        pending = list(refs)
        started = time.perf_counter()
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            index = refs[done[0]]
            try:
                results[index] = ray.get(done[0])
            except Exception as error:  # noqa: BLE001 - reported with the others once all are done
                failures[jobs[index].name] = getattr(error, "cause", None) or error
                print(f"engine: {jobs[index].name} failed: {failures[jobs[index].name]}", file=sys.stderr, flush=True)
                continue
            finished = len(jobs) - len(pending) - len(failures)
            elapsed = time.perf_counter() - started
            eta = elapsed / finished * len(pending)  # runs of a sweep differ in size: a rough guide
            print(f"engine: {jobs[index].name} done ({finished}/{len(jobs)}, {elapsed / 60:.1f} min, "
                  f"~{eta / 60:.0f} min left)", flush=True)
            if on_done:
                on_done(jobs[index], results[index])
        if failures:
            raise JobsFailed(failures)
        return results


def make(config) -> Local | Ray:
    """The engine `config.engine` names (`sora_jax/configs/scaling.py`: name, ray_address and what
    one run asks of a Ray cluster)."""
    engine = config.engine
    if engine.name not in NAMES:  # a ValueError: the CLI's one-line refusal, exit 2
        raise ValueError(f"engine.name={engine.name!r}; valid: {', '.join(NAMES)}")
    if engine.name == "local":
        return Local()
    return Ray(engine.ray_address, engine.cpus_per_run, engine.gpus_per_run, engine.tpus_per_run, engine.max_retries)
