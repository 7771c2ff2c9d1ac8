"""The step interface: sources, generators, filters, barriers (dedup) and outputs.

A step is one class with one verb. Its parameters are a pydantic model (``Params``, unknown keys
are errors), so the YAML is a lossless view of the Python object. ``setup()`` loads models once per
worker and ``teardown()`` frees them; ``resources`` tells an executor what a worker needs. Steps
never call an executor.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field

from synth.sample import Sample
from synth.util import derive_seed, synthetic_id


class Params(BaseModel):
    """Base of every step's parameters: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class Resources(BaseModel):
    """What one worker of a step needs; the Ray executor turns this into actor options."""

    model_config = ConfigDict(extra="forbid")
    cpus: float = Field(1.0, ge=0)
    gpus: float = Field(0.0, ge=0)


@dataclass
class Context:
    """What a step may know about the run it is part of."""

    run_dir: Path
    run_seed: int = 0
    run_id: str = "adhoc"
    rank: int = 0
    world_size: int = 1
    counters: dict[str, dict[str, float]] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)  # reports for stats.json (e.g. leakage)

    def count(self, step: str, key: str, n: float = 1) -> None:
        c = self.counters.setdefault(step, {})
        c[key] = c.get(key, 0) + n

    def payload_path(self, step: str, name: str) -> tuple[Path, str]:
        """(absolute path, path relative to the run dir) for a payload file of ``step``."""
        rel = f"data/{step}/{name}"
        return self.run_dir / rel, rel


class Step:
    """Base class. Subclasses set ``kind``, a ``Params`` model and implement their verb."""

    kind: ClassVar[str] = "step"
    type_name: ClassVar[str] = ""  # set by @register
    Params: ClassVar[type[Params]] = Params
    default_resources: ClassVar[Resources] = Resources()

    def __init__(self, name: str | None = None, resources: Resources | dict | None = None, **params: Any):
        self.name = name or self.type_name
        self.params = self.Params(**params)
        if isinstance(resources, dict):
            resources = Resources(**resources)
        self.resources = resources or self.default_resources

    @classmethod
    def from_params(cls, name: str | None, params: BaseModel, resources: Resources | None = None) -> Step:
        step = cls.__new__(cls)
        step.name = name or cls.type_name
        step.params = params
        step.resources = resources or cls.default_resources
        return step

    def to_config(self) -> dict[str, Any]:
        """The YAML view of this step: round-trips through the registry."""
        cfg: dict[str, Any] = {"type": self.type_name}
        if self.name != self.type_name:
            cfg["name"] = self.name
        cfg.update(self.params.model_dump(mode="json"))
        if self.resources != self.default_resources:
            cfg["resources"] = self.resources.model_dump()
        return cfg

    def setup(self, ctx: Context) -> None:  # noqa: B027 - optional hook
        """Load models or other heavy state, once per worker."""

    def teardown(self) -> None:  # noqa: B027 - optional hook
        """Free what setup loaded."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


class Source(Step):
    """Reads real data. ``read`` yields every real sample with ``origin='real'`` and a stable id."""

    kind: ClassVar[str] = "source"

    def read(self, ctx: Context) -> Iterator[Sample]:
        raise NotImplementedError


@dataclass
class Task:
    """One unit of generation work: the ``index``-th output of a generator."""

    index: int
    label: str | None = None
    parent: Sample | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class Generator(Step):
    """Makes synthetic samples from the real train samples.

    ``plan`` lists every task of the run, deterministically from the real samples; the executor
    hands each shard its tasks; ``generate`` turns a list of tasks into samples (in batches).
    """

    kind: ClassVar[str] = "generator"
    modality: ClassVar[Literal["image", "text"]] = "image"

    def inputs(self, real: list[Sample]) -> list[Sample]:
        """The real samples this generator may condition on: kept train rows of its modality."""
        return [s for s in real if s.modality == self.modality and s.split == "train" and s.kept]

    def plan(self, real: list[Sample], ctx: Context) -> list[Task]:
        raise NotImplementedError

    def generate(self, tasks: list[Task], ctx: Context) -> Iterator[Sample]:
        raise NotImplementedError

    def new_sample(self, task: Task, ctx: Context, **fields: Any) -> Sample:
        """A synthetic sample for ``task`` with id, per-sample seed, label and parent filled."""
        sid = synthetic_id(self.name, ctx.run_seed, task.index)
        fields.setdefault("seed", self.sample_seed(task, ctx))
        return Sample(
            id=sid,
            modality=self.modality,
            origin="synthetic",
            label=task.label,
            split="train",
            parent_id=task.parent.id if task.parent else None,
            generator=self.name,
            **fields,
        )

    def sample_seed(self, task: Task, ctx: Context) -> int:
        return derive_seed(ctx.run_seed, self.name, synthetic_id(self.name, ctx.run_seed, task.index)) & 0xFFFF_FFFF


class Filter(Step):
    """Scores samples, then decides from the scores alone.

    ``score`` returns ``{name: float}`` per sample (stored in the manifest for kept and rejected
    samples alike); ``decide`` maps stored scores to None (keep) or a reason (``filter:<reason>``),
    so thresholds can be re-swept later with ``synth refilter`` without rescoring.
    """

    kind: ClassVar[str] = "filter"
    modality: ClassVar[Literal["image", "text"] | None] = None
    batch_size: ClassVar[int] = 64

    def applies_to(self, sample: Sample) -> bool:
        return sample.origin == "synthetic" and (self.modality is None or sample.modality == self.modality)

    def score(self, samples: list[Sample], ctx: Context) -> list[dict[str, float]]:
        raise NotImplementedError

    def decide(self, scores: dict[str, float]) -> str | None:
        raise NotImplementedError

    def process(self, samples: list[Sample], ctx: Context) -> list[Sample]:
        """Score every applicable sample, then reject the kept ones the scores fail."""
        todo = [s for s in samples if self.applies_to(s)]
        for i in range(0, len(todo), self.batch_size):
            batch = todo[i : i + self.batch_size]
            for s, sc in zip(batch, self.score(batch, ctx), strict=True):
                s.scores.update(sc)
                ctx.count(self.name, "scored")
                reason = self.decide(s.scores)
                if s.kept and reason is not None:
                    s.reject(f"filter:{reason}")
                    ctx.count(self.name, f"dropped_{reason}")
                elif s.kept:
                    ctx.count(self.name, "kept")
        return samples


class Barrier(Step):
    """Needs every sample before it can decide (dedup). Works on the whole manifest table."""

    kind: ClassVar[str] = "barrier"

    def run_table(self, table: pa.Table, ctx: Context) -> pa.Table:
        raise NotImplementedError


class Output(Step):
    """Runs after the manifest is written (mix, ablate, export, report) and returns what it wrote."""

    kind: ClassVar[str] = "output"

    def write(self, run_dir: Path, ctx: Context) -> dict[str, Any]:
        raise NotImplementedError


KINDS: dict[str, type[Step]] = {
    "source": Source,
    "generator": Generator,
    "filter": Filter,
    "barrier": Barrier,
    "output": Output,
}
