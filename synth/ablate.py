"""Ablation: how much is synthetic data worth? A grid of mixes, one probe per cell, real eval only.

The grid is modalities x arms x generator subsets x real budgets x seeds x ratios. Each cell is a
mix (:func:`synth.mix.select`, pure and seeded) on which a probe (:mod:`synth.probes`) is trained
and then evaluated on the run's *real* ``eval`` rows of that modality. Within a seed every ratio
and arm uses the same real subset (rank-based selection), so differences against ratio 0 are
paired; ratio 0 is always part of the grid as the real-only baseline.

Arms: ``synthetic`` (the mix itself) and the controls ``real_repeat`` (the chosen real rows
duplicated to the mix's size: does synthetic beat mere repetition?), ``augment_only`` (synthetic
rows of augmentation generators only: step types ``albumentations`` / ``text_augment`` in
RUN_DIR/pipeline.yaml), ``unfiltered`` (rejected synthetic rows drawn too, except eval leaks,
which would contaminate the metric: do the filters pay?) and ``synthetic_only`` (the same
per-label totals, all synthetic, no real).

Each cell's metrics are cached in ABLATION_DIR/cells/<fingerprint>.json (atomic write), keyed by
the training rows, eval rows, probe and seed: an interrupted ablation resumes, and cells with the
same training set (every arm at ratio 0) are computed once. Writes results.csv (one row per cell
and metric), summary.csv (mean, std and 95% t-interval per cell over seeds, and the paired delta
against the real-only baseline with its interval), ablation.png and ablation.json.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import pyarrow.compute as pc
import yaml
from pydantic import BaseModel, ConfigDict, Field

from synth.errors import InputError, did_you_mean
from synth.mix import MixSpec, resolve_payload, resolve_source, select
from synth.probes import PRIMARY_METRIC, get_probe
from synth.progress import track
from synth.util import atomic_write_bytes, atomic_write_json, atomic_write_text, fingerprint

log = logging.getLogger(__name__)
Arm = Literal["synthetic", "real_repeat", "augment_only", "unfiltered", "synthetic_only"]
CONTROLS = ("real_repeat", "augment_only", "unfiltered", "synthetic_only")
AUGMENT_TYPES = ["albumentations", "text_augment"]
CELL_COLUMNS = ["modality", "probe", "arm", "generators", "real_budget", "ratio", "seed"]
RESULT_COLUMNS = [*CELL_COLUMNS, "n_real", "n_synthetic", "n_train", "metric", "value", "cell"]


class AblationSpec(BaseModel):
    """The grid. Recorded in ablation.json."""

    model_config = ConfigDict(extra="forbid")
    ratios: list[float] = Field(min_length=1, description="synthetic:real ratios; 0 (the real-only baseline) is always added")
    seeds: int = Field(3, ge=1, description="seeds 0..N-1: each picks its own real subset and probe initialisation")
    probe: str | None = Field(None, description="pixels_lr, cnn, minilm_lr, tfidf_lr or module:function (default by modality)")
    modalities: list[Literal["image", "text"]] | None = Field(None, description="default: every modality with real train and eval rows")
    real_per_class: list[int | None] = Field([], description="real budgets in rows per label (None = all)")
    real_fraction: list[float] = Field([], description="real budgets as a share of each label's real train rows")
    generator_sets: list[list[str]] | None = Field(None, description="subsets of generator steps, one curve each (default: all generators)")
    controls: list[Literal["real_repeat", "augment_only", "unfiltered", "synthetic_only"]] = Field([], description="extra arms")
    mode: Literal["additive", "fixed_total"] = "additive"
    total: int | None = Field(None, ge=1, description="train rows per cell in fixed_total mode")
    max_per_parent: int | None = Field(None, ge=1)
    parents_in_real: bool = False
    allow_short: bool = Field(False, description="cells lacking synthetic rows take what there is instead of failing")
    augment_types: list[str] = Field(
        default_factory=lambda: list(AUGMENT_TYPES), description="generator step types counted as classical augmentation"
    )

    def budgets(self) -> list[tuple[str, dict[str, Any]]]:
        out = [(("all" if k is None else f"{k}/class"), ({} if k is None else {"real_per_class": k})) for k in self.real_per_class]
        out += [(f"{f:g}", {"real_fraction": f}) for f in self.real_fraction]
        return out or [("all", {})]


@dataclass
class Cell:
    modality: str
    arm: str
    generators: str
    budget: str
    ratio: float
    seed: int
    mix: MixSpec


def present_modalities(table: pa.Table) -> list[str]:
    real = table.filter(pc.and_(pc.equal(table["origin"], "real"), pc.equal(table["status"], "kept")))
    tr = set(real.filter(pc.equal(real["split"], "train"))["modality"].to_pylist())
    ev = set(real.filter(pc.equal(real["split"], "eval"))["modality"].to_pylist())
    return sorted(tr & ev)


def augmentation_generators(run_dir: Path, types: list[str]) -> list[str]:
    """Names of the run's generator steps whose type is a classical augmentation (RUN_DIR/pipeline.yaml)."""
    p = run_dir / "pipeline.yaml"
    if not p.exists():
        return []
    cfg = yaml.safe_load(p.read_text()) or {}
    return sorted((s.get("name") or s["type"]) for s in cfg.get("steps") or [] if isinstance(s, dict) and s.get("type") in types)


def plan_cells(spec: AblationSpec, table: pa.Table, run_dir: Path, modalities: list[str]) -> tuple[list[Cell], list[str]]:
    """Every cell of the grid (deterministic order) and notes on arms skipped for lack of data."""
    syn = table.filter(pc.equal(table["origin"], "synthetic")).select(["modality", "generator"]).to_pylist()
    gens_by_mod: dict[str, set[str]] = defaultdict(set)
    for r in syn:
        if r["generator"]:
            gens_by_mod[r["modality"]].add(r["generator"])
    all_gens = sorted(set().union(*gens_by_mod.values())) if gens_by_mod else []
    for gs in spec.generator_sets or []:
        for g in gs:
            if g not in all_gens:
                raise InputError(f"generator set {gs}: no synthetic rows come from generator {g!r}. {did_you_mean(g, all_gens)}")
    augment = augmentation_generators(run_dir, spec.augment_types)
    ratios = sorted({0.0, *spec.ratios})
    base = {
        "mode": spec.mode,
        "total": spec.total,
        "max_per_parent": spec.max_per_parent,
        "parents_in_real": spec.parents_in_real,
        "allow_short": True,
        "include_eval": False,
    }
    cells, notes = [], []
    for modality in modalities:
        sets: list[tuple[str, list[str] | None]] = []
        for gs in spec.generator_sets or [None]:
            mine = None if gs is None else sorted(set(gs) & gens_by_mod[modality])
            if mine == []:
                notes.append(f"{modality}: generator set {gs} has no {modality} generator; skipped")
                continue
            sets.append(("all" if mine is None else "+".join(mine), mine))
        arms: list[tuple[str, str, list[str] | None, dict[str, Any]]] = [("synthetic", lab, g, {}) for lab, g in sets]
        for arm in spec.controls:
            if arm == "real_repeat":
                arms.append((arm, "-", None, {"fill": "real_repeat"}))
            elif arm == "augment_only":
                mine = sorted(set(augment) & gens_by_mod[modality])
                if not mine:
                    notes.append(
                        f"{modality}: no augmentation generator (step types {spec.augment_types}) in {run_dir / 'pipeline.yaml'}; augment_only skipped"
                    )
                    continue
                arms.append((arm, "+".join(mine), mine, {}))
            else:
                extra = {"include_rejected": True} if arm == "unfiltered" else {"synthetic_only": True}
                arms += [(arm, lab, g, extra) for lab, g in sets]
        for arm, glabel, gens, extra in arms:
            for blabel, bkw in spec.budgets():
                for seed in range(spec.seeds):
                    for r in ratios:
                        ms = MixSpec(ratio=r, seed=seed, modality=modality, generators=gens, **base, **bkw, **extra)
                        cells.append(Cell(modality, arm, glabel, blabel, r, seed, ms))
    return cells, notes


def _abs_paths(table: pa.Table, run_dir: Path) -> pa.Table:
    """The table with ``path`` made absolute (and checked to stay inside the run dir) for probes."""
    paths = table.column("path").to_pylist()
    ids = table.column("id").to_pylist()
    out = [None if p is None else str(resolve_payload(run_dir, p, i)) for p, i in zip(paths, ids)]
    return table.set_column(table.schema.get_field_index("path"), table.schema.field("path"), pa.array(out, pa.string()))


def eval_table(table: pa.Table, modality: str) -> pa.Table:
    mask = pc.and_(
        pc.and_(pc.equal(table["origin"], "real"), pc.equal(table["split"], "eval")),
        pc.and_(pc.equal(table["status"], "kept"), pc.equal(table["modality"], modality)),
    )
    return table.filter(mask)


def ablate(src: str | Path, out_dir: str | Path, spec: AblationSpec) -> dict[str, Any]:
    """Run (or resume) the ablation grid on the manifest at ``src``; returns the files written."""
    t0 = time.perf_counter()
    source = resolve_source(src)
    out = Path(out_dir)
    table = _abs_paths(source.table, source.run_dir)  # every payload path checked up front; probes get absolute paths
    present = present_modalities(table)
    modalities = spec.modalities or present
    for m in modalities:
        if m not in present:
            raise InputError(
                f"--modality {m}: the manifest has no kept real train and eval rows of modality {m!r}; "
                f"ablations evaluate on real eval data only. Modalities with both: {present or 'none'}."
            )
    if not modalities:
        raise InputError(f"{src}: no modality has both real train and real eval rows; give a source an eval split (eval_fraction).")
    cells, notes = plan_cells(spec, table, source.run_dir, modalities)
    short = [(c, sh) for c in cells if (sh := select(table, c.mix).short)]  # fail fast, before any probe runs
    if short and not spec.allow_short:
        lines = [
            f"  {c.modality} arm={c.arm} generators={c.generators} budget={c.budget} ratio={c.ratio:g} seed={c.seed}: "
            + ", ".join(f"{s['label']} {s['origin']} {s['available']}/{s['needed']}" for s in sh[:4])
            for c, sh in short[:5]
        ]
        raise InputError(
            f"{len(short)} of {len(cells)} ablation cells lack rows (available/needed):\n"
            + "\n".join(lines)
            + "\nDrop the high ratios or large budgets, generate more samples, or pass --allow-short."
        )
    probes = {m: get_probe(spec.probe, m) for m in modalities}
    evals = {m: eval_table(table, m) for m in modalities}
    eval_fp = {m: fingerprint(evals[m].column("id").to_pylist()) for m in modalities}
    (out / "cells").mkdir(parents=True, exist_ok=True)
    results: list[dict[str, Any]] = []
    computed = cached = 0
    outside: dict[tuple[str, str], int] = {}
    for cell in track(cells, "ablation cells"):
        pname, probe = probes[cell.modality]
        mix = select(table, cell.mix)  # recomputed (cheap, pure) rather than holding every cell's rows in memory
        train = mix.table
        ident = {"manifest": source.manifest_sha256, "train": train.column("id").to_pylist(), "eval": eval_fp[cell.modality]}
        key = fingerprint({**ident, "probe": pname, "seed": cell.seed})
        path = out / "cells" / f"{key}.json"
        record = _read_cell(path)
        if record is None:
            t1 = time.perf_counter()
            metrics = probe(train, evals[cell.modality], cell.seed)
            first = {k: v for k, v in cell.__dict__.items() if k != "mix"}
            record = {
                "metrics": metrics,
                "seconds": round(time.perf_counter() - t1, 4),
                "probe": pname,
                "n_train": train.num_rows,
                "first_cell": first,
            }
            atomic_write_json(path, record)
            computed += 1
        else:
            cached += 1
        if mix.outside_parents and cell.budget != "all" and not spec.parents_in_real:
            outside[(cell.modality, cell.budget)] = max(outside.get((cell.modality, cell.budget), 0), mix.outside_parents)
        n_syn = mix.n_synthetic
        n_real = sum(1 for i in mix.train_ids if "#rep" not in i) - n_syn
        head = (cell.modality, pname, cell.arm, cell.generators, cell.budget, cell.ratio, cell.seed, n_real, n_syn, train.num_rows)
        results += [dict(zip(RESULT_COLUMNS, (*head, metric, value, key))) for metric, value in record["metrics"].items()]
    notes += [
        f"{m}, real budget {b}: up to {n} synthetic rows per cell derive from real rows outside the budgeted subset (they carry "
        "information the budget excludes); pass parents_in_real (--parents-in-real) for a strict low-data study"
        for (m, b), n in outside.items()
    ]
    summary = summarize(results)
    _write_csv(out / "results.csv", results, RESULT_COLUMNS)
    _write_csv(out / "summary.csv", summary, list(summary[0]) if summary else ["metric"])
    plot(summary, out / "ablation.png")
    counts = {"cells": len(cells), "computed": computed, "cached": cached, "notes": notes}
    info = {
        "spec": spec.model_dump(mode="json"),
        "source": {"run_dir": str(source.run_dir), "manifest_sha256": source.manifest_sha256},
        "probes": {m: p[0] for m, p in probes.items()},
        "short_cells": len(short),
        "seconds": round(time.perf_counter() - t0, 3),
        **counts,
    }
    atomic_write_json(out / "ablation.json", info)
    files = {k: str(out / f"{k}.csv") for k in ("results", "summary")}
    return {"dir": str(out), **files, "plot": str(out / "ablation.png"), **counts}


def _read_cell(path: Path) -> dict[str, Any] | None:
    if not path.exists():
        return None
    try:
        rec = json.loads(path.read_text())
        return rec if isinstance(rec.get("metrics"), dict) else None
    except (json.JSONDecodeError, OSError):
        return None  # a torn or foreign file: recompute


def t_interval(values: list[float]) -> tuple[float, float, float, float]:
    """(mean, sample std, low, high) of the 95% Student-t interval; NaN spread for one value."""
    vals = [v for v in values if not math.isnan(v)]
    n = len(vals)
    if n == 0:
        return (math.nan,) * 4
    mean = sum(vals) / n
    if n == 1:
        return mean, math.nan, math.nan, math.nan
    sd = math.sqrt(sum((v - mean) ** 2 for v in vals) / (n - 1))
    from scipy.stats import t

    half = float(t.ppf(0.975, n - 1)) * sd / math.sqrt(n)
    return mean, sd, mean - half, mean + half


def summarize(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per cell over seeds: mean, std, 95% interval; paired delta vs the real-only baseline (ratio 0)."""
    group = ("modality", "probe", "arm", "generators", "real_budget", "ratio", "metric")
    base: dict[tuple, float] = {}
    for r in results:
        if r["arm"] == "synthetic" and r["ratio"] == 0:
            base[(r["modality"], r["probe"], r["real_budget"], r["metric"], r["seed"])] = r["value"]
    cells: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for r in results:
        cells[tuple(r[k] for k in group)].append(r)
    out = []
    for k, rows in cells.items():
        mean, sd, lo, hi = t_interval([r["value"] for r in rows])
        deltas = [
            r["value"] - base[b] for r in rows if (b := (r["modality"], r["probe"], r["real_budget"], r["metric"], r["seed"])) in base
        ]
        dm, _, dlo, dhi = t_interval(deltas)
        out.append(
            {
                **dict(zip(group, k)),
                "n_seeds": len(rows),
                "n_real": _avg(rows, "n_real"),
                "n_synthetic": _avg(rows, "n_synthetic"),
                "mean": mean,
                "std": sd,
                "ci_low": lo,
                "ci_high": hi,
                "delta_mean": dm,
                "delta_ci_low": dlo,
                "delta_ci_high": dhi,
            }
        )
    return out


def _avg(rows: list[dict[str, Any]], key: str) -> float:
    return round(sum(r[key] for r in rows) / len(rows), 2)


def _write_csv(path: Path, rows: list[dict[str, Any]], columns: list[str]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
    atomic_write_text(path, buf.getvalue())


def _budget_order(budget: str) -> tuple[int, float]:
    """Panels and tables in budget order: per-class counts, then fractions, then all."""
    if budget.endswith("/class"):
        return 0, float(budget.split("/")[0])
    return (2, 0.0) if budget == "all" else (1, float(budget))


def plot(summary: list[dict[str, Any]], path: Path, metric: str = PRIMARY_METRIC) -> None:
    """Metric vs ratio, mean +- std over seeds: one panel per (modality, real budget), one line per arm/generators."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in summary if r["metric"] == metric] or summary
    panels = sorted({(r["modality"], r["real_budget"]) for r in rows}, key=lambda p: (p[0], _budget_order(p[1]))) or [("(none)", "all")]
    ncols = min(3, len(panels))
    nrows = -(-len(panels) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.5 * ncols, 4.2 * nrows), squeeze=False)
    for ax in axes.flat[len(panels) :]:
        ax.set_visible(False)
    for ax, (m, budget) in zip(axes.flat, panels):
        lines: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
        for r in rows:
            if (r["modality"], r["real_budget"]) == (m, budget):
                lines[(r["arm"], r["generators"])].append(r)
        xs = sorted({r["ratio"] for pts in lines.values() for r in pts})
        dodge = 0.006 * ((xs[-1] - xs[0]) if len(xs) > 1 else 1.0)  # overlapping lines stay visible
        for j, ((arm, gens), pts) in enumerate(sorted(lines.items())):
            pts.sort(key=lambda r: r["ratio"])
            shift = (j - (len(lines) - 1) / 2) * dodge
            yerr = [0.0 if math.isnan(r["std"]) else r["std"] for r in pts]
            label = arm + ("" if gens in ("all", "-") else f" [{gens}]")
            style = {"marker": "os^Dvp*"[j % 7], "linestyle": ("-", "--", ":", "-.")[j // 7 % 4], "capsize": 3}
            ax.errorbar([r["ratio"] + shift for r in pts], [r["mean"] for r in pts], yerr=yerr, label=label, **style)
        probe = next((r["probe"] for pts in lines.values() for r in pts), "")
        name = rows[0]["metric"] if rows else metric
        ax.set(title=f"{m} ({probe}), real: {budget}", xlabel="synthetic : real ratio", ylabel=f"{name} on real eval (mean ± std)")
        ax.grid(alpha=0.3)
        if lines:
            ax.legend(fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, metadata={"Software": None})
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
