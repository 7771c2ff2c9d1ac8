"""Images/s of the ``diffusion`` generator vs a plain loop over the same diffusers model, in one run.

The reference is what a user would write by hand: the same model, the same batches (one label per
batch, ``num_images_per_prompt`` = batch size, one seeded ``torch.Generator`` per image), each image
encoded as PNG and written to disk. Ours is ``DiffusionGenerator.generate`` over the planned tasks
(per-sample seeds and draws, provenance, PNG payloads). Model loading is excluded from both. Runs
alternate in ABBA order ``--repeats`` times; the median is reported, with the ratio
ours / reference (1.00 = no overhead; the target is >= 0.95).

    python benchmarks/bench_image_generation.py                      # CPU: tiny SD + shipped digits model
    python benchmarks/bench_image_generation.py --model stabilityai/sd-turbo --steps 1 --guidance 0 \\
        --size 512 --device cuda --dtype float16 --batch-size 8 --n 64  # GPU: a Hub model
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("SYNTH_PROGRESS", "0")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from synth.generators import diffusion  # noqa: E402
from synth.generators.diffusion import DiffusionGenerator  # noqa: E402
from synth.sources._base import png_bytes  # noqa: E402
from synth.steps import Context  # noqa: E402
from synth.util import atomic_write_bytes  # noqa: E402

_SAMPLE = diffusion.sample_class_conditional
MODEL_S = {"ours": 0.0, "ref": 0.0}  # seconds inside the model call (pipeline __call__ / sampling loop)


def _timed_model(fn, side: str):
    @functools.wraps(fn, assigned=(), updated=())
    def wrapper(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            MODEL_S[side] += time.perf_counter() - t0

    return wrapper


def _chunks(items, size):
    return [items[i : i + size] for i in range(0, len(items), size)]


def reference_pipeline(g: DiffusionGenerator, tasks, ctx: Context, out: Path) -> None:
    """Plain loop over the same pipeline: one call per batch of one label, PNGs to disk."""
    import torch

    b = g._backend
    for label in dict.fromkeys(t.label for t in tasks):
        mine = [t for t in tasks if t.label == label]
        for batch in _chunks(mine, g.params.batch_size):
            gens = [torch.Generator("cpu").manual_seed(g.sample_seed(t, ctx)) for t in batch]
            kw = {"guidance_scale": b.guidance} if b.guidance is not None else {}
            images = _timed_model(getattr(b.pipe, "__wrapped__", b.pipe), "ref")(
                prompt=f"a photo of a {label}",
                num_images_per_prompt=len(batch),
                generator=gens,
                height=b.height,
                width=b.width,
                num_inference_steps=b.steps,
                output_type="pil",
                **kw,
            ).images
            for t, img in zip(batch, images, strict=True):
                atomic_write_bytes(out / f"{t.index}.png", png_bytes(img))


@functools.cache
def _training_script():
    spec = importlib.util.spec_from_file_location("train_digits", ROOT / "scripts" / "train_digits_diffusion.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    return script


def reference_unet(g: DiffusionGenerator, tasks, ctx: Context, out: Path) -> None:
    """Plain loop over the same UNet with the training script's reference ``sample()``."""
    import torch
    from PIL import Image

    script = _training_script()
    b = g._backend
    for batch in _chunks(tasks, g.params.batch_size):
        gens = [torch.Generator("cpu").manual_seed(g.sample_seed(t, ctx)) for t in batch]
        images = _timed_model(script.sample, "ref")(b.unet, b.scheduler, [b.class_index(t.label) for t in batch], gens, b.steps, b.guidance)
        for t, img in zip(batch, images, strict=True):
            atomic_write_bytes(out / f"{t.index}.png", png_bytes(Image.fromarray(img, mode="L")))


def bench(case: str, params: dict, labels: list[str], repeats: int) -> dict:
    from synth.sample import Sample

    real = [Sample(id=f"r{lab}", modality="image", origin="real", label=lab) for lab in labels]
    tmp = Path(tempfile.mkdtemp(prefix="bench-img-"))
    ctx = Context(run_dir=tmp / "ours", run_seed=0)
    g = DiffusionGenerator(**params)
    t0 = time.perf_counter()
    g.setup(ctx)
    load_s = time.perf_counter() - t0
    tasks = g.plan(g.inputs(real), ctx)
    ref = reference_unet if params.get("mode") == "class_conditional" else reference_pipeline
    if params.get("mode") == "class_conditional":
        diffusion.sample_class_conditional = _timed_model(_SAMPLE, "ours")
    else:
        pipe = g._backend.pipe
        g._backend.pipe = _timed_model(pipe, "ours")
    ref(g, tasks[: g.params.batch_size], ctx, tmp / "warm")  # warm-up both paths
    list(g.generate(tasks[: g.params.batch_size], ctx))
    MODEL_S.update(ours=0.0, ref=0.0)
    ours_t: list[float] = []
    ref_t: list[float] = []

    def timed(fn, into):
        t0 = time.perf_counter()
        fn()
        into.append(time.perf_counter() - t0)

    for i in range(repeats):  # ABBA order: drift on a busy machine hits both sides alike
        runs = [(lambda: ref(g, tasks, ctx, tmp / "ref"), ref_t), (lambda: list(g.generate(tasks, ctx)), ours_t)]
        for fn, into in runs if i % 2 == 0 else runs[::-1]:
            timed(fn, into)
    n = len(tasks)
    ours, refr = n / statistics.median(ours_t), n / statistics.median(ref_t)
    outside = {side: 1000 * (sum(t) - MODEL_S[side]) / (n * repeats) for side, t in (("ours", ours_t), ("ref", ref_t))}
    model_ms = {side: 1000 * MODEL_S[side] / (n * repeats) for side in MODEL_S}
    diffusion.sample_class_conditional = _SAMPLE
    g.teardown()
    return {
        "case": case,
        "n": n,
        "batch": g.params.batch_size,
        "load_s": load_s,
        "ours": ours,
        "ref": refr,
        "ratio": ours / refr,
        "ours_model_ms": model_ms["ours"],
        "ref_model_ms": model_ms["ref"],
        "ours_ms": outside["ours"],
        "ref_ms": outside["ref"],
        "layer_pct": 100 * (outside["ours"] - outside["ref"]) * ours / 1000,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", help="Hub id or folder of a text-to-image pipeline (default: the tiny SD and the shipped digits model)")
    ap.add_argument("--n", type=int, default=64, help="images per case")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--steps", type=int, default=None, help="denoising steps (default: 4 tiny SD, 10 digits, the pipeline's for --model)")
    ap.add_argument("--guidance", type=float, default=None)
    ap.add_argument("--size", type=int, default=None, help="height = width (default: the model's native size)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--repeats", type=int, default=6)
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = ap.parse_args(argv)

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    common = {"batch_size": args.batch_size, "device": args.device, "dtype": args.dtype}
    if args.guidance is not None:
        common["guidance"] = args.guidance
    if args.size:
        common |= {"height": args.size, "width": args.size}
    cases = []
    if args.model:
        labels = ["cat", "dog"]
        cases.append((args.model, {"model": args.model, "num_per_label": args.n // 2, "steps": args.steps, **common}, labels))
    else:
        from examples.image_generators import tiny_sd_path

        labels = [str(i) for i in range(4)]
        cases.append(
            ("tiny SD txt2img", {"model": tiny_sd_path(), "num_per_label": args.n // 4, "steps": args.steps or 4, **common}, labels)
        )
        digits = ROOT / "models" / "digits-diffusion"
        if (digits / "synth_model.json").exists():
            cases.append(
                (
                    "digits class_conditional",
                    {
                        "model": str(digits),
                        "mode": "class_conditional",
                        "num_per_label": max(1, args.n // 10),
                        "steps": args.steps or 10,
                        **common,
                    },
                    [str(i) for i in range(10)],
                )
            )
        else:
            print(f"(skipping the digits model: {digits} not found)")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}, dtype {args.dtype}, repeats {args.repeats}")
    print("ratio = ours / plain images/s; 'outside ms' = ms per image outside the model call (seeds, PNG, files, provenance);")
    print("layer % = our extra outside-model time as a share of our total time (the overhead of the layer, robust to model-time noise)")
    head = f"{'case':26} {'images':>6} {'batch':>5} {'load s':>6} {'ours img/s':>10} {'plain img/s':>11} {'ratio':>6}"
    print(head + f" {'model ms ours/plain':>20} {'outside ms ours/plain':>22} {'layer %':>8}")
    for case, params, labels in cases:
        r = bench(case, params, labels, args.repeats)
        row = f"{r['case']:26} {r['n']:6d} {r['batch']:5d} {r['load_s']:6.2f} {r['ours']:10.2f} {r['ref']:11.2f} {r['ratio']:6.3f}"
        print(
            row + f" {r['ours_model_ms']:9.2f} / {r['ref_model_ms']:<8.2f} {r['ours_ms']:10.2f} / {r['ref_ms']:<9.2f} {r['layer_pct']:8.2f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
