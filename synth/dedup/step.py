"""The ``dedup`` barrier: exact and near-duplicate detection in three scopes, with a leakage report.

Rows are grouped by exact content (``content_sha256``) first; MinHash LSH then runs once per
distinct content (text: word n-gram shingles; images: a 64-bit perceptual hash turned into a token
set, threshold in Hamming bits). Each synthetic row is then judged by its *direct* matches, so
the outcome does not depend on row order:

1. it matches a real ``eval`` row            -> rejected ``dedup:eval_leak``
2. else it matches a real ``train`` row      -> rejected ``dedup:near_copy_of_real`` (memorised)
3. else it matches a kept row of a reference run -> rejected ``dedup:in_reference``
4. else among the synthetic rows left, clusters (union-find over matches) keep one representative
   (higher quality score, then smaller id); the others are rejected ``dedup:exact_duplicate``
   (same bytes as the representative) or ``dedup:near_duplicate``.

``duplicate_of`` names the matched row (the representative, or the real / eval row copied);
``dedup_cluster`` names the representative of the connected component (real rows first). Real
rows are never dropped; real train rows that match real eval rows are reported in ``stats.json``
as a warning.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
from pydantic import Field

from synth.errors import InputError
from synth.manifest import read_manifest
from synth.registry import register
from synth.steps import Barrier, Context, Params, Resources

log = logging.getLogger(__name__)


class DedupParams(Params):
    threshold: float = Field(
        0.8, gt=0, lt=1, description="text: Jaccard of word n-gram shingles at or above which two texts are near-duplicates"
    )
    ngram: int = Field(5, ge=1, description="text: shingle size in words")
    num_perm: int = Field(128, ge=16, le=1024, description="MinHash permutations")
    seed: int = Field(1, description="MinHash permutation seed (datasketch affine32 scheme)")
    target_recall: float = Field(
        0.95, gt=0, lt=1, description="LSH bands x rows are chosen so pairs AT the threshold are found with this probability"
    )
    verify: Literal["exact", "estimated"] = Field(
        "exact", description="text: verify candidates by exact shingle Jaccard or by the MinHash estimate"
    )
    lowercase: bool = True
    nfkc: bool = True
    strip_punctuation: bool = True
    scaffold: list[str] = Field(default_factory=list, description="text: prompt-template strings removed before shingling")
    image_hash: Literal["phash", "dhash"] = "phash"
    image_max_bits: int = Field(4, ge=0, le=32, description="images: near-duplicates differ in at most this many of 64 hash bits")
    within_synthetic: bool = True
    against_real: bool = True
    against_eval: bool = True
    exempt_parent: bool = Field(
        True, description="a synthetic sample matching its own parent (augmentation, img2img, paraphrase) is not a memorised copy; matches with other real rows still are"
    )
    quality_score: str | None = Field(None, description="score name (from a filter that ran before dedup) preferred by the keep policy")
    reference: list[str] = Field(
        default_factory=list, description="run dirs (or manifests) of earlier runs: their kept rows are matched too"
    )


@register("dedup")
class Dedup(Barrier):
    """Exact + MinHash-LSH near-duplicate removal within synthetic, against real train, against eval.

    Reads: every row (text from ``text``, images from ``path``). Writes: ``dedup_cluster``,
    ``duplicate_of``, ``status``/``reject_reason`` of synthetic rows, a leakage report in
    ``stats.json`` (``dedup``). Drops: ``dedup:exact_duplicate``, ``dedup:near_duplicate``,
    ``dedup:near_copy_of_real``, ``dedup:eval_leak``, ``dedup:in_reference`` (synthetic only).
    Example: ``{type: dedup, threshold: 0.8, image_max_bits: 4}``
    """

    Params = DedupParams
    default_resources = Resources(cpus=1)

    def run_table(self, table: pa.Table, ctx: Context) -> pa.Table:
        if table.num_rows == 0:
            return table
        status = table.column("status").to_pylist()
        reason = table.column("reject_reason").to_pylist()
        cluster: list[str | None] = table.column("dedup_cluster").to_pylist()
        dup_of: list[str | None] = table.column("duplicate_of").to_pylist()
        report: dict = {"scheme": self.scheme(), "real_train_eval_overlap": {"pairs": 0, "examples": []}}
        for modality in ("text", "image"):
            rows = _Rows.from_table(table, modality, ctx, self.params)
            if not rows.n:
                continue
            ref = self._reference_rows(modality, ctx)
            decisions, rep_report = self._decide(rows, ref)
            for i, (st, rs, cl, du) in decisions.items():
                status[i], reason[i], cluster[i], dup_of[i] = st, rs, cl, du
            report[modality] = rep_report
            overlap = report["real_train_eval_overlap"]
            overlap["pairs"] += rep_report.pop("train_eval_pairs")
            overlap["examples"] += rep_report.pop("train_eval_examples")
        for key in ("exact_duplicate", "near_duplicate", "near_copy_of_real", "eval_leak", "in_reference"):
            ctx.count(
                self.name,
                f"dropped_{key}",
                sum(r == f"dedup:{key}" for r in reason) - sum(r == f"dedup:{key}" for r in table.column("reject_reason").to_pylist()),
            )
        if report["real_train_eval_overlap"]["pairs"]:
            log.warning(
                "dedup: %d real train/eval pairs are near-duplicates (reported, not dropped)", report["real_train_eval_overlap"]["pairs"]
            )
        ctx.extra.setdefault("dedup", {})[self.name] = report
        cols = {"status": status, "reject_reason": reason, "dedup_cluster": cluster, "duplicate_of": dup_of}
        for name, values in cols.items():
            table = table.set_column(table.column_names.index(name), name, pa.array(values, pa.string()))
        return table

    def scheme(self) -> dict:
        from synth.dedup.minhash import scheme_info

        return scheme_info(self.params.num_perm, self.params.seed, self.params.ngram, self.norm())

    def norm(self):
        from synth.dedup.minhash import TextNorm

        p = self.params
        return TextNorm(lowercase=p.lowercase, nfkc=p.nfkc, strip_punctuation=p.strip_punctuation, scaffold=tuple(p.scaffold))

    # -- matching ----------------------------------------------------------------------------
    def _reference_rows(self, modality: str, ctx: Context) -> _Rows | None:
        tables = []
        for ref in self.params.reference:
            try:
                t = read_manifest(ref)
            except InputError as e:
                raise InputError(f"dedup.reference: {e}") from None
            mask = [
                m == modality and s == "kept" for m, s in zip(t.column("modality").to_pylist(), t.column("status").to_pylist(), strict=True)
            ]
            root = Path(ref) if Path(ref).is_dir() else Path(ref).parent
            tables.append((t.filter(pa.array(mask)), root))
        if not tables:
            return None
        parts = [_Rows.from_table(t, modality, Context(run_dir=root), self.params, reference=True) for t, root in tables]
        return _Rows.concat(parts)

    def _decide(self, rows: _Rows, ref: _Rows | None):
        all_rows = _Rows.concat([rows, ref]) if ref is not None else rows
        edges, sims, lsh_info = self._edges(all_rows)
        n = rows.n
        adj: dict[int, list[tuple[int, float]]] = defaultdict(list)
        for (a, b), s in zip(edges.tolist(), sims.tolist(), strict=True):
            adj[a].append((b, s))
            adj[b].append((a, s))
        kind = all_rows.kind  # "synthetic" | "train" | "eval" | "ref"
        decisions: dict[int, tuple] = {}
        counts: dict[str, int] = defaultdict(int)
        rejected: set[int] = set()

        def best(i: int, want: str) -> str | None:
            parent = rows.parent[i] if self.params.exempt_parent and want == "train" else None
            cands = [(-s, all_rows.ids[j]) for j, s in adj[i] if kind[j] == want and all_rows.ids[j] != parent]
            return min(cands)[1] if cands else None

        p = self.params
        for i in range(n):
            if kind[i] != "synthetic":
                continue
            for want, ok, why in (
                ("eval", p.against_eval, "eval_leak"),
                ("train", p.against_real, "near_copy_of_real"),
                ("ref", True, "in_reference"),
            ):
                target = best(i, want) if ok else None
                if target is not None:
                    decisions[i] = ("rejected", f"dedup:{why}", None, target)
                    rejected.add(i)
                    counts[why] += 1
                    break
        # within synthetic: components over synthetic-synthetic edges of the rows still in play
        from synth.dedup.lsh import choose_representatives, connected_components

        syn_edges = np.array(
            [
                (a, b)
                for a, b in edges.tolist()
                if a < n and b < n and kind[a] == kind[b] == "synthetic" and a not in rejected and b not in rejected and p.within_synthetic
            ],
            dtype=np.int64,
        ).reshape(-1, 2)
        labels = connected_components(n, syn_edges)
        reps = choose_representatives(labels, rows.ids, quality=rows.quality)
        for i in range(n):
            r = int(reps[i])
            if kind[i] == "synthetic" and i not in rejected and r != i:
                why = "exact_duplicate" if rows.sha[i] == rows.sha[r] else "near_duplicate"
                decisions[i] = ("rejected", f"dedup:{why}", None, rows.ids[r])
                counts[why] += 1
        # dedup_cluster: the representative of each connected component over all edges (real first)
        inner = np.array([(a, b) for a, b in edges.tolist() if a < n and b < n], dtype=np.int64).reshape(-1, 2)
        comp = connected_components(n, inner)
        comp_rep = choose_representatives(comp, rows.ids, is_real=np.array([k != "synthetic" for k in kind[:n]]), quality=rows.quality)
        sizes = np.bincount(comp, minlength=n)
        for i in range(n):
            if sizes[comp[i]] > 1:
                st, rs, _, du = decisions.get(i, (rows.status[i], rows.reason[i], None, None))
                decisions[i] = (st, rs, rows.ids[int(comp_rep[i])], du)
        train_eval = [(rows.ids[a], rows.ids[b]) for a, b in inner.tolist() if {kind[a], kind[b]} == {"train", "eval"}]
        return {rows.index[i]: d for i, d in decisions.items()}, {
            "rows": n,
            "reference_rows": all_rows.n - n,
            "distinct_contents": lsh_info["distinct"],
            "lsh": lsh_info["lsh"],
            "candidate_pairs": lsh_info["candidates"],
            "matched_pairs": int(len(edges)),
            "rejected": dict(sorted(counts.items())),
            "train_eval_pairs": len(train_eval),
            "train_eval_examples": train_eval[:5],
        }

    def _edges(self, rows: _Rows) -> tuple[np.ndarray, np.ndarray, dict]:
        """Matched pairs (i < j) with their similarity: exact groups, then LSH over distinct contents."""
        uniq, first, inverse = np.unique(np.array(rows.sha, dtype=object).astype(str), return_index=True, return_inverse=True)
        order = np.argsort(inverse, kind="stable")
        groups = np.split(order, np.cumsum(np.bincount(inverse))[:-1])
        exact = [(int(g[0]), int(m)) for g in groups for m in g[1:]]
        reps = np.array([int(g[0]) for g in groups], dtype=np.int64)
        payload = [rows.payload[i] for i in reps.tolist()]
        clusters = self.text_clusters(payload) if rows.modality == "text" else self.image_clusters(payload)
        near = []
        for (a, b), s in zip(clusters.pairs.tolist(), clusters.jaccard.tolist(), strict=True):
            ga, gb = groups[a], groups[b]
            near.extend((int(min(x, y)), int(max(x, y)), s) for x in ga for y in gb)
        all_edges = [(min(a, b), max(a, b), 1.0) for a, b in exact] + near
        arr = np.array([(a, b) for a, b, _ in all_edges], dtype=np.int64).reshape(-1, 2)
        sims = np.array([s for _, _, s in all_edges], dtype=np.float64)
        prm = clusters.params
        info = {
            "bands": prm.bands,
            "rows": prm.rows,
            "threshold": prm.threshold,
            "recall_at_threshold": round(float(prm.recall_at_threshold), 4),
        }
        return arr, sims, {"distinct": int(len(uniq)), "lsh": info, "candidates": int(clusters.n_candidates)}

    # -- clustering (the seam the Ray executor overrides: same inputs, same Clusters, run on a cluster) --
    def text_clusters(self, texts: list[str]):
        """Near-duplicate clusters of distinct texts. Returns: :class:`synth.dedup.lsh.Clusters`."""
        from synth.dedup import lsh, minhash

        p = self.params
        sig = minhash.text_signatures(texts, p.num_perm, p.seed, p.ngram, self.norm())
        sim = (lambda pairs: minhash.exact_jaccard(texts, pairs, p.ngram, self.norm())) if p.verify == "exact" else None
        return lsh.near_duplicate_clusters(sig, p.threshold, target_recall=p.target_recall, similarity=sim)

    def image_clusters(self, images: list[np.ndarray]):
        """Near-duplicate clusters of distinct images (gray arrays). Returns: :class:`synth.dedup.lsh.Clusters`."""
        from synth.dedup import phash

        p = self.params
        hashes = phash.image_hashes(images, method=p.image_hash)
        return phash.near_duplicate_images(hashes, p.image_max_bits, p.num_perm, p.seed, p.target_recall)


class _Rows:
    """The rows of one modality that take part: kept rows with a payload, sorted by id."""

    def __init__(self, modality, index, ids, kind, sha, payload, quality, status, reason, parent):
        self.modality, self.index, self.ids, self.kind, self.sha = modality, index, ids, kind, sha
        self.payload, self.quality, self.status, self.reason, self.parent = payload, quality, status, reason, parent

    @property
    def n(self) -> int:
        return len(self.ids)

    @classmethod
    def from_table(cls, table: pa.Table, modality: str, ctx: Context, p: DedupParams, reference: bool = False) -> _Rows:
        cols = {
            c: table.column(c).to_pylist()
            for c in ("id", "modality", "origin", "split", "status", "reject_reason", "content_sha256", "text", "path", "scores", "parent_id")
        }
        idx = [
            i
            for i in range(table.num_rows)
            if cols["modality"][i] == modality
            and cols["status"][i] == "kept"
            and (cols["text"][i] if modality == "text" else cols["path"][i]) is not None
        ]
        idx.sort(key=lambda i: cols["id"][i])
        kind = [
            "ref"
            if reference
            else ("synthetic" if cols["origin"][i] == "synthetic" else ("eval" if cols["split"][i] == "eval" else "train"))
            for i in idx
        ]
        if modality == "text":
            payload = [cols["text"][i] for i in idx]
        else:
            payload = [_load_gray(ctx.run_dir, cols["path"][i]) for i in idx]
        quality = np.array(
            [json.loads(cols["scores"][i] or "{}").get(p.quality_score, np.nan) if p.quality_score else np.nan for i in idx],
            dtype=np.float64,
        )
        ids = [("ref:" if reference else "") + cols["id"][i] for i in idx]
        return cls(
            modality,
            idx,
            ids,
            kind,
            [cols["content_sha256"][i] or f"nohash-{cols['id'][i]}" for i in idx],
            payload,
            quality,
            [cols["status"][i] for i in idx],
            [cols["reject_reason"][i] for i in idx],
            [cols["parent_id"][i] for i in idx],
        )

    @classmethod
    def concat(cls, parts: list[_Rows]) -> _Rows:
        first = parts[0]
        return cls(
            first.modality,
            sum((r.index for r in parts), []),
            sum((r.ids for r in parts), []),
            sum((r.kind for r in parts), []),
            sum((r.sha for r in parts), []),
            sum((r.payload for r in parts), []),
            np.concatenate([r.quality for r in parts]),
            sum((r.status for r in parts), []),
            sum((r.reason for r in parts), []),
            sum((r.parent for r in parts), []),
        )


def _load_gray(root: Path, rel: str) -> np.ndarray:
    from PIL import Image

    p = Path(rel)
    with Image.open(p if p.is_absolute() else root / p) as im:
        return np.asarray(im.convert("L"))
