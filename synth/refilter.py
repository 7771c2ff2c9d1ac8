"""Re-apply filter thresholds to the scores stored in a run's manifest: no regeneration, no rescoring.

``refilter(run_dir, overrides)`` reads the run's resolved config (``RUN_DIR/pipeline.yaml``),
applies ``--set`` overrides that may only touch threshold parameters of filter steps, rebuilds the
filters and, for every synthetic row that is kept or was rejected by a filter, recomputes the
decision from its stored scores in pipeline order with each filter's ``decide``. Rejections by
generators and dedup stay as they are (``decide_rows``). Overrides are relative to the original run config (not
cumulative); ``refilter`` without overrides restores the run's own decisions.

It writes the manifest atomically (the previous one kept as ``manifest.prev.parquet``), the
effective config as ``refilter.yaml``, updates the filter counters and manifest stats in
``stats.json`` (plus a ``refilter`` record with the before/after rejections per filter), or
does all that in a copy of the run dir (``out``).

Caveat: a sample that a filter *before* dedup had rejected was not compared by dedup the way a
kept one would have been; un-rejecting it cannot re-run dedup.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import yaml

from synth import registry
from synth.config import Pipeline, apply_overrides, read_yaml
from synth.errors import ConfigError, InputError, did_you_mean
from synth.manifest import read_manifest, write_table
from synth.sample import Sample
from synth.steps import Filter
from synth.util import atomic_write_json, atomic_write_text

_FIXED_KEYS = ("type", "name")


@dataclass
class RefilterResult:
    run_dir: Path
    overrides: list[str]
    before: dict[str, int]  # rejections per filter step (and "kept_synthetic")
    after: dict[str, int]
    changed: int  # rows whose status or reason changed
    counters: dict[str, dict[str, float]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_dir": str(self.run_dir),
            "overrides": self.overrides,
            "before": self.before,
            "after": self.after,
            "changed": self.changed,
        }


def check_overrides(raw: dict[str, Any], overrides: list[str]) -> None:
    """ConfigError unless every override is ``steps.<filter name or index>.<threshold param>=value``."""
    steps = raw.get("steps") or []
    names = [(s.get("name") or s.get("type")) if isinstance(s, dict) else None for s in steps]
    filters = [n for n, s in zip(names, steps) if isinstance(s, dict) and _kind(s) == "filter"]
    for item in overrides:
        if "=" not in item:
            raise ConfigError(
                f"--set {item!r}: expected steps.<filter>.<threshold>=value, e.g. --set steps.image_quality.min_sharpness=50."
            )
        parts = item.split("=", 1)[0].strip().split(".")
        if parts[0] != "steps" or len(parts) != 3:
            raise ConfigError(
                f"--set {item!r}: refilter only changes filter thresholds, as steps.<filter>.<param>=value. "
                f"Filters of this run: {', '.join(filters) or '(none)'}. Anything else needs `synth run`."
            )
        ref = parts[1]
        if ref.lstrip("-").isdigit() and -len(steps) <= int(ref) < len(steps):
            idx = int(ref) % len(steps)
        elif ref in names:
            idx = names.index(ref)
        else:
            raise ConfigError(f"--set {item!r}: no step {ref!r} in this run. {did_you_mean(ref, [n for n in filters if n])}")
        raw_step, key = steps[idx], parts[2]
        cls = registry.get(str(raw_step.get("type")))
        if cls.kind != "filter":
            raise ConfigError(
                f"--set {item!r}: step {names[idx]!r} is a {cls.kind}, not a filter; refilter cannot change it "
                f"(it would need regeneration: use `synth run --set ...`). Filters: {', '.join(filters) or '(none)'}."
            )
        if key in _FIXED_KEYS or key == "resources":
            raise ConfigError(f"--set {item!r}: a filter's {key!r} cannot change in refilter (scores are stored under its name).")
        if key not in cls.Params.model_fields:
            raise ConfigError(
                f"--set {item!r}: {key!r} is not a parameter of {cls.type_name}. {did_you_mean(key, list(cls.Params.model_fields))}"
            )
        allowed = getattr(cls, "decision_params", None)
        if allowed is not None and key not in allowed:
            raise ConfigError(
                f"--set {item!r}: {key!r} changes how {names[idx]!r} scores, not how it decides, and refilter never rescores. "
                f"Its thresholds: {', '.join(sorted(allowed)) or '(none)'}. Re-run `synth run --set ...` to rescore."
            )


def _kind(raw_step: dict[str, Any]) -> str | None:
    try:
        return registry.get(str(raw_step.get("type"))).kind
    except ConfigError:
        return None


def decide_rows(samples: list[Sample], pipeline: Pipeline) -> tuple[list[tuple[str, str | None]], dict[str, dict[str, float]]]:
    """New ``(status, reject_reason)`` per sample from stored scores, and the recomputed filter
    counters (``in``, ``kept``, ``dropped_<reason>``).

    Synthetic rows that are kept or were rejected by a filter walk the filters in pipeline order
    (the first rejection wins); real rows and rows rejected by anything else (dedup, a generator)
    stay as they are and are not counted (so a filter placed before dedup counts fewer ``in``
    rows than the engine did: the ones dedup later rejected)."""
    filters = [s for s in pipeline.steps if isinstance(s, Filter)]
    counters: dict[str, dict[str, float]] = {f.name: {"in": 0, "kept": 0} for f in filters}
    out = []
    for s in samples:
        redo = s.origin == "synthetic" and (s.status == "kept" or (s.reject_reason or "").startswith("filter:"))
        if not redo:
            out.append((s.status, s.reject_reason))
            continue
        status, why = "kept", None
        for step in filters:
            if status == "kept" and step.applies_to(s):
                c = counters[step.name]
                c["in"] += 1
                r = step.decide(s.scores)
                if r is None:
                    c["kept"] += 1
                else:
                    status, why = "rejected", f"filter:{r}"
                    c[f"dropped_{r}"] = c.get(f"dropped_{r}", 0) + 1
        out.append((status, why))
    return out, counters


def rejections_per_filter(reasons: list[str | None], filters: list[str]) -> dict[str, int]:
    """Rows rejected by each filter step (``filter:<step>.<reason>`` or ``filter:<step>``)."""
    counts = dict.fromkeys(filters, 0)
    for r in reasons:
        if r and r.startswith("filter:"):
            rest = r.removeprefix("filter:")
            for f in filters:
                if rest == f or rest.startswith(f + "."):
                    counts[f] += 1
                    break
    return counts


def _copy_run(src: Path, dst: Path) -> None:
    if dst.exists() and any(dst.iterdir()):
        raise InputError(f"--out {dst}: the folder exists and is not empty; pass a new folder.")
    if dst.resolve() == src.resolve():
        raise InputError("--out must differ from the run dir (omit --out to refilter in place).")

    def link_or_copy(a: str, b: str) -> None:
        try:
            os.link(a, b)
        except OSError:
            shutil.copy2(a, b)

    shutil.copytree(src, dst, copy_function=link_or_copy, dirs_exist_ok=True)
    for name in ("manifest.parquet", "stats.json"):  # rewritten below: never write through a hard link
        p = dst / name
        if p.exists():
            data = p.read_bytes()
            p.unlink()
            p.write_bytes(data)


def refilter(
    run_dir: str | Path, overrides: list[str] | None = None, out: str | Path | None = None, diagnostics: bool | None = None
) -> RefilterResult:
    """Re-decide filter rejections of a finished run from stored scores; see the module docstring.

    ``diagnostics``: recompute ``stats.json["diagnostics"]`` (None: only when it is already there)."""
    src = Path(run_dir)
    overrides = list(overrides or [])
    if not (src / "pipeline.yaml").exists() or not (src / "manifest.parquet").exists():
        raise InputError(f"{src} is not a finished run dir (needs pipeline.yaml and manifest.parquet from `synth run`).")
    raw = read_yaml(src / "pipeline.yaml")
    check_overrides(raw, overrides)
    try:
        pipeline = Pipeline.from_config(apply_overrides(raw, overrides))
    except ConfigError as e:
        raise ConfigError(f"{src / 'pipeline.yaml'} with --set {' '.join(overrides)}: {e}") from None
    dst = Path(out) if out is not None else src
    if out is not None:
        _copy_run(src, dst)
    table = read_manifest(dst)
    samples = _light_samples(table)
    decisions, counters = decide_rows(samples, pipeline)
    filters = [s.name for s in pipeline.steps if isinstance(s, Filter)]
    old_status, old_reason = table.column("status").to_pylist(), table.column("reject_reason").to_pylist()
    new_status, new_reason = [d[0] for d in decisions], [d[1] for d in decisions]
    syn = [s.origin == "synthetic" for s in samples]

    def summary(status: list[str], reasons: list[str | None]) -> dict[str, int]:
        d = rejections_per_filter(reasons, filters)
        d["kept_synthetic"] = sum(1 for st, y in zip(status, syn) if y and st == "kept")
        return d

    before, after = summary(old_status, old_reason), summary(new_status, new_reason)
    changed = sum(1 for a, b, c, d in zip(old_status, new_status, old_reason, new_reason) if a != b or c != d)
    new_table = table.set_column(table.schema.get_field_index("status"), "status", pa.array(new_status, pa.string()))
    new_table = new_table.set_column(new_table.schema.get_field_index("reject_reason"), "reject_reason", pa.array(new_reason, pa.string()))
    if out is None:
        shutil.copy2(dst / "manifest.parquet", dst / "manifest.prev.parquet")
    write_table(new_table, dst / "manifest.parquet")
    atomic_write_text(dst / "refilter.yaml", yaml.safe_dump(pipeline.to_config(), sort_keys=False, allow_unicode=True))
    result = RefilterResult(dst, overrides, before, after, changed, counters)
    _update_stats(dst, new_table, result)
    stats = json.loads((dst / "stats.json").read_text())
    if diagnostics or (diagnostics is None and "diagnostics" in stats):
        from synth.diagnostics import write_diagnostics

        write_diagnostics(dst)
    return result


def _light_samples(table: pa.Table) -> list[Sample]:
    """What ``applies_to`` and ``decide`` need, without decoding every column."""
    cols = table.select(["id", "modality", "origin", "status", "reject_reason", "scores"]).to_pylist()
    return [
        Sample(
            id=r["id"],
            modality=r["modality"],
            origin=r["origin"],
            status=r["status"],
            reject_reason=r["reject_reason"],
            scores=json.loads(r["scores"] or "{}"),
        )
        for r in cols
    ]


def _update_stats(run_dir: Path, table: pa.Table, result: RefilterResult) -> None:
    from synth.manifest_ops import stats as manifest_stats

    path = run_dir / "stats.json"
    stats = json.loads(path.read_text()) if path.exists() else {}
    steps = stats.setdefault("steps", {})
    for name, c in result.counters.items():
        old = steps.get(name, {})
        kept = {k: v for k, v in old.items() if k not in ("in", "kept") and not k.startswith("dropped_")}
        steps[name] = {**kept, **c}
    stats["manifest"] = manifest_stats(table)
    stats["refilter"] = {**result.to_dict(), "at": datetime.now(UTC).isoformat(timespec="seconds")}
    stats["refilter"].pop("run_dir")
    atomic_write_json(path, stats)
