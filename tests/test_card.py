"""The dataset card: parses with huggingface_hub, metadata fields, counts, licences, funnel, usage."""

from __future__ import annotations

import json

import pytest
from huggingface_hub import DatasetCard

from synth.card import build_card, model_license, size_category, source_datasets
from synth.export import export
from synth.manifest import read_manifest


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from examples.outputs import build_run

    return build_run(tmp_path_factory.mktemp("card") / "run", per_label=2, synth_per_real=1, text=True)


def test_card_of_a_parquet_export_parses(run, tmp_path):
    export(run, tmp_path / "pq", "parquet", license="cc-by-4.0", pretty_name="Digits and intents")
    root = DatasetCard.load(str(tmp_path / "pq" / "README.md"))
    meta = root.data.to_dict()
    assert "synthetic" in meta["tags"] and meta["license"] == "cc-by-4.0" and meta["pretty_name"] == "Digits and intents"
    assert sorted(meta["task_categories"]) == ["image-classification", "text-classification"]
    assert meta["size_categories"] == ["n<1K"] and meta["source_datasets"] == ["extended|sklearn-digits"]
    assert [c["config_name"] for c in meta["configs"]] == ["image", "text"]
    assert meta["configs"][0]["data_files"][0] == {"split": "train", "path": "image/data/train-*.parquet"}
    img = DatasetCard.load(str(tmp_path / "pq" / "image" / "README.md"))
    assert img.data.to_dict()["task_categories"] == ["image-classification"]
    assert img.data.to_dict()["configs"][0]["data_files"][1] == {"split": "eval", "path": "data/eval-*.parquet"}
    body = img.text
    rows = read_manifest(run).to_pylist()
    n_syn = sum(r["origin"] == "synthetic" and r["modality"] == "image" and r["status"] == "kept" for r in rows)
    assert f"| train | 20 | {n_syn} |" in body and "| eval | 20 | 0 |" in body  # split x origin counts
    assert "| fake_diffusion | `models/fake-diffusion` | sha256:fake | mit |" in body  # licence from pipeline.yaml params
    assert "| fake_aug |" in body and "not declared" in body
    assert "filter:blur" in body and "dropped_blur=2" in body  # funnel from stats.json
    assert 'ds.filter(lambda r: not r["is_synthetic"])' in body
    assert "trainedAlgorithmicMedia" in body


def test_card_for_a_mix_has_the_spec(run, tmp_path):
    from synth.mix import MixSpec, mix_run, resolve_source

    mix_run(run, tmp_path / "m", MixSpec(ratio=1, modality="text", seed=4))
    src = resolve_source(tmp_path / "m")
    card = build_card(src.table, src.run_dir, fmt="hf", mix=src.mix)
    parsed = DatasetCard(str(card))
    assert parsed.data.to_dict()["task_categories"] == ["text-classification"]
    assert "## Mix" in parsed.text and '"seed": 4' in parsed.text and src.mix["fingerprint"] in parsed.text


def test_model_licence_sources(tmp_path):
    folder = tmp_path / "model-a"
    folder.mkdir()
    (folder / "synth_model.json").write_text(json.dumps({"license": "apache-2.0"}))
    assert model_license(str(folder), "gen", {}) == "apache-2.0"
    other = tmp_path / "model-b"
    other.mkdir()
    (other / "README.md").write_text("---\nlicense: openrail\n---\n# model\n")
    assert model_license(str(other), "gen", {}) == "openrail"
    step = {"steps": [{"type": "diffusion", "name": "gen", "license": "mit"}]}
    assert model_license(str(folder), "gen", step) == "mit", "the pipeline's declaration wins"
    assert model_license("hub/model-id", "gen2", step) is None


def test_metadata_helpers():
    assert [size_category(n) for n in (0, 999, 1000, 50_000, 2_000_000)] == ["n<1K", "n<1K", "1K<n<10K", "10K<n<100K", "1M<n<10M"]
    assert source_datasets({"sources": [{"type": "hf_dataset", "path": "ylecun/mnist"}]}) == ["extended|ylecun/mnist"]
    assert source_datasets({}) == ["original"]
