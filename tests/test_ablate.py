"""Ablation grid on a small digits run: files, resume, paired design, controls, probes, CLI."""

from __future__ import annotations

import csv
import json
import math

import pytest

from synth.ablate import AblationSpec, ablate, t_interval
from synth.cli import main
from synth.errors import InputError
from synth.manifest import read_manifest
from synth.mix import resolve_source


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from examples.outputs import build_run

    return build_run(tmp_path_factory.mktemp("abl") / "run", per_label=4, synth_per_real=2, text=True)


def rows(path):
    return list(csv.DictReader(open(path)))


def test_digits_ablation_files_resume_and_pairing(run, tmp_path):
    spec = AblationSpec(ratios=[0.5, 1], seeds=2, modalities=["image"], real_per_class=[2])
    res = ablate(run, tmp_path / "a", spec)
    for name in ("results.csv", "summary.csv", "ablation.png", "ablation.json"):
        assert (tmp_path / "a" / name).stat().st_size > 0
    assert (tmp_path / "a" / "ablation.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert res["cells"] == 3 * 2 and res["computed"] == 6
    results = rows(tmp_path / "a" / "results.csv")
    acc = [r for r in results if r["metric"] == "accuracy"]
    assert {(r["ratio"], r["seed"]) for r in acc} == {(x, s) for x in ("0", "0.5", "1") for s in ("0", "1")}
    assert {r["n_real"] for r in acc} == {"20"}, "2 real per class at every ratio"
    assert {r["ratio"]: r["n_synthetic"] for r in acc} == {"0": "0", "0.5": "10", "1": "20"}
    assert all(0 <= float(r["value"]) <= 1 for r in acc)
    summary = rows(tmp_path / "a" / "summary.csv")
    base = next(r for r in summary if r["ratio"] == "0" and r["metric"] == "accuracy")
    assert float(base["delta_mean"]) == 0 and base["n_seeds"] == "2"
    one = next(r for r in summary if r["ratio"] == "1" and r["metric"] == "accuracy")
    vals = [float(r["value"]) for r in acc if r["ratio"] == "1"]
    assert math.isclose(float(one["mean"]), sum(vals) / 2, rel_tol=1e-5)
    # resume: every cell comes from the cache, same numbers
    again = ablate(run, tmp_path / "a", spec)
    assert again["computed"] == 0 and again["cached"] == 6
    assert rows(tmp_path / "a" / "results.csv") == results
    # an interrupted ablation (a cell file missing, another torn) recomputes only those cells, to the same values
    cells = sorted((tmp_path / "a" / "cells").glob("*.json"))
    cells[0].unlink()
    cells[1].write_text('{"metr')
    resumed = ablate(run, tmp_path / "a", spec)
    assert resumed["computed"] == 2 and rows(tmp_path / "a" / "results.csv") == results


def test_controls_arms(run, tmp_path):
    spec = AblationSpec(
        ratios=[1],
        seeds=1,
        modalities=["image"],
        real_per_class=[2],
        controls=["real_repeat", "augment_only", "unfiltered", "synthetic_only"],
    )
    res = ablate(run, tmp_path / "c", spec)
    acc = {(r["arm"], r["ratio"]): r for r in rows(tmp_path / "c" / "results.csv") if r["metric"] == "accuracy"}
    assert {a for a, _ in acc} == {"synthetic", "real_repeat", "augment_only", "unfiltered", "synthetic_only"}
    assert acc[("real_repeat", "1")]["n_synthetic"] == "0" and acc[("real_repeat", "1")]["n_train"] == "40"
    assert acc[("augment_only", "1")]["generators"] == "fake_aug"
    assert acc[("synthetic_only", "1")]["n_real"] == "0" and acc[("synthetic_only", "1")]["n_synthetic"] == "40"
    # every arm at ratio 0 is the same real-only training set: computed once
    assert len({acc[(a, "0")]["cell"] for a in ("synthetic", "real_repeat", "augment_only", "unfiltered")}) == 1
    assert res["cached"] >= 3


def test_user_probe_and_errors(run, tmp_path):
    spec = AblationSpec(ratios=[1], seeds=1, modalities=["image"], probe="examples.outputs:majority_probe")
    ablate(run, tmp_path / "u", spec)
    metrics = {r["metric"] for r in rows(tmp_path / "u" / "results.csv")}
    assert metrics == {"accuracy", "n_train"}
    with pytest.raises(InputError, match="not a built-in probe"):
        ablate(run, tmp_path / "x", spec.model_copy(update={"probe": "pixel_lr"}))
    with pytest.raises(InputError, match="text probe"):
        ablate(run, tmp_path / "x", spec.model_copy(update={"probe": "tfidf_lr"}))
    with pytest.raises(InputError, match="lack rows"):
        ablate(run, tmp_path / "x", AblationSpec(ratios=[5], seeds=1, modalities=["image"]))
    with pytest.raises(InputError, match="generator 'nope'"):
        ablate(run, tmp_path / "x", AblationSpec(ratios=[1], seeds=1, generator_sets=[["nope"]]))


def test_text_tfidf_and_cnn_deterministic(run, tmp_path):
    ablate(run, tmp_path / "t", AblationSpec(ratios=[1], seeds=1, modalities=["text"], probe="tfidf_lr"))
    assert {r["modality"] for r in rows(tmp_path / "t" / "results.csv")} == {"text"}
    from synth.ablate import _abs_paths, eval_table
    from synth.mix import MixSpec, select
    from synth.probes import SmallCNN

    src = resolve_source(run)
    train = _abs_paths(select(src.table, MixSpec(ratio=1, modality="image", include_eval=False)).table, src.run_dir)
    ev = _abs_paths(eval_table(src.table, "image"), src.run_dir)
    a, b = SmallCNN(epochs=5)(train, ev, 0), SmallCNN(epochs=5)(train, ev, 0)
    assert a == b and a["accuracy"] > 0.2  # 10 classes: chance is 0.1


def test_minilm_probe_embeds_each_text_once(run):
    from synth.ablate import eval_table
    from synth.mix import MixSpec, select
    from synth.probes import MiniLMLogReg

    src = resolve_source(run)
    train = select(src.table, MixSpec(ratio=1, modality="text", include_eval=False)).table
    ev = eval_table(src.table, "text")
    probe = MiniLMLogReg()
    first = probe(train, ev, 0)
    n = probe.embedded
    assert n == train.num_rows + ev.num_rows
    assert probe(train, ev, 1) == first and probe.embedded == n  # cached by content_sha256
    assert first["accuracy"] >= 0.5  # 3 intents, chance is 1/3


def test_t_interval():
    mean, sd, lo, hi = t_interval([1.0, 2.0, 3.0])
    assert (mean, sd) == (2.0, 1.0)
    assert math.isclose(hi - mean, 4.302652729911275 / math.sqrt(3), rel_tol=1e-9) and math.isclose(mean - lo, hi - mean)
    assert math.isnan(t_interval([1.0])[2])


def test_cli_ablate_and_traversal(run, tmp_path, capsys):
    assert (
        main(
            [
                "ablate",
                str(run),
                "--ratios",
                "0,1",
                "--seeds",
                "2",
                "--modality",
                "image",
                "--real-per-class",
                "2",
                "--out",
                str(tmp_path / "cli"),
            ]
        )
        == 0
    )
    assert "accuracy" in capsys.readouterr().out
    info = json.loads((tmp_path / "cli" / "ablation.json").read_text())
    assert info["cells"] == 4 and info["probes"] == {"image": "pixels_lr"}
    assert main(["ablate", str(run), "--ratios", "a,b", "--out", str(tmp_path / "bad")]) == 2
    # a manifest whose payload path leaves the run directory is refused
    import pyarrow as pa

    from synth.manifest import write_table

    bad = tmp_path / "badrun"
    bad.mkdir()
    t = read_manifest(run)
    paths = t.column("path").to_pylist()
    i = next(j for j, o in enumerate(t.column("origin").to_pylist()) if o == "synthetic")
    paths[i] = "../../etc/passwd"
    write_table(
        t.set_column(t.schema.get_field_index("path"), t.schema.field("path"), pa.array(paths, pa.string())), bad / "manifest.parquet"
    )
    assert main(["ablate", str(bad), "--ratios", "1", "--seeds", "1", "--modality", "image", "--out", str(tmp_path / "b2")]) == 2
    assert "outside the run directory" in capsys.readouterr().err


def test_output_steps_from_yaml_config(run, tmp_path):
    """The pipeline `outputs:` steps (as a quickstart would end): a mix grid, a low-data ablation, an export of a mix."""
    import datasets

    from synth.config import build_step
    from synth.steps import Context

    cfgs = [
        {"type": "mix", "ratio": [0, 1], "real_per_class": 2, "modality": "image", "out": str(tmp_path / "mixes")},
        {"type": "ablate", "ratios": [1], "seeds": 2, "real_per_class": [2], "modalities": ["image"], "out": str(tmp_path / "abl")},
        {"type": "export", "source": str(tmp_path / "mixes" / "ratio-1"), "out": str(tmp_path / "export")},
    ]
    ctx = Context(run_dir=run, run_seed=0, run_id="fake-run")
    written = [build_step(c, "outputs", i).write(run, ctx) for i, c in enumerate(cfgs)]
    assert set(written[0]) == {str(tmp_path / "mixes" / "ratio-0"), str(tmp_path / "mixes" / "ratio-1")}
    assert written[0][str(tmp_path / "mixes" / "ratio-1")]["n_synthetic"] == 20
    assert (tmp_path / "abl" / "results.csv").exists() and written[1]["cells"] == 4
    ds = datasets.load_from_disk(str(tmp_path / "export"))
    assert sum(ds["train"]["is_synthetic"]) == 20 and len(ds["train"]) == 40
