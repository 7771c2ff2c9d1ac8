"""The Ray executor: the same stages as the local executor, spread over a Ray cluster.

``synth run PIPELINE --executor ray [--address ADDR]`` connects to a running cluster (``auto``,
``HOST:PORT`` or ``ray://HOST:10001``) or, without an address, starts a local Ray instance that it
shuts down at the end. It decides *where* the stages of :class:`synth.engine.Run` run, never *what*
they do:

* sources, non-dedup barriers, segments without steps (they only re-partition rows), the final
  manifest and the outputs run on the driver;
* every shard of a segment is one unit of work for a pool of :class:`ShardWorker` actors. An actor
  holds its own ``Run``, so each step's ``setup`` (model loading) happens once per actor, and runs
  the segment's whole chain (generators then filters) on the shard it is handed, writing the same
  atomic Parquet shard file as the local executor. An actor reserves the most CPUs and the most
  GPUs any step of its segment declares (``resources: {gpus: 0.5}`` packs two per GPU). Each actor
  has at most one shard in flight (backpressure: memory stays bounded by the pool size), and the
  pool has ``min(pending shards, what the cluster can hold, workers)`` actors;
* the ``dedup`` barrier runs through :mod:`synth.dedup.distributed` (signatures in parallel,
  band keys grouped by a shuffle, pairs resolved on the driver); any other barrier runs on the driver.

Fault tolerance: an actor whose process dies is restarted and its shard retried
(``max_restarts`` / ``max_task_retries``); the shard is recomputed to the same bytes. Finished shards
are files, so an interrupted driver resumes from them exactly like the local executor. Errors a
step raises on purpose (:class:`synth.errors.SynthError`) are not retried and reach the CLI as they are.

The run directory (and the working directory, which pipelines resolve relative paths against) must
be reachable at the same path from every node: one machine, or a shared filesystem.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import time
from collections import deque
from pathlib import Path
from typing import Any

import ray
from ray import cloudpickle
from ray.exceptions import RayTaskError

from synth.config import Pipeline
from synth.engine import Run, Segment
from synth.errors import ConfigError, InputError, SynthError
from synth.executors.local import run_outputs
from synth.progress import track
from synth.steps import Resources

log = logging.getLogger(__name__)

# Environment the workers need to rebuild the driver's view: plug-in modules, import path, offline flags.
_PASS_ENV = ("PYTHONPATH", "NO_ALBUMENTATIONS_UPDATE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE", "HF_HOME")
_PASS_PREFIX = "SYNTH_"


def worker_env() -> dict[str, str]:
    """The driver's environment variables that Ray workers get through ``runtime_env``."""
    return {k: v for k, v in os.environ.items() if k in _PASS_ENV or k.startswith(_PASS_PREFIX)}


def segment_resources(seg: Segment) -> Resources:
    """What one shard actor of a segment reserves: the largest CPU and GPU need of its steps."""
    if not seg.steps:
        return Resources(cpus=1, gpus=0)
    return Resources(cpus=max(s.resources.cpus for s in seg.steps), gpus=max(s.resources.gpus for s in seg.steps))


def pool_size(pending: int, need: Resources, cluster: dict[str, float], workers: int | None = None) -> int:
    """How many shard actors to start: bounded by the pending shards, the cluster and ``workers``."""
    fits = [pending]
    if need.cpus > 0:
        fits.append(math.floor(cluster.get("CPU", 0) / need.cpus + 1e-9))
    if need.gpus > 0:
        fits.append(math.floor(cluster.get("GPU", 0) / need.gpus + 1e-9))
    if workers is not None:
        fits.append(workers)
    return max(0, min(fits))


class ShardWorker:
    """A Ray actor that runs shards of one segment with its own ``Run`` (models load once per actor)."""

    def __init__(self, pipeline_blob: bytes, run_dir: str, cwd: str):
        # Problems are raised from shard(), not here: a task error reaches the driver as the SynthError it is,
        # where a constructor error would only say that the actor died.
        self.run: Run | None = None
        self.error: SynthError | None = None
        if Path(cwd).is_dir():
            os.chdir(cwd)  # pipelines name repo-relative paths (models/, data/)
        if not (Path(run_dir) / "run.json").exists():
            self.error = InputError(
                f"run directory {run_dir} is not visible on Ray node {socket.gethostname()}: put it on a filesystem "
                "every node mounts at the same path (see docs/ray.md)."
            )
            return
        try:
            self.run = Run(cloudpickle.loads(pipeline_blob), run_dir)
        except ModuleNotFoundError as e:
            self.error = ConfigError(
                f"a Ray worker on {socket.gethostname()} cannot import {e.name!r}, which defines a step of the pipeline: install it "
                "on every node, or set PYTHONPATH / SYNTH_PLUGINS when running `synth run` (they are forwarded to the workers)."
            )

    def shard(self, segment: int, rank: int) -> dict[str, Any]:
        if self.run is None:
            raise self.error or InputError("the shard worker was not initialised")
        t0 = time.perf_counter()
        ran = self.run.run_shard(segment, rank)
        return {"rank": rank, "ran": ran, "seconds": time.perf_counter() - t0, "pid": os.getpid(), "host": socket.gethostname()}

    def close(self) -> None:
        if self.run is not None:
            self.run.teardown()


class RayExecutor:
    """Run a pipeline on Ray. ``address``: None starts a local instance; ``auto``, ``HOST:PORT`` or
    ``ray://HOST:PORT`` connect to a cluster. ``workers`` caps the actors per segment;
    ``num_cpus`` and ``object_store_memory`` size a local instance; ``max_retries`` bounds actor
    restarts and shard retries after a worker dies."""

    def __init__(
        self,
        address: str | None = None,
        workers: int | None = None,
        num_cpus: int | None = None,
        object_store_memory: int = 500 * 1024**2,
        max_retries: int = 3,
    ):
        if workers is not None and workers < 1:
            raise ConfigError(f"workers must be at least 1, got {workers}.")
        self.address = address
        self.workers = workers
        self.num_cpus = num_cpus
        self.object_store_memory = object_store_memory
        self.max_retries = max_retries
        self.segment_report: list[dict[str, Any]] = []  # per segment: pool size, shards run, seconds
        self._inherit_env = False  # True on a local instance we started: its workers have our environment

    # ---- cluster ---------------------------------------------------------------------------
    def connect(self) -> bool:
        """Start a local Ray instance or connect to a cluster; True when this call did either, so the run
        ends with ``ray.shutdown()`` (which stops an instance we started and only disconnects from a
        cluster). False when this process was already connected: the session is left as it was."""
        self._inherit_env = False
        if ray.is_initialized():
            return False
        if self.address is None:
            ray.init(
                address="local",
                num_cpus=self.num_cpus,
                object_store_memory=self.object_store_memory,
                include_dashboard=False,
                log_to_driver=False,
                ignore_reinit_error=True,
            )
            self._inherit_env = True
            return True
        hint = (
            "Start one with `ray start --head`, then pass --address auto (same machine), HOST:6379, or ray://HOST:10001; "
            "omit --address to start a local instance."
        )
        unreachable = _unreachable(self.address)
        if unreachable:  # ray.init would retry for minutes
            raise ConfigError(f"--address {self.address!r}: no Ray cluster answers there ({unreachable}). {hint}")
        try:
            ray.init(address=self.address, log_to_driver=False, ignore_reinit_error=True)
        except (ConnectionError, ValueError) as e:
            raise ConfigError(f"--address {self.address!r}: cannot connect to a Ray cluster ({e}). {hint}") from None
        return True

    def runtime_env(self) -> dict[str, Any] | None:
        """Ray ``runtime_env`` for our workers: the driver's plug-in/import/offline variables, unless the
        workers inherit them already (a local instance started here; skipping it keeps worker start-up cheap)."""
        env = worker_env()
        return None if self._inherit_env or not env else {"env_vars": env}

    def actor_options(self, need: Resources) -> dict[str, Any]:
        opts = {"num_cpus": need.cpus, "num_gpus": need.gpus, "max_restarts": self.max_retries, "max_task_retries": self.max_retries}
        env = self.runtime_env()
        return {**opts, "runtime_env": env} if env else opts

    # ---- the run -----------------------------------------------------------------------------
    def run(self, pipeline: Pipeline, run_dir: Path, fresh: bool = False) -> dict[str, Any]:
        t0 = time.perf_counter()
        self.segment_report = []
        run_dir = Path(run_dir).resolve()
        run = Run(pipeline, run_dir)
        run.prepare(fresh)
        connected_here = self.connect()
        try:
            blob = cloudpickle.dumps(pipeline)  # before any setup() on the driver: the steps as configured
            run.run_sources()
            for seg in run.segments:
                todo = [r for r in range(pipeline.shards) if not run.shard_path(seg.index, r).exists()]
                self.run_segment(run, seg, todo, blob)
                if seg.barrier is not None and not run.barrier_path(seg.index).exists():
                    self.run_barrier(run, seg)
            table = run.finalize(time.perf_counter() - t0)
        finally:
            run.teardown()
            if connected_here:
                ray.shutdown()
        return run_outputs(pipeline, run, table.num_rows)

    def run_segment(self, run: Run, seg: Segment, todo: list[int], pipeline_blob: bytes) -> None:
        shards = run.pipeline.shards
        report: dict[str, Any] = {"segment": seg.index, "shards_done_before": shards - len(todo), "shards_run": 0, "actors": 0}
        self.segment_report.append(report)
        if not todo:
            log.info("segment %d: all %d shards already done", seg.index, shards)
            return
        if not seg.steps:  # nothing to compute: the shards only re-partition rows, which is I/O for the driver
            report["shards_run"] = sum(run.run_shard(seg.index, rank) for rank in todo)
            return
        need = segment_resources(seg)
        cluster = ray.cluster_resources()
        n = pool_size(len(todo), need, cluster, self.workers)
        if n == 0:
            biggest = max(seg.steps, key=lambda s: (s.resources.gpus, s.resources.cpus))
            raise ConfigError(
                f"step {biggest.name!r} declares resources cpus={need.cpus:g}, gpus={need.gpus:g} but the Ray cluster has "
                f"CPU={cluster.get('CPU', 0):g}, GPU={cluster.get('GPU', 0):g}: lower the step's `resources:` or add nodes."
            )
        actor_cls = ray.remote(ShardWorker).options(**self.actor_options(need))
        actors = [actor_cls.remote(pipeline_blob, str(run.run_dir), os.getcwd()) for _ in range(n)]
        report["actors"] = n
        t0 = time.perf_counter()
        try:
            label = f"segment {seg.index} ({', '.join(s.name for s in seg.steps) or 'pass'}) on {n} Ray actors"
            for result in track(self._dispatch(actors, seg.index, todo), label, total=len(todo)):
                report["shards_run"] += result["ran"]
        except BaseException:
            for a in actors:  # an error or Ctrl-C: stop now, shards in flight are simply not written
                ray.kill(a)
            raise
        self._release(actors)
        report["seconds"] = round(time.perf_counter() - t0, 3)
        log.info(
            "segment %d: %d shards on %d actors in %.1fs, %d already done",
            seg.index,
            len(todo),
            n,
            report["seconds"],
            report["shards_done_before"],
        )

    def _dispatch(self, actors: list[Any], segment: int, todo: list[int]):
        """Hand shards to idle actors, one in flight per actor; yield each result as it finishes."""
        queue, idle, inflight = deque(todo), list(actors), {}
        while queue or inflight:
            while queue and idle:
                actor = idle.pop()
                inflight[actor.shard.remote(segment, queue.popleft())] = actor
            ready, _ = ray.wait(list(inflight), num_returns=1)
            for ref in ready:
                idle.append(inflight.pop(ref))
                yield _get(ref)

    @staticmethod
    def _release(actors: list[Any]) -> None:
        """Tear the actors' steps down (free models), then end them."""
        try:
            ray.get([a.close.remote() for a in actors], timeout=60)
        except Exception as e:  # teardown is best effort: the actors are killed next anyway
            log.warning("shard actors did not tear down cleanly: %s", e)
        for a in actors:
            ray.kill(a)

    def run_barrier(self, run: Run, seg: Segment) -> None:
        barrier = seg.barrier
        if barrier is not None and type(barrier).type_name == "dedup":
            from synth.dedup.distributed import run_dedup_barrier

            where = run_dedup_barrier(run, seg.index, workers=self.workers, runtime_env=self.runtime_env())
        else:
            run.run_barrier(seg.index)
            where = "driver"
        self.segment_report[-1]["barrier"] = where


def _unreachable(address: str, timeout: float = 5.0) -> str | None:
    """For a ``HOST:PORT`` or ``ray://HOST:PORT`` address: why nothing listens there (None if something does)."""
    hostport = address.removeprefix("ray://")
    host, sep, port = hostport.rpartition(":")
    if not sep or not port.isdigit():
        return None  # "auto" and other forms: Ray resolves them and fails fast itself
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout):
            return None
    except OSError as e:
        return str(e) or type(e).__name__


def _get(ref: Any) -> Any:
    """ray.get that re-raises a step's own SynthError as itself (exit code 2 in the CLI)."""
    try:
        return ray.get(ref)
    except RayTaskError as e:
        if isinstance(e.cause, SynthError):
            raise e.cause from None
        raise
