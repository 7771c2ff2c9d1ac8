"""Real-data sources: ids, splits, column mapping, and bad input as errors or recorded rejections."""

from __future__ import annotations

import json

import datasets
import pytest
from PIL import Image

from synth.errors import InputError
from synth.sources.digits import DigitsSource
from synth.sources.huggingface import HFDatasetSource
from synth.sources.imagefolder import ImageFolderSource
from synth.sources.tabular import TextFileSource
from synth.splits import stratified_split


def test_stratified_split_is_seeded_and_stratified():
    labels = ["a"] * 50 + ["b"] * 30 + [None] * 10
    m1, m2 = stratified_split(labels, 0.2, seed=1), stratified_split(labels, 0.2, seed=1)
    assert (m1 == m2).all() and (m1 != stratified_split(labels, 0.2, seed=2)).any()
    assert m1[:50].sum() == 10 and m1[50:80].sum() == 6 and m1[80:].sum() == 2


def test_digits_split_and_uris(ctx):
    rows = list(DigitsSource(max_per_label=3).read(ctx))
    assert len(rows) == 60 and {s.split for s in rows} == {"train", "eval"}
    assert all(s.uri.startswith("sklearn://digits/") and s.resolve(ctx.run_dir).is_file() for s in rows)
    assert rows[0].load_image(ctx.run_dir).size == (8, 8)


def test_image_folder_records_unreadable_images(tmp_path, ctx):
    root = tmp_path / "imgs"
    for label in ("cat", "dog"):
        (root / label).mkdir(parents=True)
        Image.new("RGB", (16, 16), (10, 20, 30)).save(root / label / "ok.png")
    good = (root / "cat" / "ok.png").read_bytes()
    (root / "dog" / "truncated.png").write_bytes(good[: len(good) // 2])
    (root / "dog" / "garbage.jpg").write_bytes(b"not an image")
    rows = list(ImageFolderSource(path=str(root)).read(ctx))
    assert len(rows) == 4
    bad = [s for s in rows if s.status == "rejected"]
    assert len(bad) == 2 and {s.reject_reason for s in bad} == {"source:unreadable"}
    assert all(s.path is None and s.content_sha256 for s in bad)
    ok = [s for s in rows if s.kept]
    assert all(s.uri.startswith("file://") and s.resolve(ctx.run_dir).read_bytes() == good for s in ok)
    with pytest.raises(InputError, match="not a folder"):
        list(ImageFolderSource(path=str(tmp_path / "nope")).read(ctx))


def test_jsonl_bad_lines_are_recorded_rejections(tmp_path, ctx):
    p = tmp_path / "t.jsonl"
    p.write_bytes(
        b'{"text": "fine line", "label": "a"}\n' + b'{"text": "caf\xe9", "label": "a"}\n' + b"{not json\n" + b'{"text": "", "label": "b"}\n'
    )
    rows = list(TextFileSource(path=str(p)).read(ctx))
    reasons = [s.reject_reason for s in rows]
    assert reasons == [None, "source:bad_encoding", "source:bad_json", "source:missing_text"]
    assert rows[0].text == "fine line" and rows[0].content_sha256


def test_missing_column_lists_available_ones(tmp_path, ctx):
    p = tmp_path / "t.jsonl"
    p.write_text(json.dumps({"utterance": "hi", "intent": "greet"}) + "\n")
    with pytest.raises(InputError, match="Available columns: intent, utterance"):
        list(TextFileSource(path=str(p)).read(ctx))
    rows = list(TextFileSource(path=str(p), text_column="utterance", label_column="intent").read(ctx))
    assert rows[0].label == "greet"


def test_csv_parquet_and_split_files(tmp_path, ctx):
    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp_path / "a.csv").write_text("text,label\nhello there,x\ngood bye,y\n")
    pq.write_table(pa.table({"text": ["p1", "p2"], "label": ["x", "y"]}), tmp_path / "b.parquet")
    assert [s.text for s in TextFileSource(path=str(tmp_path / "a.csv")).read(ctx)] == ["hello there", "good bye"]
    rows = list(TextFileSource(path={"train": str(tmp_path / "a.csv"), "eval": str(tmp_path / "b.parquet")}).read(ctx))
    assert [s.split for s in rows] == ["train", "train", "eval", "eval"] and len({s.id for s in rows}) == 4


def test_hf_dataset_from_disk_with_classlabel_and_images(tmp_path, ctx):
    feats = datasets.Features({"img": datasets.Image(), "label": datasets.ClassLabel(names=["zero", "one"])})
    ds = datasets.Dataset.from_dict({"img": [Image.new("L", (8, 8), v) for v in (0, 128, 255)], "label": [0, 1, 1]}, features=feats)
    datasets.DatasetDict({"train": ds, "test": ds.select([0])}).save_to_disk(str(tmp_path / "ds"))
    rows = list(HFDatasetSource(path=str(tmp_path / "ds"), image_column="img", splits={"train": "train", "test": "eval"}).read(ctx))
    assert [s.label for s in rows] == ["zero", "one", "one", "zero"] and [s.split for s in rows][-1] == "eval"
    assert rows[1].load_image(ctx.run_dir).getpixel((0, 0)) == 128
    with pytest.raises(InputError, match="Available columns: img, label"):
        list(HFDatasetSource(path=str(tmp_path / "ds"), text_column="text").read(ctx))
