"""Every registered step: built from test parameters, config round trip, deterministic, empty input."""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

import examples as examples_pkg
import pyarrow as pa
import pytest

from synth import registry
from synth.config import build_step
from synth.manifest import samples_to_table, table_to_samples
from synth.steps import Barrier, Context, Filter, Generator, Output, Source

SECTION = {"source": "sources", "generator": "steps", "filter": "steps", "barrier": "steps", "output": "outputs"}


def _collect(attr: str) -> dict:
    out: dict = {}
    for mod in pkgutil.iter_modules(examples_pkg.__path__):
        out.update(getattr(importlib.import_module(f"examples.{mod.name}"), attr, {}))
    return out


EXAMPLES = _collect("EXAMPLES")
INPUTS = _collect("INPUTS")
STEPS = registry.all_steps()


def test_every_registered_step_has_test_parameters():
    missing = sorted(set(STEPS) - set(EXAMPLES))
    assert not missing, f"add test parameters for {missing} in tests/examples/<family>.py"


def _inputs(name, cls, ctx):
    if name in INPUTS:
        return INPUTS[name](ctx)
    from conftest import real_image_samples, real_text_samples

    modality = getattr(cls, "modality", None)
    return real_text_samples() if modality == "text" else real_image_samples(ctx, per_label=1)


def _fingerprint(samples):
    return [(s.id, s.status, s.reject_reason, s.content_sha256, s.text, sorted(s.scores.items())) for s in samples]


@pytest.mark.parametrize("name", sorted(STEPS))
def test_step_contract(name, tmp_path):
    cls = STEPS[name]
    if name not in EXAMPLES:
        pytest.fail(f"no test parameters for {name}")
    params = EXAMPLES[name](tmp_path)
    step = cls(**params)
    # config round trip through the registry
    cfg = step.to_config()
    again = build_step(cfg, SECTION[cls.kind], 0)
    assert type(again) is cls and again.to_config() == cfg

    def run_once(run_dir: Path, empty: bool = False):
        ctx = Context(run_dir=run_dir, run_seed=7, run_id="contract")
        s = cls(**params)
        s.setup(ctx)
        try:
            if isinstance(s, Source):
                return list(s.read(ctx))
            inputs = [] if empty else _inputs(name, cls, ctx)
            if isinstance(s, Generator):
                tasks = s.plan(s.inputs(inputs), ctx)[:4]
                return list(s.generate(tasks, ctx))
            if isinstance(s, Filter):
                return s.process([x.copy(origin="synthetic", generator="g") for x in inputs], ctx)
            if isinstance(s, Barrier):
                table = samples_to_table(inputs, "contract")
                return table_to_samples(s.run_table(table if not empty else table.slice(0, 0), ctx))
            if isinstance(s, Output):
                return None
        finally:
            s.teardown()

    a, b = run_once(tmp_path / "a"), run_once(tmp_path / "b")
    if a is None:
        return
    assert _fingerprint(a) == _fingerprint(b), "same seed must give the same samples"
    if cls.kind == "source":
        assert a and all(s.origin == "real" for s in a)
    else:
        assert run_once(tmp_path / "c", empty=True) == []
        if cls.kind == "generator":
            assert a and all(s.origin == "synthetic" and s.generator for s in a)


def test_empty_table_roundtrip():
    assert samples_to_table([], "x").num_rows == 0
    assert isinstance(samples_to_table([], "x"), pa.Table)
