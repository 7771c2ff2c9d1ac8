"""The dedup barrier: reasons per scope, duplicate_of, order independence, reference runs."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest
from PIL import Image

from synth.dedup.step import Dedup
from synth.manifest import samples_to_table, table_to_samples, write_table
from synth.sample import Sample
from synth.sources._base import png_bytes
from synth.steps import Context
from synth.util import sha256_bytes, sha256_text

BASE = (
    "customers often ask where their parcel is and when it will arrive at the front door "
    "because the tracking page has not been updated since the order left the warehouse"
)
EVAL = "i would like to close my account and delete every piece of personal data you hold about me today please"


def _t(id_, text, origin="synthetic", split="train", scores=None):
    return Sample(
        id=id_,
        modality="text",
        origin=origin,
        split=split,
        label="x",
        text=text,
        content_sha256=sha256_text(text),
        generator="g" if origin == "synthetic" else None,
        scores=scores or {},
    )


def _text_rows():
    edited = BASE.replace("warehouse", "depot")
    return [
        _t("real-train", BASE, origin="real"),
        _t("real-eval", EVAL, origin="real", split="eval"),
        _t("syn-copy", edited),  # one word changed from a real train text: memorised
        _t("syn-leak", EVAL + " now"),  # eval leak
        _t("syn-a", "an entirely new message about a blue kettle that arrived with a cracked lid and a missing plug"),
        _t("syn-a2", "an entirely new message about a blue kettle that arrived with a cracked lid and a missing plug"),
        _t("syn-a3", "an entirely new message about a blue kettle that arrived with a cracked lid and a missing plug today"),
        _t("syn-b", "how do i change the delivery address for an order that has not shipped yet"),
    ]


def _run(samples, tmp_path, **params):
    ctx = Context(run_dir=tmp_path, run_seed=0)
    out = Dedup(**params).run_table(samples_to_table(samples, "t"), ctx)
    return {s.id: s for s in table_to_samples(out)}, ctx


def test_text_scopes_and_reasons(tmp_path):
    got, ctx = _run(_text_rows(), tmp_path)
    assert got["syn-copy"].reject_reason == "dedup:near_copy_of_real" and got["syn-copy"].duplicate_of == "real-train"
    assert got["syn-leak"].reject_reason == "dedup:eval_leak" and got["syn-leak"].duplicate_of == "real-eval"
    assert got["syn-a"].kept and got["syn-a"].duplicate_of is None
    assert got["syn-a2"].reject_reason == "dedup:exact_duplicate" and got["syn-a2"].duplicate_of == "syn-a"
    assert got["syn-a3"].reject_reason == "dedup:near_duplicate" and got["syn-a3"].duplicate_of == "syn-a"
    assert got["syn-b"].kept and got["syn-b"].dedup_cluster is None
    assert got["real-train"].kept and got["real-eval"].kept
    assert got["syn-copy"].dedup_cluster == got["real-train"].dedup_cluster == "real-train"
    report = ctx.extra["dedup"]["dedup"]
    assert report["scheme"]["scheme"] == "affine32" and report["scheme"]["datasketch_version"].startswith("2.")
    assert report["text"]["rejected"] == {"eval_leak": 1, "exact_duplicate": 1, "near_copy_of_real": 1, "near_duplicate": 1}
    assert report["text"]["lsh"]["recall_at_threshold"] >= 0.95
    assert ctx.counters["dedup"]["dropped_near_copy_of_real"] == 1


def test_decisions_do_not_depend_on_row_order(tmp_path):
    rows = _text_rows()
    first, _ = _run(rows, tmp_path / "a")
    for seed in range(3):
        shuffled = [rows[i].copy() for i in np.random.default_rng(seed).permutation(len(rows))]
        again, _ = _run(shuffled, tmp_path / f"b{seed}")
        assert {k: (v.status, v.reject_reason, v.duplicate_of, v.dedup_cluster) for k, v in again.items()} == {
            k: (v.status, v.reject_reason, v.duplicate_of, v.dedup_cluster) for k, v in first.items()
        }


def test_scopes_can_be_switched_off_and_quality_decides(tmp_path):
    rows = _text_rows()
    got, _ = _run(rows, tmp_path, against_real=False, within_synthetic=False)
    assert got["syn-copy"].kept and got["syn-a2"].kept and got["syn-leak"].reject_reason == "dedup:eval_leak"
    rows = [r if r.id != "syn-a3" else _t("syn-a3", r.text, scores={"q": 0.9}) for r in _text_rows()]
    rows = [r if r.id not in ("syn-a", "syn-a2") else _t(r.id, r.text, scores={"q": 0.1}) for r in rows]
    got, _ = _run(rows, tmp_path / "q", quality_score="q")
    assert got["syn-a3"].kept and got["syn-a"].duplicate_of == "syn-a3"


def test_a_match_with_its_own_parent_is_not_a_memorised_copy(tmp_path):
    rows = _text_rows()
    rows[2].parent_id = "real-train"  # syn-copy is an augmentation of real-train
    got, _ = _run(rows, tmp_path)
    assert got["syn-copy"].kept and got["syn-copy"].dedup_cluster == "real-train"
    got, _ = _run(rows, tmp_path / "strict", exempt_parent=False)
    assert got["syn-copy"].reject_reason == "dedup:near_copy_of_real"


def test_real_train_eval_overlap_is_reported_not_dropped(tmp_path):
    rows = [_t("r1", BASE, origin="real"), _t("r2", BASE + " thanks", origin="real", split="eval")]
    got, ctx = _run(rows, tmp_path)
    assert got["r1"].kept and got["r2"].kept
    assert ctx.extra["dedup"]["dedup"]["real_train_eval_overlap"]["pairs"] == 1


def _img(ctx_dir, id_, arr, origin="synthetic", split="train"):
    data = png_bytes(Image.fromarray(arr.astype(np.uint8), mode="L"))
    rel = f"data/x/{id_}.png"
    (ctx_dir / "data" / "x").mkdir(parents=True, exist_ok=True)
    (ctx_dir / rel).write_bytes(data)
    return Sample(
        id=id_,
        modality="image",
        origin=origin,
        split=split,
        label="3",
        path=rel,
        content_sha256=sha256_bytes(data),
        generator="g" if origin == "synthetic" else None,
    )


def test_images_by_perceptual_hash(tmp_path):
    from synth.splits import digits_split

    images, labels, _ = digits_split()
    rng = np.random.default_rng(0)
    noisy = np.clip(images[1].astype(int) + rng.integers(-6, 7, (8, 8)), 0, 255)
    rows = [
        _img(tmp_path, "real-0", images[0], origin="real"),
        _img(tmp_path, "real-1", images[1], origin="real", split="eval"),
        _img(tmp_path, "syn-copy", images[0]),
        _img(tmp_path, "syn-leak", noisy),
        _img(tmp_path, "syn-x", images[2]),
        _img(tmp_path, "syn-x2", images[2]),
        _img(tmp_path, "syn-y", images[3]),
    ]
    got, ctx = _run(rows, tmp_path)
    assert got["syn-copy"].reject_reason == "dedup:near_copy_of_real"
    assert got["syn-leak"].reject_reason == "dedup:eval_leak"
    assert got["syn-x"].kept and got["syn-x2"].reject_reason == "dedup:exact_duplicate"
    assert got["syn-y"].kept
    assert ctx.extra["dedup"]["dedup"]["image"]["lsh"]["threshold"] == pytest.approx((64 - 4) / (64 + 4))


def test_reference_run_is_matched(tmp_path):
    old = [_t("old-1", "an entirely new message about a blue kettle that arrived with a cracked lid and a missing plug")]
    (tmp_path / "old").mkdir()
    write_table(samples_to_table(old, "old"), tmp_path / "old" / "manifest.parquet")
    got, _ = _run(_text_rows(), tmp_path / "new", reference=[str(tmp_path / "old")])
    assert got["syn-a"].reject_reason == "dedup:in_reference" and got["syn-a"].duplicate_of == "ref:old-1"


def test_empty_and_rejected_rows_are_left_alone(tmp_path):
    rows = _text_rows()
    rows[4].reject("filter:length")
    got, _ = _run(rows, tmp_path)
    assert got["syn-a"].reject_reason == "filter:length"
    # its exact twin syn-a was already rejected, so syn-a2 now represents the cluster with syn-a3
    assert got["syn-a2"].kept
    assert got["syn-a3"].reject_reason == "dedup:near_duplicate" and got["syn-a3"].duplicate_of == "syn-a2"
    out = Dedup().run_table(pa.Table.from_pylist([], schema=samples_to_table([], "t").schema), Context(run_dir=tmp_path))
    assert out.num_rows == 0
    assert json.loads(json.dumps(Dedup().scheme()))["num_perm"] == 128
