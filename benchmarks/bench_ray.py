"""The dedup stage on Ray vs locally: raw text -> near-duplicate clusters -> representatives.

    python benchmarks/bench_ray.py [--n 200000] [--workers 1,2] [--repeats 1]

Corpus: benchmarks/bench_dedup.make_corpus (seeded; 15% near-duplicates). Methods, all in this
process's wall clock:
  local     synth.dedup.minhash.text_signatures -> lsh.near_duplicate_clusters -> choose_representatives
            (what the local executor runs: one core, numba kernels);
  ray xN    synth.dedup.distributed.distributed_clusters with at most N tasks in flight on a local
            Ray instance with as many CPUs as the machine (signatures per block, band keys shuffled
            by key, candidate pairs verified per block pair, union-find on the driver), then the
            same choose_representatives.
With --step the whole ``dedup`` barrier step (exact groups, scopes, keep policy, manifest columns)
is timed on a manifest of the same texts as synthetic rows: ``Dedup.run_table`` locally vs the
same step with its clustering on Ray (needs the step's text_clusters/image_clusters seam).
Ray start-up is not timed (a cluster is long-lived); one small warm-up run starts the workers and
loads the numba caches, as the first dedup of a session would. Every Ray result is checked equal
to the local one (labels, verified pairs and their Jaccard). Ratios are local wall / Ray wall.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
from bench_dedup import make_corpus  # noqa: E402

from synth.dedup import distributed, lsh, minhash  # noqa: E402


def run_local(texts: list[str], args) -> tuple[float, lsh.Clusters, np.ndarray]:
    t0 = time.perf_counter()
    sig = minhash.text_signatures(texts, args.num_perm, ngram=args.ngram)
    cl = lsh.near_duplicate_clusters(sig, args.threshold)
    rep = lsh.choose_representatives(cl.labels, np.arange(len(texts)))
    return time.perf_counter() - t0, cl, rep


def run_ray(texts: list[str], args, workers: int) -> tuple[float, lsh.Clusters, np.ndarray]:
    sign = functools.partial(minhash.text_signatures, num_perm=args.num_perm, ngram=args.ngram)
    t0 = time.perf_counter()
    blocks = distributed.split_rows(texts, args.block_rows, workers=workers)
    cl = distributed.distributed_clusters(blocks, sign, args.threshold, workers=workers)
    rep = lsh.choose_representatives(cl.labels, np.arange(len(texts)))
    return time.perf_counter() - t0, cl, rep


def step_table(texts: list[str]):
    from synth.manifest import samples_to_table
    from synth.sample import Sample
    from synth.util import sha256_text

    rows = [
        Sample(id=f"syn-{i:06d}", modality="text", origin="synthetic", label="x", text=t, content_sha256=sha256_text(t), generator="bench")
        for i, t in enumerate(texts)
    ]
    return samples_to_table(rows, "bench")


def run_step(table, args, workers: int | None) -> tuple[float, object]:
    import tempfile

    from synth.dedup.distributed import ray_dedup
    from synth.dedup.step import Dedup
    from synth.steps import Context

    step = Dedup(threshold=args.threshold, num_perm=args.num_perm, ngram=args.ngram)
    if workers is not None:
        step = ray_dedup(step, workers=workers)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        out = step.run_table(table, Context(run_dir=Path(tmp)))
        return time.perf_counter() - t0, out


def same(a: lsh.Clusters, b: lsh.Clusters) -> bool:
    return (
        np.array_equal(a.labels, b.labels)
        and np.array_equal(a.pairs, b.pairs)
        and np.array_equal(a.jaccard, b.jaccard)
        and a.n_candidates == b.n_candidates
    )


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=200_000, help="documents")
    ap.add_argument("--seed", type=int, default=0, help="corpus seed")
    ap.add_argument("--threshold", type=float, default=0.8)
    ap.add_argument("--num-perm", type=int, default=128)
    ap.add_argument("--ngram", type=int, default=5)
    ap.add_argument("--workers", default="1,2", help="comma-separated Ray worker counts to time")
    ap.add_argument("--block-rows", type=int, default=None, help="rows per Ray block (default: 2 blocks per worker)")
    ap.add_argument("--cpus", type=int, default=os.cpu_count(), help="CPUs of the local Ray instance")
    ap.add_argument("--repeats", type=int, default=1, help="timed runs per method (the best is reported)")
    ap.add_argument("--step", action="store_true", help="time the whole dedup barrier step instead of the clustering core")
    args = ap.parse_args(argv)

    t = time.perf_counter()
    texts, family = make_corpus(args.n, args.seed)
    print(
        f"corpus: {len(texts):,} docs, {(family >= 0).sum():,} in near-duplicate families "
        f"({time.perf_counter() - t:.1f}s to generate); load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    )

    if args.step:
        return main_step(texts, args)
    run_local(texts[:2000], args)  # load the numba kernels
    local = [run_local(texts, args) for _ in range(args.repeats)]
    t_local = min(r[0] for r in local)
    ref = local[0][1]
    print(
        f"{'local (1 core)':<22}{t_local:>8.2f}s  {len(texts) / t_local:>9,.0f} docs/s  "
        f"{ref.n_candidates:,} candidates, {len(ref.pairs):,} verified, {len(np.unique(ref.labels)):,} clusters"
    )

    import ray

    ray.init(num_cpus=args.cpus, object_store_memory=1024**3, include_dashboard=False, log_to_driver=False)
    try:
        rows = []
        for w in [int(x) for x in args.workers.split(",")]:
            run_ray(texts[:4000], args, w)  # warm-up: start the workers, load numba caches
            runs = [run_ray(texts, args, w) for _ in range(args.repeats)]
            t_ray = min(r[0] for r in runs)
            ok = all(same(r[1], ref) and np.array_equal(r[2], local[0][2]) for r in runs)
            rows.append((w, t_ray, ok))
            print(f"{f'ray x{w}':<22}{t_ray:>8.2f}s  {len(texts) / t_ray:>9,.0f} docs/s  equal to local: {ok}")
            if not ok:
                raise SystemExit("Ray result differs from the local one")
    finally:
        ray.shutdown()
    print("\nratio (local wall / Ray wall; > 1 means Ray is faster):")
    for w, t_ray, _ in rows:
        print(f"  ray x{w}: {t_local / t_ray:.2f}x")
    if len(rows) > 1:
        print(f"  ray x{rows[-1][0]} vs ray x{rows[0][0]}: {rows[0][1] / rows[-1][1]:.2f}x")


def main_step(texts: list[str], args) -> None:
    from synth.dedup.distributed import has_dedup_seam

    if not has_dedup_seam():
        raise SystemExit("--step needs the dedup step's text_clusters/image_clusters seam (see synth/dedup/distributed.py)")
    table = step_table(texts)
    run_step(step_table(texts[:2000]), args, None)
    t_local, ref = min((run_step(table, args, None) for _ in range(args.repeats)), key=lambda r: r[0])
    rejected = sum(s == "rejected" for s in ref.column("status").to_pylist())
    print(f"{'local dedup step':<22}{t_local:>8.2f}s  {len(texts) / t_local:>9,.0f} docs/s  {rejected:,} rejected")
    import ray

    ray.init(num_cpus=args.cpus, object_store_memory=1024**3, include_dashboard=False, log_to_driver=False)
    try:
        for w in [int(x) for x in args.workers.split(",")]:
            run_step(step_table(texts[:4000]), args, w)
            t_ray, out = min((run_step(table, args, w) for _ in range(args.repeats)), key=lambda r: r[0])
            ok = out.drop_columns(["created_at"]).equals(ref.drop_columns(["created_at"]))
            print(
                f"{f'ray x{w} dedup step':<22}{t_ray:>8.2f}s  {len(texts) / t_ray:>9,.0f} docs/s  equal to local: {ok}  "
                f"ratio {t_local / t_ray:.2f}x"
            )
            if not ok:
                raise SystemExit("Ray result differs from the local one")
    finally:
        ray.shutdown()


if __name__ == "__main__":
    main()
