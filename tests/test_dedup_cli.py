"""``synth dedup`` on JSONL, Parquet, a saved dataset and an image folder."""

from __future__ import annotations

import json

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from synth.cli import main

DOC = "the delivery van came early this morning and left the parcel with a neighbour two doors down the street"


def _docs():
    return [
        {"id": "a", "text": DOC},
        {"id": "b", "text": DOC.replace("street", "road")},  # last word: 1 of 16 shingles changes
        {"id": "c", "text": "a completely unrelated note about refund policies for damaged kitchen appliances bought online"},
        {"id": "d", "text": DOC},
    ]


def test_jsonl(tmp_path):
    src = tmp_path / "corpus.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in _docs()))
    assert main(["dedup", str(src), "--out", str(tmp_path / "out.jsonl")]) == 0
    rows = {r["id"]: r for r in map(json.loads, (tmp_path / "out.jsonl").read_text().splitlines())}
    assert rows["a"]["duplicate_of"] is None and rows["a"]["dedup_cluster"] == "a"
    assert rows["b"]["duplicate_of"] == "a" and rows["d"]["duplicate_of"] == "a"
    assert rows["c"]["duplicate_of"] is None and rows["c"]["dedup_cluster"] is None
    assert rows["b"]["text"] == _docs()[1]["text"]  # same rows, columns added


def test_parquet_threshold_and_errors(tmp_path, capsys):
    pq.write_table(pa.Table.from_pylist(_docs()), tmp_path / "c.parquet")
    assert main(["dedup", str(tmp_path / "c.parquet"), "--out", str(tmp_path / "o.parquet"), "--threshold", "0.99"]) == 0
    t = pq.read_table(tmp_path / "o.parquet").to_pylist()
    assert [r["duplicate_of"] for r in t] == [None, None, None, "a"]  # at 0.99 only the exact copy
    assert main(["dedup", str(tmp_path / "c.parquet"), "--out", str(tmp_path / "x.jsonl"), "--field", "body"]) == 2
    assert "Available columns: id, text" in capsys.readouterr().err
    assert main(["dedup", str(tmp_path / "missing.jsonl"), "--out", str(tmp_path / "x.jsonl")]) == 2


def test_saved_dataset_and_image_folder(tmp_path):
    datasets.Dataset.from_list(_docs()).save_to_disk(str(tmp_path / "ds"))
    assert main(["dedup", str(tmp_path / "ds"), "--out", str(tmp_path / "ds_out")]) == 0
    out = datasets.load_from_disk(str(tmp_path / "ds_out"))
    assert out["duplicate_of"] == [None, "a", None, "a"]

    from synth.splits import digits_split

    images, _, _ = digits_split()
    for name, arr in (("x/0.png", images[0]), ("x/1.png", images[0]), ("y/2.png", images[5])):
        (tmp_path / "imgs" / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.kron(arr, np.ones((4, 4), dtype=np.uint8))).save(tmp_path / "imgs" / name)
    assert main(["dedup", str(tmp_path / "imgs"), "--out", str(tmp_path / "imgs.jsonl")]) == 0
    rows = {r["id"]: r for r in map(json.loads, (tmp_path / "imgs.jsonl").read_text().splitlines())}
    assert rows["x/1.png"]["duplicate_of"] == "x/0.png" and rows["y/2.png"]["duplicate_of"] is None
