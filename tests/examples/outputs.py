"""Test parameters for the output steps (mix, ablate, export) and a small run directory builder.

``build_run`` writes a self-contained run directory without any generator: real digits (train
and eval) from the ``digits`` source, "synthetic" digits made by shifting and perturbing real ones
(saved as PNG payloads, some rejected by a pretend blur filter, one flagged as an eval leak),
optionally real and synthetic intent texts, a pipeline.yaml naming the generator step types, and
a stats.json funnel.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import yaml

TEXT_EVAL = {
    "track_order": ["where is the parcel i ordered", "has my order shipped yet"],
    "refund_request": ["i would like a refund please", "can i return this for my money back"],
    "account_login": ["i forgot my password and cannot sign in", "login keeps failing on my account"],
}


def build_run(run_dir: Path, per_label: int = 4, synth_per_real: int = 2, text: bool = False, aug_per_real: int = 1) -> Path:
    from conftest import TEXTS
    from PIL import Image

    from synth.manifest import samples_to_table, write_table
    from synth.manifest_ops import stats
    from synth.sample import Sample
    from synth.sources._base import png_bytes
    from synth.sources.digits import DigitsSource
    from synth.steps import Context
    from synth.util import atomic_write_json, sha256_bytes, sha256_text

    ctx = Context(run_dir=Path(run_dir), run_seed=0, run_id="fake-run")
    real = list(DigitsSource(max_per_label=per_label).read(ctx))
    samples = list(real)
    rng = np.random.default_rng(0)
    for gen, n_per, model in (("fake_diffusion", synth_per_real, "models/fake-diffusion"), ("fake_aug", aug_per_real, None)):
        k = 0
        for parent in (s for s in real if s.split == "train"):
            base = np.asarray(parent.load_image(ctx.run_dir), dtype=np.int16)
            for _ in range(n_per):
                img = np.roll(base, int(rng.integers(-1, 2)), axis=int(rng.integers(0, 2)))
                img = np.clip(img + rng.integers(-20, 21, size=img.shape), 0, 255).astype(np.uint8)
                data = png_bytes(Image.fromarray(img, mode="L"))
                sid = f"{gen}-s0-{k:06d}"
                abs_path, rel = ctx.payload_path(gen, f"{sid}.png")
                abs_path.parent.mkdir(parents=True, exist_ok=True)
                abs_path.write_bytes(data)
                s = Sample(
                    id=sid,
                    modality="image",
                    origin="synthetic",
                    label=parent.label,
                    split="train",
                    path=rel,
                    uri=rel,
                    parent_id=parent.id,
                    generator=gen,
                    model=model,
                    model_revision="sha256:fake" if model else None,
                    seed=1000 + k,
                    prompt=None,
                    params={"shift": 1},
                    scores={"blur": float(k % 7)},
                    content_sha256=sha256_bytes(data),
                )
                if k % 7 == 0:
                    s.reject("filter:blur")
                k += 1
                samples.append(s)
    leak = next(s for s in reversed(samples) if s.origin == "synthetic" and s.kept)
    leak.reject("dedup:eval_leak")
    if text:
        from conftest import real_text_samples

        for real_t in real_text_samples():
            samples.append(real_t)
            t, label = real_t.text, real_t.label
            for j in range(synth_per_real):
                st = f"{t} ({'please' if j else 'thanks'})"
                samples.append(
                    Sample(
                        id=f"fake_llm-s0-{real_t.id.removeprefix('txt-')}-{j}",
                        modality="text",
                        origin="synthetic",
                        label=label,
                        split="train",
                        text=st,
                        parent_id=real_t.id,
                        generator="fake_llm",
                        model="models/fake-lm",
                        model_revision="sha256:lm",
                        seed=j,
                        prompt=f"paraphrase: {t}",
                        content_sha256=sha256_text(st),
                    )
                )
        for label in TEXTS:
            for i, t in enumerate(TEXT_EVAL[label]):
                samples.append(
                    Sample(
                        id=f"txt-eval-{label}-{i}",
                        modality="text",
                        origin="real",
                        label=label,
                        split="eval",
                        text=t,
                        content_sha256=sha256_text(t),
                        uri=f"test://eval/{label}/{i}",
                    )
                )
    table = samples_to_table(samples, "fake-run").sort_by([("origin", "ascending"), ("id", "ascending")])
    write_table(table, ctx.run_dir / "manifest.parquet")
    pipeline = {
        "name": "fake",
        "seed": 0,
        "sources": [{"type": "digits", "max_per_label": per_label}],
        "steps": [
            {"type": "diffusion", "name": "fake_diffusion", "license": "mit"},
            {"type": "albumentations", "name": "fake_aug"},
            {"type": "llm", "name": "fake_llm"},
            {"type": "minhash_dedup", "name": "dedup"},
            {"type": "blur", "name": "blur"},
        ],
    }
    (ctx.run_dir / "pipeline.yaml").write_text(yaml.safe_dump(pipeline, sort_keys=False))
    atomic_write_json(
        ctx.run_dir / "stats.json",
        {
            "pipeline": "fake",
            "run_id": "fake-run",
            "steps": {
                "fake_diffusion": {"generated": float(sum(s.generator == "fake_diffusion" for s in samples)), "seconds": 0.1},
                "blur": {"in": 10.0, "kept": 8.0, "dropped_blur": 2.0},
            },
            "manifest": stats(table),
        },
    )
    (ctx.run_dir / "run.json").write_text(json.dumps({"run_id": "fake-run"}))
    return ctx.run_dir


EXAMPLES = {
    "mix": lambda tmp_path: {"ratio": [0.5, 1.0], "out": "mixes", "seed": 1, "real_per_class": 2},
    "ablate": lambda tmp_path: {
        "ratios": [0, 1],
        "seeds": 2,
        "probe": "pixels_lr",
        "modalities": ["image"],
        "real_per_class": [2],
        "controls": ["real_repeat"],
        "out": "ablation",
    },
    "export": lambda tmp_path: {"format": "parquet", "out": "export", "source": "mixes/ratio-1", "license": "cc-by-4.0"},
}


def majority_probe(train, eval, seed):
    """A user probe (``examples.outputs:majority_probe``): predicts the most common train label."""
    from collections import Counter

    labels = train.column("label").to_pylist()
    top = Counter(labels).most_common(1)[0][0] if labels else None
    truth = eval.column("label").to_pylist()
    assert all(p is None or p.startswith("/") for p in train.column("path").to_pylist())  # absolute payload paths
    return {"accuracy": sum(t == top for t in truth) / len(truth), "n_train": len(labels) + seed * 0}
