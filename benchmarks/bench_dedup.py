"""Near-duplicate detection: datasketch vs synth.dedup, on one core, with exact ground truth.

    python benchmarks/bench_dedup.py [--n 20000] [--a-sample 4000]
    python benchmarks/bench_dedup.py --docs 1000000 --short      # memory for 1M short documents

Corpus (seeded): originals of 50-400 Zipf-distributed pseudo-words with capitals and punctuation;
15% of the documents are near-duplicates of a pool of originals (1-3 per original), made by a
contiguous span edit, scattered word edits, or both, plus case/punctuation noise that
normalisation must ignore. Exact Jaccard on the same normalised word 5-gram shingles is computed
for every pair inside each family (original + its variants) and for every predicted pair across
families. Edit strengths are uniform, so many true pairs sit just above or below 0.8: a hard test
for any estimator.

Truth: pairs with exact Jaccard >= threshold. Predicted, two ways: "pairs" = the pairs a method
reports (datasketch: MinHashLSH query hits, which it does not verify; ours: candidates that passed
verification); "cluster" = every pair in the same output cluster (union-find is transitive).
Methods, each end to end (raw text -> clusters) in its own subprocess pinned to one CPU with
every thread pool at 1 (so peak RSS is per method):
  (a)  datasketch: shingles per document, MinHash.update per shingle, MinHashLSH insert + query,
       union-find over query results (timed on --a-sample documents, docs/s extrapolated);
  (b)  datasketch: same with MinHash.bulk;
  (c)  synth.dedup: text_signatures -> near_duplicate_clusters (banding, verification by
       estimated Jaccard, union-find) -> choose_representatives;
  (c') the same, verifying candidates by exact Jaccard (minhash.exact_jaccard).
Both datasketch runs use hashfunc=xxh32_hash and the same num_perm/seed, so their signatures are
bit-identical to ours; the benchmark asserts it. Speeds are CPU seconds (process_time) of the
timed region (numba kernels are loaded before it); wall time is printed too (the machine may be
shared). --short measures ours on --docs short documents (8-40 words): speed and peak RSS.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_var] = "1"
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import pickle  # noqa: E402
import resource  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from synth.dedup import lsh, minhash  # noqa: E402

SYLLABLES = [
    "ka",
    "to",
    "ri",
    "mu",
    "se",
    "la",
    "po",
    "ne",
    "vi",
    "da",
    "go",
    "shi",
    "ran",
    "te",
    "bo",
    "lu",
    "mi",
    "sa",
    "ko",
    "re",
    "na",
    "fu",
    "yo",
    "hi",
    "wa",
]


def _pin_one_cpu() -> None:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _vocab(rng: np.random.Generator, size: int) -> list[str]:
    lens = rng.integers(1, 5, size)
    syl = rng.integers(0, len(SYLLABLES), (size, 4))
    words = sorted({"".join(SYLLABLES[s] for s in row[:k]) for row, k in zip(syl, lens)})
    return words


def make_corpus(n: int, seed: int = 0, short: bool = False, dup_frac: float = 0.15):
    """Returns: (texts, family) — family[i] = family id of near-duplicate families, -1 otherwise."""
    rng = np.random.default_rng(seed)
    words = _vocab(rng, 60000)
    v = len(words)
    forms = words + [w.capitalize() for w in words] + [w + "," for w in words] + [w + "." for w in words]
    zipf = 1.0 / (np.arange(v) + 2.7) ** 1.05
    zipf /= zipf.sum()
    lo, hi = (8, 40) if short else (50, 400)
    n_var = int(round(n * dup_frac))
    n_orig = n - n_var
    lens = rng.integers(lo, hi + 1, n_orig)
    flat = rng.choice(v, size=int(lens.sum()), p=zipf)
    form = rng.choice(4, size=flat.size, p=[0.82, 0.06, 0.07, 0.05])
    toks = np.split(flat + form * v, np.cumsum(lens)[:-1])
    family = np.full(n, -1, dtype=np.int64)
    pool = rng.choice(n_orig, size=max(1, int(0.6 * n_var)), replace=False)
    variants = []
    for k in range(n_var):
        base = int(pool[rng.integers(len(pool))])
        family[base] = base
        t = toks[base].copy()
        kind = rng.integers(3)
        if kind in (0, 2):  # contiguous: replace, delete or insert one span
            f = rng.uniform(0, 0.25) / (2 if kind == 2 else 1)
            span = max(1, int(f * len(t)))
            at = int(rng.integers(0, max(1, len(t) - span)))
            new = rng.choice(v, size=span, p=zipf)
            op = rng.integers(3)
            t = np.concatenate([t[:at], new, t[at + span :]] if op == 0 else [t[:at], t[at + span :]] if op == 1 else [t[:at], new, t[at:]])
        if kind in (1, 2):  # scattered: replace or delete single words
            p = rng.uniform(0, 0.06) / (2 if kind == 2 else 1)
            hit = rng.random(len(t)) < p
            t = t.copy()
            t[hit] = rng.choice(v, size=int(hit.sum()), p=zipf)
            t = t[~(hit & (rng.random(len(t)) < 0.3))]
        noise = rng.random(len(t)) < 0.1  # case / punctuation changes that normalise away
        t = (t % v) + np.where(noise, rng.integers(0, 4, len(t)), t // v) * v
        variants.append(t)
        family[n_orig + k] = base
    all_toks = toks + variants
    texts = [" ".join(map(forms.__getitem__, t.tolist())) for t in all_toks]
    perm = rng.permutation(n)
    return [texts[i] for i in perm], family[perm]


# ---------------------------------------------------------------- methods (run in a subprocess)


def _union_find_labels(n: int, edges: list[tuple[int, int]]) -> np.ndarray:
    pairs = np.array(edges, dtype=np.int64).reshape(-1, 2)
    return lsh.connected_components(n, pairs)


def run_datasketch(texts: list[str], args, per_shingle: bool) -> dict:
    from datasketch import MinHash, MinHashLSH

    _union_find_labels(2, [(0, 1)])  # load the numba union-find outside the timed region
    ready = _rss_mb()

    kw = dict(num_perm=args.num_perm, seed=args.seed, hashfunc=minhash.xxh32_hash)
    ng = args.ngram
    t0, c0 = time.perf_counter(), time.process_time()
    if per_shingle:
        sketches = []
        for text in texts:
            m = MinHash(**kw)
            for sh in minhash.shingles(text, ng):
                m.update(sh)
            sketches.append(m)
    else:
        sketches = MinHash.bulk((minhash.shingles(text, ng) for text in texts), **kw)
    index = MinHashLSH(threshold=args.threshold, num_perm=args.num_perm)
    for i, m in enumerate(sketches):
        index.insert(i, m)
    edges = [(i, j) for i, m in enumerate(sketches) for j in index.query(m) if j > i]
    labels = _union_find_labels(len(texts), edges)
    cpu, wall = time.process_time() - c0, time.perf_counter() - t0
    sig = np.stack([m.hashvalues for m in sketches[: args.check]])
    return {
        "cpu": cpu,
        "wall": wall,
        "labels": labels,
        "sig": sig,
        "edges": np.array(edges).reshape(-1, 2),
        "lsh": f"{index.b}x{index.r}",
        "rss_ready": ready,
        "extra": {},
    }


def run_ours(texts: list[str], args, exact: bool) -> dict:
    sim = (lambda p: minhash.exact_jaccard(texts, p, args.ngram)) if exact else None
    warm = texts[:64]  # load the numba kernels outside the timed region
    lsh.near_duplicate_clusters(minhash.text_signatures(warm), args.threshold)
    minhash.exact_jaccard(warm, np.array([[0, 1]]))
    ready = _rss_mb()
    t0, c0 = time.perf_counter(), time.process_time()
    sig = minhash.text_signatures(texts, args.num_perm, args.seed, args.ngram)
    c1 = time.process_time()
    cl = lsh.near_duplicate_clusters(sig, args.threshold, similarity=sim)
    c2 = time.process_time()
    lsh.choose_representatives(cl.labels, np.arange(len(texts)))
    cpu, wall = time.process_time() - c0, time.perf_counter() - t0
    extra = {
        "signatures_cpu": c1 - c0,
        "lsh_cpu": c2 - c1,
        "keep_cpu": cpu - (c2 - c0),
        "candidates": cl.n_candidates,
        "verified": len(cl.pairs),
    }
    return {
        "cpu": cpu,
        "wall": wall,
        "labels": cl.labels,
        "sig": sig[: args.check],
        "lsh": f"{cl.params.bands}x{cl.params.rows} (recall@t {cl.params.recall_at_threshold:.3f})",
        "extra": extra,
        "edges": cl.pairs,
        "rss_ready": ready,
    }


def child(args) -> None:
    _pin_one_cpu()
    work = Path(args.workdir)
    if args.phase == "million":
        base = _rss_mb()
        texts = pickle.loads((work / "corpus.pkl").read_bytes())
        loaded = _rss_mb()
        res = run_ours(texts, args, exact=False)
        res.pop("sig"), res.pop("edges"), res.pop("labels")
        res.update(n=len(texts), rss_start=base, rss_loaded=loaded, text_mb=sum(map(len, texts)) / 2**20)
    else:
        texts = pickle.loads((work / "corpus.pkl").read_bytes())
        if args.phase == "a" and args.a_sample:
            texts = texts[: args.a_sample]
        loaded = _rss_mb()
        if args.phase in ("c", "x"):
            res = run_ours(texts, args, exact=args.phase == "x")
        else:
            res = run_datasketch(texts, args, per_shingle=args.phase == "a")
        res["rss_loaded"] = loaded
        res["n"] = len(texts)
        for key in ("labels", "sig", "edges"):
            np.save(work / f"{key}_{args.phase}.npy", res.pop(key))
    res["peak_rss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    (work / f"result_{args.phase}.json").write_text(json.dumps(res))


# ---------------------------------------------------------------- ground truth and metrics


class Truth:
    """Exact Jaccard on the normalised shingles, computed lazily and cached per document."""

    def __init__(self, texts: list[str], ngram: int) -> None:
        self.texts, self.ngram, self.sets = texts, ngram, {}

    def jaccard(self, i: int, j: int) -> float:
        for k in (i, j):
            if k not in self.sets:
                self.sets[k] = set(minhash.shingles(self.texts[k], self.ngram))
        a, b = self.sets[i], self.sets[j]
        return len(a & b) / len(a | b) if a or b else 1.0


def family_pairs(family: np.ndarray, truth: Truth) -> dict[tuple[int, int], float]:
    out = {}
    order = np.argsort(family, kind="stable")
    fam = family[order]
    for members in np.split(order, np.flatnonzero(np.diff(fam)) + 1):
        if family[members[0]] < 0 or len(members) < 2:
            continue
        ms = sorted(members.tolist())
        for x in range(len(ms)):
            for y in range(x + 1, len(ms)):
                out[(ms[x], ms[y])] = truth.jaccard(ms[x], ms[y])
    return out


def cluster_pairs(labels: np.ndarray, limit: int = 5_000_000) -> set[tuple[int, int]] | None:
    order = np.argsort(labels, kind="stable")
    groups = np.split(order, np.flatnonzero(np.diff(labels[order])) + 1)
    groups = [sorted(g.tolist()) for g in groups if len(g) > 1]
    if sum(len(g) * (len(g) - 1) // 2 for g in groups) > limit:
        return None
    return {(g[x], g[y]) for g in groups for x in range(len(g)) for y in range(x + 1, len(g))}


def precision_recall(pred: set, truth: set) -> tuple[float, float]:
    tp = len(pred & truth)
    return (tp / len(pred) if pred else 1.0), (tp / len(truth) if truth else 1.0)


def _run_child(phase: str, args, work: Path) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--phase",
        phase,
        "--workdir",
        str(work),
        "--n",
        str(args.n),
        "--seed",
        str(args.seed),
        "--num-perm",
        str(args.num_perm),
        "--threshold",
        str(args.threshold),
        "--ngram",
        str(args.ngram),
        "--a-sample",
        str(args.a_sample),
        "--docs",
        str(args.docs),
        "--check",
        str(args.check),
    ]
    subprocess.run(cmd, check=True)
    return json.loads((work / f"result_{phase}.json").read_text())


def main_million(args, work: Path) -> None:
    t = time.perf_counter()
    texts, family = make_corpus(args.docs, args.seed, short=True)
    (work / "corpus.pkl").write_bytes(pickle.dumps(texts))
    print(
        f"corpus: {len(texts):,} short documents (8-40 words), {(family >= 0).sum():,} in near-duplicate "
        f"families ({time.perf_counter() - t:.0f}s); deduplicating in a subprocess"
    )
    del texts, family
    r = _run_child("million", args, work)
    e = r["extra"]
    print(
        f"  docs: {r['n']:,}  text: {r['text_mb']:.0f} MiB  ours: {r['n'] / r['cpu']:,.0f} docs/s (cpu), "
        f"{r['n'] / r['wall']:,.0f} docs/s (wall)"
    )
    print(
        f"  phases (cpu s): signatures {e['signatures_cpu']:.2f}  lsh {e['lsh_cpu']:.2f}  keep "
        f"{e['keep_cpu']:.2f}; candidates {e['candidates']:,}, verified {e['verified']:,}"
    )
    print(
        f"  RSS: interpreter+imports {r['rss_start']:.0f} MiB; + input strings {r['rss_loaded']:.0f} MiB; "
        f"+ numba kernels {r['rss_ready']:.0f} MiB; peak {r['peak_rss']:.0f} MiB "
        f"(dedup working memory {r['peak_rss'] - r['rss_ready']:.0f} MiB)"
    )


def main(args) -> None:
    with tempfile.TemporaryDirectory(prefix="bench_dedup_") as tmp:
        work = Path(tmp)
        if args.short:
            return main_million(args, work)
        t = time.perf_counter()
        texts, family = make_corpus(args.n, args.seed)
        n_words = np.array([len(s.split()) for s in texts])
        print(
            f"corpus: {len(texts):,} docs, {n_words.mean():.0f} words/doc (min {n_words.min()}, max "
            f"{n_words.max()}), {(family >= 0).sum():,} docs in {len(np.unique(family[family >= 0])):,} "
            f"near-duplicate families; seed {args.seed} ({time.perf_counter() - t:.1f}s)"
        )
        (work / "corpus.pkl").write_bytes(pickle.dumps(texts))
        res = {}
        for phase in ("c", "x", "b", "a"):
            res[phase] = _run_child(phase, args, work)
        sigs = {p: np.load(work / f"sig_{p}.npy") for p in res}
        k = min(len(s) for s in sigs.values())
        same = all(np.array_equal(sigs["c"][:k], s[:k]) for s in sigs.values())
        print(f"signatures bit-identical to datasketch (first {k} docs, (a), (b) vs ours): {same}")
        if not same:
            raise SystemExit("signature mismatch")
        truth = Truth(texts, args.ngram)
        fam = family_pairs(family, truth)
        clus = {p: cluster_pairs(np.load(work / f"labels_{p}.npy")) for p in ("b", "c", "x")}
        edges = {p: {tuple(e) for e in np.load(work / f"edges_{p}.npy").tolist()} for p in ("b", "c", "x")}
        for pred in [*clus.values(), *edges.values()]:
            for pair in pred or ():
                if pair not in fam:
                    fam[pair] = truth.jaccard(*pair)
        tset = {p for p, j in fam.items() if j >= args.threshold}
        near = sum(args.threshold <= j < args.threshold + 0.05 for j in fam.values())
        below = sum(args.threshold - 0.05 <= j < args.threshold for j in fam.values())
        print(
            f"truth: {len(tset):,} pairs with exact Jaccard >= {args.threshold} ({near:,} of them below "
            f"{args.threshold + 0.05:.2f}); {len(fam) - len(tset):,} checked pairs below it ({below:,} "
            f"above {args.threshold - 0.05:.2f})"
        )
        print(
            f"{'method':<46}{'docs':>7}{'docs/s':>9}{'(wall)':>9}{'LSH bands x rows':>28}"
            f"{'pairs P/R':>13}{'cluster P/R':>13}{'peak RSS':>10}{'work':>8}"
        )
        names = {
            "a": "(a) datasketch update/shingle + MinHashLSH",
            "b": "(b) datasketch bulk + MinHashLSH",
            "c": "(c) synth.dedup, verify by estimated J",
            "x": "(c') synth.dedup, verify by exact J",
        }
        for p in ("a", "b", "c", "x"):
            r, q = res[p], ("b" if p == "a" else p)
            pe, re_ = precision_recall(edges[q], tset)
            pc, rc = precision_recall(clus[q] or set(), tset)
            note = "*" if p == "a" and r["n"] < len(texts) else " "
            print(
                f"{names[p]:<46}{r['n']:>7,}{r['n'] / r['cpu']:>8,.0f}{note}{r['n'] / r['wall']:>9,.0f}"
                f"{r['lsh']:>28}{pe:>7.3f}/{re_:.3f}{pc:>7.3f}/{rc:.3f}{r['peak_rss']:>8.0f}MB"
                f"{r['peak_rss'] - r['rss_ready']:>6.0f}MB"
            )
        for p in ("c", "x"):
            e = res[p]["extra"]
            print(
                f"    {p + ')':<3} cpu s: signatures {e['signatures_cpu']:.3f}, lsh+verify {e['lsh_cpu']:.3f}, "
                f"keep {e['keep_cpu']:.3f}; {e['candidates']:,} candidates -> {e['verified']:,} verified"
            )
        if res["a"]["n"] < len(texts):
            print(
                f"    * (a) timed on the first {res['a']['n']:,} docs and extrapolated as docs/s; its "
                "signatures equal (b)'s, so on the full corpus its pairs and clusters are (b)'s"
            )
        rate = {p: res[p]["n"] / res[p]["cpu"] for p in res}
        for p in ("c", "x"):
            print(f"speed-up {p}) (cpu docs/s): vs (a) {rate[p] / rate['a']:.1f}x, vs (b) {rate[p] / rate['b']:.1f}x")
        print(
            "docs/s: CPU time of the timed region (raw text -> clusters -> representatives), one pinned "
            "core; (wall) is wall time on this (possibly shared) machine.\n"
            "pairs P/R: truth = pairs with exact Jaccard >= threshold; predicted = pairs the method "
            "reports (datasketch: MinHashLSH query hits; ours: candidate pairs that passed "
            "verification).\ncluster P/R: predicted = every pair in the same output cluster "
            "(transitive: A~B and B~C put A,C together even when J(A,C) < threshold).\n"
            "peak RSS: ru_maxrss of the method's process; work = peak minus RSS just before the timed "
            "region (corpus loaded, libraries imported, numba kernels loaded)."
        )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=20000, help="corpus size (documents)")
    ap.add_argument("--seed", type=int, default=1, help="corpus and MinHash seed")
    ap.add_argument("--num-perm", type=int, default=128)
    ap.add_argument("--threshold", type=float, default=0.8)
    ap.add_argument("--ngram", type=int, default=5)
    ap.add_argument("--a-sample", type=int, default=4000, help="docs timed for (a); 0 = all")
    ap.add_argument("--check", type=int, default=500, help="docs whose signatures are compared")
    ap.add_argument("--short", action="store_true", help="memory mode: --docs short documents, ours only")
    ap.add_argument("--docs", type=int, default=1_000_000, help="documents in --short mode")
    ap.add_argument("--phase", choices=["a", "b", "c", "x", "million"], help=argparse.SUPPRESS)
    ap.add_argument("--workdir", help=argparse.SUPPRESS)
    return ap.parse_args(argv)


if __name__ == "__main__":
    _args = parse_args()
    if _args.phase:
        child(_args)
    else:
        main(_args)
