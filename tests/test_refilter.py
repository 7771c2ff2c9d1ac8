"""synth refilter: new thresholds on stored scores, never rescoring, atomically, with stats."""

from __future__ import annotations

import json
import shutil

import pyarrow.parquet as pq
import pytest
import yaml

from synth import registry
from synth.cli import main
from synth.config import Pipeline
from synth.errors import ConfigError, InputError
from synth.executors.local import LocalExecutor
from synth.filters.pii import PiiFilter
from synth.filters.text_quality import TextQuality
from synth.manifest import read_manifest, write_table
from synth.refilter import decide_rows, refilter
from synth.sample import Sample
from synth.steps import Generator, Params, Task
from synth.util import sha256_text


class FixedTextParams(Params):
    n_per_label: int = 4


class FixedText(Generator):
    """Test-only generator: ``n_per_label`` nine-word texts per real text label (registered by
    the fixture below for this module only, so the registry contract test never sees it)."""

    Params = FixedTextParams
    modality = "text"

    def plan(self, real, ctx):
        labels = sorted({s.label for s in real})
        return [Task(index=i * len(labels) + j, label=lab) for i in range(self.params.n_per_label) for j, lab in enumerate(labels)]

    def generate(self, tasks, ctx):
        for t in tasks:
            text = f"{t.label} message number {t.index} about an order and its delivery"
            yield self.new_sample(t, ctx, text=text, content_sha256=sha256_text(text), model="none")


@pytest.fixture(scope="module")
def plugin_steps():
    registry.all_steps()
    registry.register("refilter_test_text")(FixedText)
    yield
    registry._REGISTRY.pop("refilter_test_text", None)


CONFIG = {
    "name": "refilter-test",
    "seed": 0,
    "shards": 2,
    "sources": [{"type": "text_file", "name": "texts", "path": "tests/data/tiny_texts.jsonl"}, {"type": "digits", "max_per_label": 2}],
    "steps": [
        {"type": "refilter_test_text", "n_per_label": 4},
        {"type": "text_quality", "min_words": 5},
        {"type": "pii"},
        {"type": "text_quality", "name": "tq_late", "max_words": 100},
    ],
}


@pytest.fixture(scope="module")
def base_run(plugin_steps, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("refilter") / "run"
    LocalExecutor().run(Pipeline.from_config(CONFIG), run_dir)
    return run_dir


@pytest.fixture
def run_dir(base_run, tmp_path):
    d = tmp_path / "run"
    shutil.copytree(base_run, d)
    return d


@pytest.fixture
def no_scoring(monkeypatch):
    def boom(self, samples, ctx):
        raise AssertionError("refilter must not rescore")

    for cls in (TextQuality, PiiFilter):
        monkeypatch.setattr(cls, "score", boom)
        monkeypatch.setattr(cls, "compute", boom)


def _syn(table):
    return [r for r in table.to_pylist() if r["origin"] == "synthetic"]


def test_base_run_scores_every_synthetic_row(base_run):
    rows = _syn(read_manifest(base_run))
    assert len(rows) == 8 and all(r["status"] == "kept" for r in rows)
    for r in rows:
        scores = json.loads(r["scores"])
        assert {"text_quality.words", "pii.email", "tq_late.words"} <= set(scores)


def test_refilter_changes_decisions_without_rescoring(run_dir, no_scoring):
    before = read_manifest(run_dir)
    res = refilter(run_dir, ["steps.text_quality.min_words=20"])
    after = read_manifest(run_dir)
    assert res.before == {"text_quality": 0, "pii": 0, "tq_late": 0, "kept_synthetic": 8}
    assert res.after == {"text_quality": 8, "pii": 0, "tq_late": 0, "kept_synthetic": 0}
    assert res.changed == 8
    assert {r["reject_reason"] for r in _syn(after)} == {"filter:text_quality.too_few_words"}
    # only status and reason changed; real rows untouched
    keep = [c for c in before.column_names if c not in ("status", "reject_reason")]
    assert after.select(keep).equals(before.select(keep))
    assert all(r["status"] == "kept" for r in after.to_pylist() if r["origin"] == "real")
    assert pq.read_table(run_dir / "manifest.prev.parquet").equals(before)
    stats = json.loads((run_dir / "stats.json").read_text())
    assert stats["steps"]["text_quality"]["dropped_text_quality.too_few_words"] == 8
    assert stats["steps"]["text_quality"]["kept"] == 0 and stats["steps"]["text_quality"]["scored"] == 8  # scored stays
    assert stats["steps"]["pii"]["in"] == 0  # nothing reaches pii any more
    assert stats["manifest"]["by_reason"] == {"filter:text_quality.too_few_words": 8}
    assert stats["refilter"]["overrides"] == ["steps.text_quality.min_words=20"]
    assert yaml.safe_load((run_dir / "refilter.yaml").read_text())["steps"][1]["min_words"] == 20
    assert main(["manifest", "validate", str(run_dir)]) == 0


def test_pipeline_order_and_no_override_restores(run_dir, no_scoring):
    res = refilter(run_dir, ["steps.tq_late.max_words=3", "steps.1.min_words=3"])
    assert res.after["tq_late"] == 8 and res.after["text_quality"] == 0
    res = refilter(run_dir, ["steps.tq_late.max_words=3", "steps.text_quality.min_words=50"])
    assert res.after["tq_late"] == 0 and res.after["text_quality"] == 8  # the earlier filter wins
    res = refilter(run_dir, [])
    assert res.after == {"text_quality": 0, "pii": 0, "tq_late": 0, "kept_synthetic": 8}  # overrides are not cumulative


def test_other_rejections_stay(run_dir, no_scoring):
    table = read_manifest(run_dir)
    rows = table.to_pylist()
    syn = [i for i, r in enumerate(rows) if r["origin"] == "synthetic"]
    rows[syn[0]].update(status="rejected", reject_reason="dedup:near_copy_of_real")
    rows[syn[1]].update(status="rejected", reject_reason="generator:unreadable")
    import pyarrow as pa

    write_table(pa.Table.from_pylist(rows, schema=table.schema), run_dir / "manifest.parquet")
    refilter(run_dir, ["steps.text_quality.min_words=20"])
    after = read_manifest(run_dir).to_pylist()
    assert after[syn[0]]["reject_reason"] == "dedup:near_copy_of_real"
    assert after[syn[1]]["reject_reason"] == "generator:unreadable"
    assert after[syn[2]]["reject_reason"] == "filter:text_quality.too_few_words"


def test_out_writes_a_copy(run_dir, tmp_path, no_scoring):
    original = read_manifest(run_dir)
    out = tmp_path / "copy"
    res = refilter(run_dir, ["steps.text_quality.min_words=20"], out=out)
    assert res.run_dir == out and read_manifest(run_dir).equals(original)
    assert not (run_dir / "refilter.yaml").exists()
    assert {r["status"] for r in _syn(read_manifest(out))} == {"rejected"}
    assert (out / "data").is_dir() and (out / "pipeline.yaml").is_file()
    with pytest.raises(InputError, match="not empty"):
        refilter(run_dir, [], out=out)


@pytest.mark.parametrize(
    ("override", "match"),
    [
        ("seed=3", "only changes filter thresholds"),
        ("steps.refilter_test_text.n_per_label=2", "is a generator, not a filter"),
        ("steps.text_quality.dup_ngram=3", "changes how 'text_quality' scores"),
        ("steps.pii.action=redact", "changes how 'pii' scores"),
        ("steps.text_quality.name=x", "cannot change in refilter"),
        ("steps.text_quality.min_wordz=3", "Did you mean 'min_words'"),
        ("steps.nope.min_words=3", "no step 'nope'"),
        ("steps.text_quality.min_words=-1", "greater than or equal to 0"),
        ("steps.text_quality.min_words", "expected steps"),
    ],
)
def test_bad_overrides(run_dir, override, match):
    with pytest.raises(ConfigError, match=match):
        refilter(run_dir, [override])
    assert not (run_dir / "manifest.prev.parquet").exists()


def test_not_a_run_dir(tmp_path):
    with pytest.raises(InputError, match="not a finished run dir"):
        refilter(tmp_path, [])


def test_cli(run_dir, capsys, no_scoring):
    assert main(["refilter", str(run_dir), "--set", "steps.text_quality.min_words=20"]) == 0
    out = capsys.readouterr().out
    assert "text_quality" in out and "+8" in out and "kept synthetic" in out
    assert main(["refilter", str(run_dir), "--set", "seed=1"]) == 2
    capsys.readouterr()
    assert main(["refilter", str(run_dir), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["before"]["text_quality"] == 8 and data["after"]["text_quality"] == 0


def test_decide_rows_counts_like_the_engine(base_run):
    """Re-deciding with the run's own thresholds reproduces the engine's counters."""
    from synth.manifest import read_samples

    p = Pipeline.from_config(yaml.safe_load((base_run / "pipeline.yaml").read_text()))
    decisions, counters = decide_rows(read_samples(base_run), p)
    stats = json.loads((base_run / "stats.json").read_text())["steps"]
    for name in ("text_quality", "pii", "tq_late"):
        assert counters[name] == {k: v for k, v in stats[name].items() if k in ("in", "kept") or k.startswith("dropped_")}
    assert all(d == ("kept", None) for d, s in zip(decisions, read_samples(base_run)) if s.origin == "synthetic")
    lone = Sample(id="x", modality="image", origin="synthetic", status="rejected", reject_reason="filter:gone.blurry")
    assert decide_rows([lone], p)[0] == [("kept", None)]  # a filter no longer in the config rejects nothing
