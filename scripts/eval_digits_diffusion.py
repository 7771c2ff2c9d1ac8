"""Evaluate the digits diffusion model: label consistency, memorisation and CPU sampling time.

A classifier (SVC on pixels / 255) is fitted on the REAL train split of
``synth.splits.digits_split(eval_fraction=0.3, seed=0)`` and scored on the real eval split for
reference. The model is loaded back through ``from_pretrained`` exactly as a user would, 50 images
per class are drawn (each from its own seeded ``torch.Generator``) and label consistency is the
classifier's accuracy on them with their intended labels. Also reported: exact copies of train
images, the median L2 distance to the nearest real train image (next to the same number for real
eval images), and milliseconds per image at batch 100 and batch 1.

Reads:  MODEL/unet, MODEL/scheduler, MODEL/synth_model.json, scikit-learn's digits.
Writes: MODEL/synth_model.json ``evaluation`` and MODEL/README.md (unless --no-write).

Example::

    python scripts/eval_digits_diffusion.py --model models/digits-diffusion
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# Idle OpenMP threads sleep instead of spinning: on a busy shared machine the default spin-wait made
# 2-thread training ~10x slower; results are bit-identical either way (same work split per thread count).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_digits_diffusion import CLASS_NAMES, RECOMMENDED_STEPS, _digits_split, render_card, sample  # noqa: E402


def _timed(fn):
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w, time.process_time() - c


def evaluate(model: Path, steps: int, guidance_scales: Sequence[float | None], per_class: int = 50, threads: int = 2) -> dict:
    from diffusers import DDIMScheduler, UNet2DModel
    from sklearn.svm import SVC

    torch.set_num_threads(threads)
    images, labels, is_eval = _digits_split()(eval_fraction=0.3, seed=0)
    feats = images.reshape(len(images), -1).astype(np.float32) / 255.0
    train_feats = feats[~is_eval]
    train_bytes = {im.tobytes() for im in images[~is_eval]}
    clf = SVC(gamma="scale", C=10.0).fit(train_feats, labels[~is_eval])
    real_acc = float((clf.predict(feats[is_eval]) == labels[is_eval]).mean())

    def nn_dist(x: np.ndarray) -> np.ndarray:  # L2 (pixels / 255) to the nearest real train image
        d2 = (x**2).sum(1)[:, None] - 2 * x @ train_feats.T + (train_feats**2).sum(1)[None, :]
        return np.sqrt(np.maximum(d2.min(1), 0.0))

    real_nn = float(np.median(nn_dist(feats[is_eval])))
    print(f"classifier (SVC on real train pixels): real eval accuracy {real_acc:.4f} on {int(is_eval.sum())} rows")
    print(f"memorisation reference: median distance real eval -> nearest real train {real_nn:.3f}")

    unet = UNet2DModel.from_pretrained(model, subfolder="unet", use_safetensors=True).eval()
    scheduler = DDIMScheduler.from_pretrained(model, subfolder="scheduler")
    want = np.repeat(np.arange(len(CLASS_NAMES)), per_class)
    runs = []
    for gs in guidance_scales:
        gens = [torch.Generator().manual_seed(10_000 + i) for i in range(len(want))]
        gen, wall, cpu = _timed(
            lambda gs=gs, gens=gens: np.concatenate(
                [sample(unet, scheduler, want[i : i + 100], gens[i : i + 100], steps, gs) for i in range(0, len(want), 100)]
            )
        )
        flat = gen.reshape(len(gen), -1).astype(np.float32) / 255.0
        pred = clf.predict(flat)
        run = {
            "steps": steps,
            "guidance_scale": gs,
            "n_images": len(gen),
            "label_consistency": round(float((pred == want).mean()), 4),
            "per_class": {CLASS_NAMES[c]: round(float((pred[want == c] == c).mean()), 3) for c in range(len(CLASS_NAMES))},
            "distinct_images": len({g.tobytes() for g in gen}),
            "exact_copies_of_train": sum(g.tobytes() in train_bytes for g in gen),
            "median_nn_dist_to_train": round(float(np.median(nn_dist(flat))), 4),
            "ms_per_image_batch100": round(1000 * wall / len(gen), 2),
            "cpu_ms_per_image_batch100": round(1000 * cpu / len(gen), 2),
        }
        print(
            f"steps {steps} guidance {gs}: label consistency {run['label_consistency']:.4f} on {len(gen)} images; "
            f"{run['distinct_images']} distinct, {run['exact_copies_of_train']} exact train copies, median nn "
            f"distance {run['median_nn_dist_to_train']:.3f}; {run['ms_per_image_batch100']:.2f} ms/image wall "
            f"({run['cpu_ms_per_image_batch100']:.2f} CPU) at batch 100; per class {run['per_class']}"
        )
        runs.append(run)

    latency = {}
    for gs in guidance_scales:
        _, wall, cpu = _timed(
            lambda gs=gs: [sample(unet, scheduler, [i % 10], [torch.Generator().manual_seed(i)], steps, gs) for i in range(20)]
        )
        latency[str(gs or 1.0)] = {"ms_per_image": round(1000 * wall / 20, 2), "cpu_ms_per_image": round(1000 * cpu / 20, 2)}
        print(f"steps {steps} guidance {gs}: {1000 * wall / 20:.2f} ms/image wall ({1000 * cpu / 20:.2f} CPU) at batch 1")
    return {
        "command": f"python scripts/eval_digits_diffusion.py --model {model} --steps {steps} --threads {threads}",
        "classifier": "sklearn SVC(gamma='scale', C=10) on pixels / 255",
        "real_eval_accuracy": round(real_acc, 4),
        "real_eval_median_nn_dist_to_train": round(real_nn, 4),
        "n_per_class": per_class,
        "runs": runs,
        "batch1_latency": latency,
        "threads": threads,
        "load_average_1min": round(os.getloadavg()[0], 2),
        "timing_note": "wall-clock times depend on machine load; load_average_1min was recorded at the end.",
    }


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="models/digits-diffusion", help="saved model folder (default: %(default)s)")
    p.add_argument("--steps", type=int, default=RECOMMENDED_STEPS)
    p.add_argument("--guidance", type=float, nargs="*", default=[1.0, 1.5, 2.0], help="guidance scales (1.0 = off)")
    p.add_argument("--per-class", type=int, default=50)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--no-write", action="store_true", help="print only; leave synth_model.json and README.md alone")
    args = p.parse_args(argv)
    model = Path(args.model)
    meta_path = model / "synth_model.json"
    if not meta_path.is_file():
        print(f"error: {meta_path} not found; train first: python scripts/train_digits_diffusion.py --out {model}", file=sys.stderr)
        return 2
    scales = [None if g == 1.0 else g for g in args.guidance]
    result = evaluate(model, args.steps, scales, per_class=args.per_class, threads=args.threads)
    if not args.no_write:
        meta = json.loads(meta_path.read_text())
        meta["evaluation"] = result
        meta_path.write_text(json.dumps(meta, indent=2) + "\n")
        (model / "README.md").write_text(render_card(meta))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
