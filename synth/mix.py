"""Mixing: a pure, seeded function of a manifest (never regenerates anything).

``ratio`` R means n_synthetic = R x n_real. ``additive`` keeps the chosen real rows and adds R x
n_real synthetic rows per label; ``fixed_total`` holds the train set at ``total`` rows with a
synthetic share of R / (1 + R). Only ``kept`` rows are drawn (real: ``split == "train"``), per
(modality, label) stratum.

Selection is by rank, not by shuffling: every row's rank is ``derive_seed(seed, role, id)``, so a
row's fate depends only on (seed, its id), never on the order or size of the manifest. Two
consequences the ablation relies on: within a seed every ratio sees the *same* real subset (paired
design), and a larger ratio takes a superset of a smaller ratio's synthetic rows (nested).

The mix manifest keeps the run's columns and rows unchanged (plus the real non-train rows, e.g.
``eval``, when ``include_eval``); payload ``path``s stay relative to the source run directory,
which ``mix.json`` records (``source.run_dir``) so exports can find the payloads.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, model_validator

from synth.errors import InputError
from synth.manifest import manifest_path, read_manifest, write_table
from synth.util import atomic_write_json, derive_seed, fingerprint

Key = tuple[str, str | None]  # (modality, label)
EVAL_LEAK = "dedup:eval_leak"
_COLS = ("id", "modality", "origin", "label", "split", "status", "reject_reason", "generator", "parent_id")


class MixSpec(BaseModel):
    """What to mix. Every field is recorded in mix.json; the same spec and manifest give the same mix."""

    model_config = ConfigDict(extra="forbid")
    ratio: float = Field(ge=0, description="n_synthetic / n_real")
    mode: Literal["additive", "fixed_total"] = Field(
        "additive", description="additive: all chosen real + R x n_real synthetic; fixed_total: `total` rows"
    )
    total: int | None = Field(None, ge=1, description="train rows of a fixed_total mix")
    seed: int = Field(0, description="selection seed")
    modality: Literal["image", "text"] | None = Field(None, description="mix only this modality (default: every modality)")
    real_per_class: int | None = Field(None, ge=1, description="real budget: at most K real train rows per label (low-data studies)")
    real_fraction: float | None = Field(
        None, gt=0, le=1, description="real budget: this share of the real train rows per label (at least 1)"
    )
    generators: list[str] | None = Field(None, description="draw synthetic rows only from these generator steps")
    max_per_parent: int | None = Field(None, ge=1, description="at most this many synthetic rows per parent_id")
    parents_in_real: bool = Field(False, description="only synthetic rows without a parent or whose parent is among the budgeted real rows")
    include_rejected: bool = Field(False, description="draw rejected synthetic rows too (before filters/dedup), except eval leaks")
    fill: Literal["synthetic", "real_repeat"] = Field(
        "synthetic", description="real_repeat: the extra rows are duplicates of the chosen real rows (control)"
    )
    synthetic_only: bool = Field(
        False, description="replace the real rows by synthetic ones: same per-label totals, no real train rows (control)"
    )
    allow_short: bool = Field(False, description="take what there is when a stratum lacks rows, and say so in mix.json")
    include_eval: bool = Field(True, description="copy the real non-train rows (eval) of the mixed modalities into the mix manifest")

    @model_validator(mode="after")
    def _check(self) -> MixSpec:
        if self.mode == "fixed_total" and self.total is None:
            raise ValueError("mode fixed_total needs total, the number of train rows (--total N)")
        if self.mode == "additive" and self.total is not None:
            raise ValueError("total only applies to mode fixed_total; remove it or use --mode fixed_total")
        if self.real_per_class is not None and self.real_fraction is not None:
            raise ValueError("give one real budget: real_per_class or real_fraction, not both")
        if self.fill == "real_repeat" and self.synthetic_only:
            raise ValueError("fill=real_repeat and synthetic_only exclude each other")
        return self


@dataclass
class Mix:
    """The result of :func:`select`: the chosen rows and what was asked versus taken per stratum."""

    table: pa.Table
    spec: MixSpec
    counts: dict[str, Any]
    short: list[dict[str, Any]] = field(default_factory=list)
    train_ids: list[str] = field(default_factory=list)
    outside_parents: int = 0  # chosen synthetic rows derived from real rows outside the budgeted real subset

    @property
    def n_real(self) -> int:
        return sum(v for m in self.counts.values() for v in m.get("train", {}).get("real", {}).values())

    @property
    def n_synthetic(self) -> int:
        return sum(v for m in self.counts.values() for v in m.get("train", {}).get("synthetic", {}).values())

    @property
    def fingerprint(self) -> str:
        return fingerprint({"spec": self.spec.model_dump(mode="json"), "rows": self.table.column("id").to_pylist()})


def rank(seed: int, role: str, sample_id: str) -> int:
    """The position of a row in the seeded selection order of its stratum (lower is taken first)."""
    return derive_seed(seed, "mix", role, sample_id)


def round_half_up(x: float) -> int:
    return int(math.floor(x + 0.5))


def allocate(total: int, weights: dict[Key, int]) -> dict[Key, int]:
    """Split ``total`` across strata proportionally to ``weights`` (largest remainder, ties by key)."""
    wsum = sum(weights.values())
    if wsum == 0 or total == 0:
        return dict.fromkeys(weights, 0)
    exact = {k: total * w / wsum for k, w in weights.items()}
    out = {k: int(math.floor(v)) for k, v in exact.items()}
    left = total - sum(out.values())
    for k in sorted(weights, key=lambda k: (-(exact[k] - out[k]), _key_str(k)))[:left]:
        out[k] += 1
    return out


def _key_str(k: Key) -> str:
    return f"{k[0]}/{'' if k[1] is None else k[1]}"


def budget(n_available: int, spec: MixSpec) -> int:
    """Real rows per stratum the budget asks for (may exceed what is available: a shortfall)."""
    if spec.real_per_class is not None:
        return spec.real_per_class
    if spec.real_fraction is not None:
        return max(1, round_half_up(spec.real_fraction * n_available)) if n_available else 0
    return n_available


def plan_counts(real_budget: dict[Key, int], spec: MixSpec) -> dict[Key, tuple[int, int]]:
    """(n_real, n_extra) per stratum from the budgeted real counts: the mixing arithmetic."""
    if spec.mode == "additive":
        plan = {k: (n, round_half_up(spec.ratio * n)) for k, n in real_budget.items()}
    else:
        assert spec.total is not None
        n_syn = round_half_up(spec.total * spec.ratio / (1 + spec.ratio))
        reals = allocate(spec.total - n_syn, real_budget)
        syns = allocate(n_syn, real_budget)
        plan = {k: (reals[k], syns[k]) for k in real_budget}
    if spec.synthetic_only:
        plan = {k: (0, r + s) for k, (r, s) in plan.items()}
    return plan


def select(table: pa.Table, spec: MixSpec) -> Mix:
    """Choose the rows of a mix from a manifest table (pure: no I/O)."""
    cols = table.select(list(_COLS)).to_pydict()
    n = table.num_rows
    mod_ok = [spec.modality is None or m == spec.modality for m in cols["modality"]]
    key = [(cols["modality"][i], cols["label"][i]) for i in range(n)]
    real: dict[Key, list[int]] = defaultdict(list)
    for i in range(n):
        if mod_ok[i] and cols["origin"][i] == "real" and cols["split"][i] == "train" and cols["status"][i] == "kept":
            real[key[i]].append(i)
    if not real:
        what = f" of modality {spec.modality!r}" if spec.modality else ""
        raise InputError(f"the manifest has no kept real train rows{what} to mix; check the run's sources (synth manifest stats DIR).")
    short: list[dict[str, Any]] = []
    pool: dict[Key, list[int]] = {}
    for k, idx in real.items():
        idx.sort(key=lambda i: rank(spec.seed, "real", cols["id"][i]))
        want = budget(len(idx), spec)
        if want > len(idx):
            short.append(_short(k, "real", want, len(idx)))
        pool[k] = idx[:want]
    plan = plan_counts({k: len(v) for k, v in pool.items()}, spec)

    chosen_real = {k: pool[k][: plan[k][0]] for k in pool}
    for k, (n_real, _) in plan.items():
        if n_real > len(pool[k]):
            short.append(_short(k, "real", n_real, len(pool[k])))
    extra: dict[Key, list[int]] = {}
    outside = 0
    if spec.fill == "real_repeat":
        for k, (_, n_extra) in plan.items():
            base = chosen_real[k]
            if n_extra and not base:
                short.append(_short(k, "real_repeat", n_extra, 0))
            extra[k] = [base[j % len(base)] for j in range(n_extra)] if base else []
    else:
        real_subset = {cols["id"][i] for v in pool.values() for i in v}
        extra = _choose_synthetic(cols, key, mod_ok, spec, plan, real_subset, short)
        outside = sum(1 for v in extra.values() for i in v if cols["parent_id"][i] is not None and cols["parent_id"][i] not in real_subset)
    short.sort(key=lambda s: (s["origin"], s["modality"], str(s["label"])))
    if short and not spec.allow_short:
        raise InputError(_short_message(short, spec))

    real_idx = sorted(i for v in chosen_real.values() for i in v)
    syn_idx = [] if spec.fill == "real_repeat" else sorted(i for v in extra.values() for i in v)
    eval_idx = []
    if spec.include_eval:
        eval_idx = [
            i for i in range(n) if mod_ok[i] and cols["origin"][i] == "real" and cols["split"][i] != "train" and cols["status"][i] == "kept"
        ]
    base_idx = sorted({*real_idx, *syn_idx, *eval_idx})
    out = table.take(pa.array(base_idx, pa.int64()))
    rep_ids: list[str] = []
    if spec.fill == "real_repeat":
        dup = sorted(i for v in extra.values() for i in v)
        seen: Counter[int] = Counter()
        for i in dup:
            seen[i] += 1
            rep_ids.append(f"{cols['id'][i]}#rep{seen[i]}")
        reps = table.take(pa.array(dup, pa.int64()))
        reps = reps.set_column(reps.schema.get_field_index("id"), reps.schema.field("id"), pa.array(rep_ids, pa.string()))
        out = pa.concat_tables([out, reps])
    train_ids = [cols["id"][i] for i in real_idx] + rep_ids + [cols["id"][i] for i in syn_idx]
    return Mix(table=out, spec=spec, counts=count_rows(out), short=short, train_ids=train_ids, outside_parents=outside)


def _choose_synthetic(cols, key, mod_ok, spec: MixSpec, plan, real_subset: set[str], short: list) -> dict[Key, list[int]]:
    gens = set(spec.generators) if spec.generators is not None else None
    cand: dict[Key, list[int]] = defaultdict(list)
    for i in range(len(key)):
        if not mod_ok[i] or cols["origin"][i] != "synthetic" or key[i] not in plan:
            continue
        ok = cols["status"][i] == "kept" or (spec.include_rejected and cols["reject_reason"][i] != EVAL_LEAK)
        if not ok or (gens is not None and cols["generator"][i] not in gens):
            continue
        if spec.parents_in_real and cols["parent_id"][i] is not None and cols["parent_id"][i] not in real_subset:
            continue
        cand[key[i]].append(i)
    per_parent: Counter[str] = Counter()
    out: dict[Key, list[int]] = {}
    for k in sorted(plan, key=_key_str):
        n_syn = plan[k][1]
        idx = sorted(cand.get(k, []), key=lambda i: rank(spec.seed, "synthetic", cols["id"][i]))
        if spec.max_per_parent is not None:
            capped = []
            for i in idx:
                parent = cols["parent_id"][i]
                if parent is None or per_parent[parent] < spec.max_per_parent:
                    capped.append(i)
                    if parent is not None:
                        per_parent[parent] += 1
            idx = capped
        if n_syn > len(idx):
            short.append(_short(k, "synthetic", n_syn, len(idx)))
        out[k] = idx[:n_syn]
    return out


def _short(k: Key, origin: str, needed: int, available: int) -> dict[str, Any]:
    return {"modality": k[0], "label": k[1], "origin": origin, "needed": needed, "available": available}


def _short_message(short: list[dict[str, Any]], spec: MixSpec) -> str:
    by_origin: dict[str, list[dict]] = defaultdict(list)
    for s in short:
        by_origin[s["origin"]].append(s)
    parts = []
    for origin, items in sorted(by_origin.items()):
        need, have = sum(s["needed"] for s in items), sum(s["available"] for s in items)
        detail = ", ".join(f"{s['modality']}/{s['label']}: {s['available']} of {s['needed']}" for s in items[:6])
        more = f" (+{len(items) - 6} more labels)" if len(items) > 6 else ""
        parts.append(f"{origin}: {len(items)} strata short, {have} rows available where {need} are needed ({detail}{more})")
    filt = f" from generators {spec.generators}" if spec.generators else ""
    return (
        f"not enough rows for ratio {spec.ratio:g} ({spec.mode}{filt}): " + "; ".join(parts) + ". "
        "Lower --ratio, relax the real budget or generator filter, generate more samples, "
        "or pass --allow-short to take what there is (recorded in mix.json)."
    )


def count_rows(table: pa.Table) -> dict[str, Any]:
    """Counts per modality -> split -> origin -> label, and per generator."""
    rows = table.select(["modality", "split", "origin", "label", "generator"]).to_pylist()
    out: dict[str, Any] = {}
    for r in rows:
        m = out.setdefault(r["modality"], {})
        lab = "(none)" if r["label"] is None else str(r["label"])
        by = m.setdefault(r["split"], {}).setdefault(r["origin"], {})
        by[lab] = by.get(lab, 0) + 1
        if r["origin"] == "synthetic":
            g = m.setdefault("by_generator", {})
            g[r["generator"] or "(none)"] = g.get(r["generator"] or "(none)", 0) + 1
    for m in out.values():
        for split, origins in m.items():
            if split != "by_generator":
                for origin in origins:
                    origins[origin] = dict(sorted(origins[origin].items()))
    return out


# ---- runs and mix directories ------------------------------------------------------------------


@dataclass
class SourceRun:
    """A manifest to read and the run directory its payload paths are relative to."""

    run_dir: Path
    table: pa.Table
    manifest_sha256: str
    mix: dict[str, Any] | None = None  # mix.json when the source is a mix directory


def resolve_source(path: str | Path) -> SourceRun:
    """A run directory, a mix directory (its mix.json names the run) or a manifest .parquet file."""
    p = Path(path)
    mpath = manifest_path(p)
    sha = hashlib.sha256(mpath.read_bytes()).hexdigest()
    table = read_manifest(mpath)
    info_path = mpath.parent / "mix.json"
    if info_path.exists():
        mix = json.loads(info_path.read_text())
        run_dir = Path(mix["source"]["run_dir"])
        if not run_dir.is_dir():  # moved together with the mix: try the recorded relative path
            run_dir = (mpath.parent / mix["source"].get("run_dir_relative", "")).resolve()
        if not (run_dir / "manifest.parquet").exists():
            raise InputError(f"{info_path}: the source run directory {mix['source']['run_dir']} is gone; payload paths are relative to it.")
        return SourceRun(run_dir.resolve(), table, sha, mix)
    return SourceRun(mpath.parent.resolve(), table, sha, None)


def resolve_payload(run_dir: Path, rel: str, sample_id: str = "?") -> Path:
    """The payload file of a manifest ``path``; an InputError when it leaves the run directory."""
    root = Path(run_dir).resolve()
    p = (root / rel).resolve()
    if not p.is_relative_to(root):
        raise InputError(
            f"sample {sample_id!r}: payload path {rel!r} points outside the run directory {root}; synth never follows paths "
            "out of a run. Fix the manifest (payloads live under RUN_DIR/data/)."
        )
    return p


def write_mix(mix: Mix, source: SourceRun, out_dir: str | Path) -> dict[str, Any]:
    """Write OUT/manifest.parquet and OUT/mix.json (no timestamps: same inputs, same bytes)."""
    out = Path(out_dir).resolve()
    if out == source.run_dir or (out / "run.json").exists():
        raise InputError(
            f"--out {out} is a run directory; a mix would overwrite its manifest. Choose a new folder, e.g. {out}/mixes/r{mix.spec.ratio:g}."
        )
    out.mkdir(parents=True, exist_ok=True)
    write_table(mix.table, out / "manifest.parquet")
    info = {
        "spec": mix.spec.model_dump(mode="json"),
        "fingerprint": mix.fingerprint,
        "source": {
            "run_dir": str(source.run_dir),
            "run_dir_relative": os.path.relpath(source.run_dir, out),
            "manifest_sha256": source.manifest_sha256,
            "run_id": (source.table.column("run_id")[0].as_py() if source.table.num_rows else None),
            "mix_of": (source.mix or {}).get("fingerprint"),
        },
        "n_rows": mix.table.num_rows,
        "n_real_train": mix.n_real,
        "n_synthetic_train": mix.n_synthetic,
        "counts": mix.counts,
        "short": mix.short,
        "synthetic_with_parent_outside_real_subset": mix.outside_parents,
    }
    atomic_write_json(out / "mix.json", info)
    return {
        "dir": str(out),
        "manifest": str(out / "manifest.parquet"),
        "fingerprint": mix.fingerprint,
        "n_real": mix.n_real,
        "n_synthetic": mix.n_synthetic,
        "short": len(mix.short),
    }


def mix_run(src: str | Path, out_dir: str | Path, spec: MixSpec) -> dict[str, Any]:
    """Mix the manifest at ``src`` (run dir, mix dir or .parquet) into ``out_dir``."""
    source = resolve_source(src)
    return write_mix(select(source.table, spec), source, out_dir)
