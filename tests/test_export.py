"""Exports read back with datasets: features, counts, AI marker, safety, Hub push (mocked)."""

from __future__ import annotations

import hashlib
import io
import json

import pyarrow as pa
import pytest

from synth.cli import main
from synth.errors import InputError
from synth.export import MARKER, export
from synth.manifest import read_manifest, write_table
from synth.mix import MixSpec, mix_run


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from examples.outputs import build_run

    return build_run(tmp_path_factory.mktemp("exp") / "run", per_label=2, synth_per_real=1, text=True)


def kept_counts(run, modality):
    rows = read_manifest(run).to_pylist()
    out: dict[str, int] = {}
    for r in rows:
        if r["modality"] == modality and r["status"] == "kept":
            out[r["split"]] = out.get(r["split"], 0) + 1
    return out


def payload_hashes(run):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (run / "data").rglob("*.png")}


def test_hf_export_features_counts_and_marker(run, tmp_path):
    import datasets
    from PIL import Image

    before = payload_hashes(run)
    res = export(run, tmp_path / "hf")
    assert set(res["splits"]) == {"image", "text"}
    img = datasets.load_from_disk(str(tmp_path / "hf" / "image"))
    assert isinstance(img, datasets.DatasetDict) and list(img) == ["train", "eval"]
    assert {s: len(d) for s, d in img.items()} == kept_counts(run, "image")
    f = img["train"].features
    assert isinstance(f["image"], datasets.Image) and isinstance(f["label"], datasets.ClassLabel)
    assert f["label"].names == [str(i) for i in range(10)] and f["is_synthetic"].dtype == "bool" and f["seed"].dtype == "int64"
    for col in ("origin", "generator", "model", "model_revision", "parent_id", "id", "scores", "params", "prompt", "content_sha256", "uri"):
        assert col in f
    train = img["train"].with_format(None)
    syn = [r for r in train if r["is_synthetic"]]
    real = [r for r in train if not r["is_synthetic"]]
    assert syn and real and all(r["origin"] == "synthetic" and r["generator"] for r in syn)
    assert all(not r["is_synthetic"] for r in img["eval"]), "eval rows are real"
    marked = syn[0]["image"]
    assert marked.text["DigitalSourceType"] == "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
    assert marked.text["synth:generator"] == syn[0]["generator"]
    assert "DigitalSourceType" not in real[0]["image"].info
    raw = img["train"].cast_column("image", datasets.Image(decode=False))
    r0 = next(r for r in raw if not r["is_synthetic"])
    assert hashlib.sha256(r0["image"]["bytes"]).hexdigest() == r0["content_sha256"], "real payloads exported byte-identical"
    s0 = next(r for r in raw if r["is_synthetic"])
    assert Image.open(io.BytesIO(s0["image"]["bytes"])).tobytes() == Image.open(run / s0["uri"]).tobytes(), "same pixels"
    assert payload_hashes(run) == before, "the run's payloads are untouched"
    txt = datasets.load_from_disk(str(tmp_path / "hf" / "text"))
    assert {s: len(d) for s, d in txt.items()} == kept_counts(run, "text")
    assert txt["train"].features["text"].dtype == "string"
    assert txt.filter(lambda r: not r["is_synthetic"])["train"].num_rows == 9
    assert (tmp_path / "hf" / "README.md").exists() and json.loads((tmp_path / "hf" / MARKER).read_text())["format"] == "hf"


def test_parquet_and_jsonl_read_back(run, tmp_path):
    import datasets

    export(run, tmp_path / "pq", "parquet", modality="image", license="cc-by-4.0")
    ds = datasets.load_dataset("parquet", data_dir=str(tmp_path / "pq"))
    assert {s: len(d) for s, d in ds.items()} == kept_counts(run, "image")
    assert isinstance(ds["train"].features["label"], datasets.ClassLabel) and isinstance(ds["train"].features["image"], datasets.Image)
    assert sorted(p.name for p in (tmp_path / "pq" / "data").iterdir()) == ["eval-00000-of-00001.parquet", "train-00000-of-00001.parquet"]
    export(run, tmp_path / "js", "jsonl", modality="text")
    js = datasets.load_dataset("json", data_dir=str(tmp_path / "js"))
    assert {s: len(d) for s, d in js.items()} == kept_counts(run, "text")
    assert set(js["train"]["label"]) == {"track_order", "refund_request", "account_login"}
    export(run, tmp_path / "ji", "jsonl", modality="image")
    first = json.loads((tmp_path / "ji" / "data" / "train-00000-of-00001.jsonl").read_text().splitlines()[0])
    assert (tmp_path / "ji" / first["image"]).read_bytes()[:4] == b"\x89PNG"


def test_export_a_mix_and_rejected_rows(run, tmp_path):
    import datasets

    mix_run(run, tmp_path / "mix", MixSpec(ratio=0.5, modality="image"))
    info = json.loads((tmp_path / "mix" / "mix.json").read_text())
    assert main(["export", str(tmp_path / "mix"), "--out", str(tmp_path / "e")]) == 0
    ds = datasets.load_from_disk(str(tmp_path / "e"))
    tr = info["counts"]["image"]["train"]
    assert len(ds["train"]) == sum(tr["real"].values()) + sum(tr["synthetic"].values())
    assert sum(ds["train"]["is_synthetic"]) == sum(tr["synthetic"].values())
    assert "## Mix" in (tmp_path / "e" / "README.md").read_text()
    export(run, tmp_path / "all", modality="image", include_rejected=True)
    full = datasets.load_from_disk(str(tmp_path / "all"))
    reasons = set(full["train"]["reject_reason"]) - {None}
    assert {"filter:blur", "dedup:eval_leak"} <= reasons and "rejected" in set(full["train"]["status"])
    # re-export in place replaces an earlier export; a foreign folder is refused
    export(run, tmp_path / "all", modality="image")
    assert "status" not in datasets.load_from_disk(str(tmp_path / "all"))["train"].features
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="not a synth export"):
        export(run, tmp_path / "foreign")


@pytest.mark.parametrize("column", ["path", "uri"])
def test_traversal_is_refused(run, tmp_path, capsys, column):
    bad = tmp_path / "bad"
    bad.mkdir()
    t = read_manifest(run)
    values = t.column(column).to_pylist()
    i = next(j for j, m in enumerate(t.column("modality").to_pylist()) if m == "image")
    values[i] = "../../etc/passwd"
    write_table(
        t.set_column(t.schema.get_field_index(column), t.schema.field(column), pa.array(values, pa.string())), bad / "manifest.parquet"
    )
    with pytest.raises(InputError, match="outside the run directory"):
        export(bad, tmp_path / "out")
    assert main(["export", str(bad), "--out", str(tmp_path / "out2")]) == 2
    assert "outside the run directory" in capsys.readouterr().err
    assert not (tmp_path / "out").exists() and not (tmp_path / "out2").exists()


def test_cli_errors(run, tmp_path, capsys):
    assert main(["export", str(run), "--out", str(tmp_path / "o"), "--format", "csv"]) == 2
    assert "Valid options: hf, parquet, jsonl" in capsys.readouterr().err
    assert main(["export", str(tmp_path / "missing"), "--out", str(tmp_path / "o")]) == 2
    assert main(["export", str(run), "--out", str(tmp_path / "o"), "--private"]) == 2
    assert "--push-to-hub" in capsys.readouterr().err


class FakeApi:
    calls: list = []

    def __init__(self, token=None, **kw):
        FakeApi.calls.append(("init", token))

    def create_repo(self, repo_id, repo_type=None, private=None, exist_ok=False, **kw):
        FakeApi.calls.append(("create_repo", repo_id, repo_type, private))
        return f"https://huggingface.co/datasets/{repo_id}"

    def upload_folder(self, repo_id, folder_path, repo_type=None, **kw):
        from pathlib import Path

        files = sorted(str(p.relative_to(folder_path)) for p in Path(folder_path).rglob("*") if p.is_file())
        texts = b"".join(p.read_bytes() for p in Path(folder_path).rglob("*") if p.is_file())
        FakeApi.calls.append(("upload_folder", repo_id, repo_type, files, b"hf_secret_token_123" in texts, kw.get("ignore_patterns")))
        return type("Commit", (), {"oid": "abc123"})()


def test_push_to_hub_mocked(run, tmp_path, monkeypatch, capsys, caplog):
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    with pytest.raises(InputError, match="HF_TOKEN"):
        export(run, tmp_path / "p0", "hf", modality="image", push_to_hub="me/ds")
    monkeypatch.setenv("HF_TOKEN", "hf_secret_token_123")
    FakeApi.calls = []
    assert main(["export", str(run), "--out", str(tmp_path / "p"), "--modality", "image", "--push-to-hub", "me/ds", "--private"]) == 0
    init, create, upload = FakeApi.calls
    assert init == ("init", "hf_secret_token_123")
    assert create == ("create_repo", "me/ds", "dataset", True)
    assert upload[1:3] == ("me/ds", "dataset") and "README.md" in upload[3]
    assert any(f.startswith("data/train-") and f.endswith(".parquet") for f in upload[3]), "the Parquet layout is pushed"
    assert upload[4] is False, "the token is in no uploaded file"
    written = b"".join(p.read_bytes() for p in (tmp_path / "p").rglob("*") if p.is_file())
    out = capsys.readouterr()
    assert b"hf_secret_token_123" not in written and "hf_secret_token_123" not in out.out + out.err + caplog.text


@pytest.mark.network
def test_push_to_real_hub(run, tmp_path):
    import os

    repo = os.environ.get("SYNTH_TEST_HUB_REPO")
    if not os.environ.get("HF_TOKEN") or not repo or os.environ.get("HF_HUB_OFFLINE") == "1":
        pytest.skip("needs HF_TOKEN, SYNTH_TEST_HUB_REPO and network access to the Hub")
    res = export(run, tmp_path / "hub", "parquet", modality="text", push_to_hub=repo, private=True)
    assert res["hub"]["repo_id"] == repo
