"""The run engine: stages, shards and checkpoints, shared by every executor.

A run is a fixed list of stages. ``sources`` reads the real data once. The steps then split at
each barrier (dedup) into segments: a segment runs per shard (generators plan the whole run and
each shard takes every ``world_size``-th task; filters stream over the shard's rows), a barrier
sees every row. Each stage ends by atomically writing its Parquet output (temp file + rename):
that file is the completion marker, so a re-run skips finished work and a ``kill -9`` loses only
the shard that was in flight, which is recomputed to the same bytes.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from synth import __version__
from synth.config import Pipeline
from synth.errors import ConfigError, InputError
from synth.manifest import SCHEMA, read_samples, samples_to_table, table_to_samples, write_table
from synth.manifest_ops import stats as manifest_stats
from synth.sample import Sample
from synth.steps import Barrier, Context, Filter, Generator, Step
from synth.util import atomic_write_json, atomic_write_text

log = logging.getLogger(__name__)
_RUN_FILES = ("state", "data", "manifest.parquet", "stats.json", "run.json", "pipeline.yaml")


@dataclass
class Segment:
    index: int
    steps: list[Step]  # generators (segment 0 only) and filters, streaming per shard
    barrier: Barrier | None  # the barrier that closes this segment, if any


def plan_segments(pipeline: Pipeline) -> list[Segment]:
    segments, current = [], []
    for i, step in enumerate(pipeline.steps):
        if isinstance(step, Generator) and segments:
            raise ConfigError(f"steps[{i}] ({step.name}): generators must come before the first dedup/barrier step.")
        if isinstance(step, Barrier):
            segments.append(Segment(len(segments), current, step))
            current = []
        else:
            current.append(step)
    segments.append(Segment(len(segments), current, None))
    return segments


def _shard_name(rank: int, world: int) -> str:
    return f"shard-{rank:05d}-of-{world:05d}.parquet"


class Run:
    """One run of a pipeline into a run directory. Executors call its stage methods."""

    def __init__(self, pipeline: Pipeline, run_dir: str | Path):
        self.pipeline = pipeline
        self.run_dir = Path(run_dir)
        self.state = self.run_dir / "state"
        self.segments = plan_segments(pipeline)
        self._ready: set[str] = set()
        self._real: list[Sample] | None = None
        self._plans: dict[str, list] = {}
        self._barrier_tables: dict[int, pa.Table] = {}  # read once per process, sliced per shard

    # ---- set-up and resume checks -------------------------------------------------------
    def prepare(self, fresh: bool = False) -> None:
        marker = self.run_dir / "run.json"
        if fresh and self.run_dir.exists():
            if not marker.exists() and any(self.run_dir.iterdir()):
                raise InputError(f"--fresh: {self.run_dir} is not a synth run directory (no run.json); refusing to delete it.")
            for name in _RUN_FILES:
                p = self.run_dir / name
                shutil.rmtree(p) if p.is_dir() else p.unlink(missing_ok=True)
        if marker.exists():
            import json

            prev = json.loads(marker.read_text())
            if prev.get("run_id") != self.pipeline.run_id:
                raise ConfigError(
                    f"{self.run_dir} holds run {prev.get('run_id')} of a different pipeline config (this one is "
                    f"{self.pipeline.run_id}). Resume only with the same config: pass --fresh to start over, or --out another directory."
                )
            if prev.get("shards") != self.pipeline.shards:
                raise ConfigError(
                    f"{self.run_dir} was started with shards={prev.get('shards')}; resuming with shards={self.pipeline.shards} "
                    f"would mix shard layouts. Use --set shards={prev.get('shards')} to resume, or --fresh to start over."
                )
        self.run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.run_dir / "pipeline.yaml", self.pipeline.to_yaml())
        atomic_write_json(
            marker,
            {"run_id": self.pipeline.run_id, "shards": self.pipeline.shards, "pipeline": self.pipeline.name, "synth_version": __version__},
        )

    def context(self, rank: int = 0, world: int | None = None) -> Context:
        return Context(self.run_dir, self.pipeline.seed, self.pipeline.run_id, rank, world or self.pipeline.shards)

    def _setup(self, step: Step, ctx: Context) -> None:
        if step.name not in self._ready:
            step.setup(ctx)
            self._ready.add(step.name)

    def teardown(self) -> None:
        for step in [*self.pipeline.sources, *self.pipeline.steps]:
            if step.name in self._ready:
                step.teardown()
        self._ready.clear()

    # ---- stages ----------------------------------------------------------------------------
    @property
    def sources_path(self) -> Path:
        return self.state / "sources.parquet"

    def shard_path(self, segment: int, rank: int) -> Path:
        return self.state / f"segment-{segment}" / _shard_name(rank, self.pipeline.shards)

    def barrier_path(self, segment: int) -> Path:
        return self.state / f"barrier-{segment}.parquet"

    def run_sources(self) -> None:
        if self.sources_path.exists():
            return
        ctx = self.context()
        samples: list[Sample] = []
        seen: dict[str, str] = {}
        for src in self.pipeline.sources:
            t0 = time.perf_counter()
            self._setup(src, ctx)
            n = 0
            for s in src.read(ctx):
                if s.id in seen:
                    raise InputError(
                        f"source {src.name!r}: sample id {s.id!r} also comes from source {seen[s.id]!r}; give the sources distinct names."
                    )
                seen[s.id] = src.name
                samples.append(s)
                n += 1
                ctx.count(src.name, "read")
                ctx.count(src.name, f"{s.split}_{'kept' if s.kept else 'rejected'}")
            if n == 0:
                raise InputError(f"source {src.name!r} ({src.type_name}) produced no samples: check its path, split and column settings.")
            ctx.count(src.name, "seconds", time.perf_counter() - t0)
        self._write_stage(samples, self.sources_path, ctx)

    def real_samples(self) -> list[Sample]:
        if self._real is None:
            self._real = read_samples(self.sources_path)
        return self._real

    def _input_rows(self, segment: int, rank: int) -> list[Sample]:
        world = self.pipeline.shards
        if segment == 0:
            return self.real_samples()[rank::world]
        table = self._barrier_tables.get(segment - 1)
        if table is None:
            table = self._barrier_tables[segment - 1] = pq.read_table(self.barrier_path(segment - 1))
        return table_to_samples(table.take(list(range(rank, table.num_rows, world))))

    def run_shard(self, segment: int, rank: int) -> bool:
        """Run one shard of one segment; False when it was already done."""
        out = self.shard_path(segment, rank)
        if out.exists():
            return False
        ctx = self.context(rank)
        rows = self._input_rows(segment, rank)
        for step in self.segments[segment].steps:
            t0 = time.perf_counter()
            self._setup(step, ctx)
            if isinstance(step, Generator):
                plan = self._plans.get(step.name)
                if plan is None:
                    plan = self._plans[step.name] = step.plan(step.inputs(self.real_samples()), ctx)
                mine = plan[rank :: self.pipeline.shards]
                made = list(step.generate(mine, ctx))
                ctx.count(step.name, "planned", len(mine))
                ctx.count(step.name, "generated", len(made))
                ctx.count(step.name, "rejected", sum(not s.kept for s in made))
                rows.extend(made)
            elif isinstance(step, Filter):
                ctx.count(step.name, "in", sum(step.applies_to(s) and s.kept for s in rows))
                rows = step.process(rows, ctx)
            ctx.count(step.name, "seconds", time.perf_counter() - t0)
        self._write_stage(rows, out, ctx)
        return True

    def shard_paths(self, segment: int) -> list[Path]:
        return [self.shard_path(segment, r) for r in range(self.pipeline.shards)]

    def run_barrier(self, segment: int) -> bool:
        barrier = self.segments[segment].barrier
        out = self.barrier_path(segment)
        if barrier is None or out.exists():
            return False
        ctx = self.context()
        t0 = time.perf_counter()
        self._setup(barrier, ctx)
        table = self._concat(self.shard_paths(segment))
        result = barrier.run_table(table, ctx)
        ctx.count(barrier.name, "in", table.num_rows)
        ctx.count(barrier.name, "seconds", time.perf_counter() - t0)
        self._write_table_stage(result, out, ctx)
        return True

    def finalize(self, wall_seconds: float | None = None) -> pa.Table:
        last = self.segments[-1].index
        table = self._concat(self.shard_paths(last))
        table = table.sort_by([("origin", "ascending"), ("id", "ascending")])
        write_table(table, self.run_dir / "manifest.parquet")
        atomic_write_json(self.run_dir / "stats.json", self.collect_stats(table, wall_seconds))
        return table

    # ---- helpers -------------------------------------------------------------------------
    def stage_files(self) -> Iterator[Path]:
        yield self.sources_path
        for seg in self.segments:
            yield from self.shard_paths(seg.index)
            if seg.barrier is not None:
                yield self.barrier_path(seg.index)

    def collect_stats(self, table: pa.Table, wall_seconds: float | None) -> dict[str, Any]:
        import json

        steps: dict[str, dict[str, float]] = {}
        extra: dict[str, Any] = {}
        for p in self.stage_files():
            sp = p.with_suffix(".stats.json")
            if sp.exists():
                data = json.loads(sp.read_text())
                for step, counters in data.get("counters", {}).items():
                    agg = steps.setdefault(step, {})
                    for k, v in counters.items():
                        agg[k] = round(agg.get(k, 0) + v, 6)
                for k, v in data.get("extra", {}).items():
                    extra.setdefault(k, {}).update(v) if isinstance(v, dict) else extra.__setitem__(k, v)
        order = [s.name for s in [*self.pipeline.sources, *self.pipeline.steps]]
        return {
            "pipeline": self.pipeline.name,
            "run_id": self.pipeline.run_id,
            "seed": self.pipeline.seed,
            "shards": self.pipeline.shards,
            "synth_version": __version__,
            "wall_seconds": wall_seconds,
            "steps": {n: steps[n] for n in order if n in steps},
            "manifest": manifest_stats(table),
            **extra,
        }

    def _concat(self, paths: list[Path]) -> pa.Table:
        missing = [p for p in paths if not p.exists()]
        if missing:
            raise InputError(f"stage outputs missing: {', '.join(str(p) for p in missing[:3])}; re-run `synth run` to finish them.")
        return pa.concat_tables([pq.read_table(p).cast(SCHEMA) for p in paths]) if paths else SCHEMA.empty_table()

    def _write_stage(self, samples: list[Sample], path: Path, ctx: Context) -> None:
        self._write_table_stage(samples_to_table(samples, self.pipeline.run_id), path, ctx)

    def _write_table_stage(self, table: pa.Table, path: Path, ctx: Context) -> None:
        ids = table.column("id")
        if pc.count_distinct(ids).as_py() != table.num_rows:
            raise InputError(f"stage {path.name}: sample ids are not unique; a step produced the same id twice.")
        atomic_write_json(path.with_suffix(".stats.json"), {"counters": ctx.counters, "extra": ctx.extra})
        write_table(table, path)  # written last: its presence marks the stage done
