"""The llm generator vs a plain ``model.generate`` loop: same model, prompts, batches and seeds.

    python benchmarks/bench_text_generation.py                       # CPU, the shipped models/intents-gpt2
    python benchmarks/bench_text_generation.py --prompts 64 --batch-size 16 --max-new-tokens 40
    python benchmarks/bench_text_generation.py --model Qwen/Qwen2.5-0.5B-Instruct --device cuda --dtype bfloat16

Both paths get the same prompts (rendered by the generator's plan from data/intents/train.jsonl:
the shipped model's few-shot format when the model folder has synth_model.json, the default
instruct templates otherwise), the same batches, the same sampling settings and the same per-batch
seeds, so they produce the same token ids; the script checks that the texts agree, then compares
time. The generator's time includes chat templating, output parsing and building the samples;
model loading is timed separately. Two references: the plain loop with ``stop_strings=`` (what
the transformers docs show; it rebuilds the stop-string tables on every call) and the same loop
with the generator's prebuilt stopping criterion (isolates the generator's own overhead). Runs are
interleaved and the median of ``--repeats`` is reported, as CPU seconds (process_time) and wall
seconds, since the machine may be shared. Overhead = generator / reference - 1 (target: under 5%).
"""

from __future__ import annotations

import os

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from synth.generators._text_common import parse_completion  # noqa: E402
from synth.generators.llm import LLMGenerator  # noqa: E402
from synth.sources.tabular import TextFileSource  # noqa: E402
from synth.steps import Context  # noqa: E402

SHIPPED_FORMAT = {"template": "Intent: {label}\n{shots}Example:", "shot_template": "Example: {text}\n", "n_per_prompt": 1, "stop": ["\n"]}


def build_generator(args: argparse.Namespace) -> LLMGenerator:
    local = Path(args.model)
    fmt = SHIPPED_FORMAT if (local / "synth_model.json").exists() else {"n_per_prompt": args.n_per_prompt}
    return LLMGenerator(
        model=args.model,
        device=args.device,
        dtype=args.dtype,
        batch_size=args.batch_size,
        max_new_tokens=args.max_new_tokens,
        shots=2,
        num_per_label=args.prompts,  # trimmed to --prompts tasks below
        **fmt,
    )


def reference_loop(g: LLMGenerator, tasks, ctx: Context, prebuilt_stop: bool) -> tuple[list[str], int]:
    """What a user would write by hand: tokenize a batch, model.generate, decode. Same seeds.

    ``prebuilt_stop=False`` passes ``stop_strings=`` (the documented way, which rebuilds the stop
    tables on every call); True reuses the generator's prebuilt criterion, isolating the generator's
    own overhead."""
    backend, p = g.backend, g.params
    tok, model, torch = backend.tokenizer, backend.model, backend.torch
    kwargs = backend.generate_kwargs(p.sampling())
    if p.stop and not prebuilt_stop:
        kwargs.pop("stopping_criteria")
        kwargs.update(stop_strings=list(p.stop), tokenizer=tok)
    texts, tokens = [], 0
    for start in range(0, len(tasks), p.batch_size):
        batch = tasks[start : start + p.batch_size]
        prompts = [backend.chat_prompt(t.extra["prompt"], p.system_prompt) if g.use_chat else t.extra["prompt"] for t in batch]
        enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=not g.use_chat).to(p.device)
        with torch.inference_mode(), torch.random.fork_rng(devices=[]):
            torch.manual_seed(g.batch_seed(batch, ctx))
            out = model.generate(**enc, **kwargs)
        new = out[:, enc["input_ids"].shape[1] :].cpu()
        texts += tok.batch_decode(new, skip_special_tokens=True)
        tokens += sum(backend.count_new_tokens(new))
    return texts, tokens


def timed(fn):
    w0, c0 = time.perf_counter(), time.process_time()
    result = fn()
    return result, time.perf_counter() - w0, time.process_time() - c0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(ROOT / "models" / "intents-gpt2"), help="local folder or Hub id")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    ap.add_argument("--prompts", type=int, default=48, help="prompts (= generate rows) per timed run")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=40)
    ap.add_argument("--n-per-prompt", type=int, default=5, help="samples asked per prompt (instruct models only)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads on CPU")
    ap.add_argument("--json", action="store_true", help="print the result as JSON too")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    ctx = Context(run_dir=Path(tempfile.mkdtemp(prefix="bench-text-")), run_seed=0, run_id="bench")
    real = list(TextFileSource(name="intents", path={"train": str(ROOT / "data/intents/train.jsonl")}, id_column="id").read(ctx))
    g = build_generator(args)
    _, load_wall, _ = timed(lambda: g.setup(ctx))
    tasks = g.plan(g.inputs(real), ctx)
    tasks = [tasks[i] for i in range(0, len(tasks), max(1, len(tasks) // args.prompts))][: args.prompts]  # spread over labels
    for i, t in enumerate(tasks):  # re-index so batch seeds do not depend on the subsampling
        t.index = i * t.extra["n"]

    list(g.generate(tasks[: args.batch_size], ctx))  # warm-up every path once
    reference_loop(g, tasks[: args.batch_size], ctx, False)
    reference_loop(g, tasks[: args.batch_size], ctx, True)

    times: dict[str, tuple[list[float], list[float]]] = {"plain": ([], []), "prebuilt": ([], []), "generator": ([], [])}
    for _ in range(args.repeats):  # interleaved, so load changes hit every path alike
        for key in times:
            if key == "generator":
                ctx.counters.clear()
                samples, w, c = timed(lambda: list(g.generate(tasks, ctx)))
            else:
                (ref_texts, ref_tokens), w, c = timed(lambda k=key: reference_loop(g, tasks, ctx, prebuilt_stop=k == "prebuilt"))
            times[key][0].append(w)
            times[key][1].append(c)
    gen_tokens = int(ctx.counters[g.name]["new_tokens"])
    # same tokens: the generator's samples are the parsed reference completions
    parse = g.params.parse_config()
    expected = [item.text for t in ref_texts for item in parse_completion(t, parse)[:1]]
    got = [s.text for s in samples if s.params["item"] == 0 and s.text]
    same = gen_tokens == ref_tokens and (g.params.n_per_prompt != 1 or expected == got)

    med = statistics.median
    wall = {k: med(v[0]) for k, v in times.items()}
    cpu = {k: med(v[1]) for k, v in times.items()}
    result = {
        "model": args.model,
        "model_revision": g.backend.model_revision,
        "device": args.device,
        "dtype": args.dtype,
        "threads": args.threads,
        "prompts": len(tasks),
        "batch_size": args.batch_size,
        "max_new_tokens": args.max_new_tokens,
        "samples": len(samples),
        "new_tokens": gen_tokens,
        "load_seconds": round(load_wall, 3),
        **{k: {"wall_s": round(wall[k], 4), "cpu_s": round(cpu[k], 4), "tokens_per_s": round(gen_tokens / wall[k], 1)} for k in times},
        "samples_per_s": round(len(samples) / wall["generator"], 2),
        "ratio_vs_plain": {"wall": round(wall["generator"] / wall["plain"], 4), "cpu": round(cpu["generator"] / cpu["plain"], 4)},
        "ratio_vs_prebuilt": {"wall": round(wall["generator"] / wall["prebuilt"], 4), "cpu": round(cpu["generator"] / cpu["prebuilt"], 4)},
        "same_outputs": same,
    }
    print(f"model {args.model} ({result['model_revision']}) on {args.device}/{args.dtype}, {args.threads} thread(s)")
    print(f"{len(tasks)} prompts in batches of {args.batch_size}, {gen_tokens} new tokens, {len(samples)} samples; load {load_wall:.2f}s")
    names = {
        "plain": "model.generate loop (stop_strings=)",
        "prebuilt": "model.generate loop (prebuilt stop)",
        "generator": "synth llm generator",
    }
    for k, name in names.items():
        print(
            f"{name:38s} {wall[k]:7.3f}s wall {cpu[k]:7.3f}s cpu {gen_tokens / wall[k]:8.1f} tokens/s {len(samples) / wall[k]:7.2f} samples/s"
        )
    for k in ("plain", "prebuilt"):
        r = result[f"ratio_vs_{k}"]
        print(f"ratio generator / {names[k]}: {r['wall']:.3f} wall, {r['cpu']:.3f} cpu (overhead target < 1.05)")
    print(f"identical outputs: {same}")
    if args.json:
        print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
