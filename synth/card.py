"""The dataset card (README.md with YAML metadata) of an export, built from the manifest.

Metadata: ``tags`` (always ``synthetic``), ``task_categories``, ``size_categories``, ``license``,
``source_datasets``, ``pretty_name`` and, for Parquet exports, ``configs`` (the data files per
split). Body: counts by split / origin / label / generator, the models with their revisions and
licences (a generator step's ``license`` parameter in RUN_DIR/pipeline.yaml, else the model
folder's synth_model.json or README front matter), the dedup and filter funnel (RUN_DIR/stats.json),
the mix spec for an export of a mix, and how to select the real rows.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa
import yaml

from synth.mix import EVAL_LEAK

IPTC_TRAINED = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
_TASKS = {"image": "image-classification", "text": "text-classification"}
_SIZES = [
    (1_000, "n<1K"),
    (10_000, "1K<n<10K"),
    (100_000, "10K<n<100K"),
    (1_000_000, "100K<n<1M"),
    (10_000_000, "1M<n<10M"),
    (100_000_000, "10M<n<100M"),
    (1_000_000_000, "100M<n<1B"),
]


def size_category(n: int) -> str:
    return next((name for limit, name in _SIZES if n < limit), "n>1B")


def _pipeline(run_dir: Path) -> dict[str, Any]:
    p = run_dir / "pipeline.yaml"
    return (yaml.safe_load(p.read_text()) or {}) if p.exists() else {}


def model_license(model: str | None, generator: str | None, pipeline: dict[str, Any]) -> str | None:
    """The licence declared for a model: the step's ``license`` param, else synth_model.json / README."""
    for step in pipeline.get("steps") or []:
        if isinstance(step, dict) and (step.get("name") or step.get("type")) == generator and step.get("license"):
            return str(step["license"])
    if not model:
        return None
    folder = Path(model)
    if not folder.is_dir():
        return None
    meta = folder / "synth_model.json"
    if meta.exists():
        try:
            lic = json.loads(meta.read_text()).get("license")
            if lic:
                return str(lic)
        except (json.JSONDecodeError, AttributeError):
            pass
    readme = folder / "README.md"
    if readme.exists():
        text = readme.read_text(errors="replace")
        if text.startswith("---"):
            try:
                front = yaml.safe_load(text.split("---", 2)[1]) or {}
                if isinstance(front, dict) and front.get("license"):
                    return str(front["license"])
            except yaml.YAMLError:
                pass
    return None


def source_datasets(pipeline: dict[str, Any]) -> list[str]:
    out = []
    for s in pipeline.get("sources") or []:
        if not isinstance(s, dict):
            continue
        if s.get("type") == "hf_dataset":
            out.append(f"extended|{s.get('path')}")
        elif s.get("type") == "digits":
            out.append("extended|sklearn-digits")
        else:
            path = s.get("path")
            out.append(f"extended|{s.get('name') or s.get('type')}" + (f":{path}" if isinstance(path, str) else ""))
    return out or ["original"]


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join("" if v is None else str(v) for v in r) + " |" for r in rows]
    return "\n".join(lines)


def card_body(
    rows: pa.Table,
    run_dir: Path,
    mix: dict[str, Any] | None,
    pipeline: dict[str, Any],
    fmt: str,
    title: str,
    include_rejected: bool = False,
) -> str:
    data = rows.select(
        [c for c in ("split", "origin", "label", "generator", "model", "model_revision", "status") if c in rows.column_names]
    ).to_pylist()
    splits = sorted({r["split"] for r in data}, key=lambda s: (s != "train", s))
    by_split = Counter((r["split"], r["origin"]) for r in data)
    labels = sorted({r["label"] for r in data if r["label"] is not None})
    by_label = Counter((r["label"], r["origin"]) for r in data)
    n_syn = sum(r["origin"] == "synthetic" for r in data)
    parts = [
        f"# {title}",
        f"A dataset of {len(data)} rows ({len(data) - n_syn} real, {n_syn} synthetic) made with "
        f"synth from pipeline `{pipeline.get('name', '?')}`. Every row says whether it is real or "
        "synthetic (`origin`, `is_synthetic`) and carries its provenance: `generator`, `model`, `model_revision`, `seed`, `prompt`, "
        "`params` (JSON), `parent_id` (the real sample it was derived from), `scores` (JSON filter scores) and `content_sha256`.",
        "## Composition",
        _table(["split", "real", "synthetic"], [[s, by_split[(s, "real")], by_split[(s, "synthetic")]] for s in splits]),
        "### By label",
        _table(["label", "real", "synthetic"], [[lab, by_label[(lab, "real")], by_label[(lab, "synthetic")]] for lab in labels]),
    ]
    gens = Counter((r["generator"], r["model"], r["model_revision"]) for r in data if r["origin"] == "synthetic")
    if gens:
        parts += [
            "## Generators and models",
            _table(
                ["generator", "model", "revision", "licence", "rows"],
                [
                    [g, f"`{m}`" if m else None, r, model_license(m, g, pipeline) or "not declared", n]
                    for (g, m, r), n in sorted(gens.items(), key=str)
                ],
            ),
            "Synthetic PNG images carry a machine-readable marker of AI generation in their metadata: the PNG text chunk "
            f"`DigitalSourceType` = `{IPTC_TRAINED}` (IPTC), an XMP packet with the same value, and `synth:generator` / "
            "`synth:model` / `synth:model_revision` chunks.",
        ]
    parts += funnel(run_dir, pipeline)
    if mix:
        parts += [
            "## Mix",
            f"These rows are a mix (fingerprint `{mix.get('fingerprint')}`) of run `{mix['source'].get('run_id')}`: "
            f"{mix.get('n_real_train')} real and {mix.get('n_synthetic_train')} synthetic train rows.",
            "```json\n" + json.dumps(mix.get("spec", {}), indent=2, sort_keys=True) + "\n```",
        ]
        if mix.get("short"):
            parts.append(f"**Short mix**: {len(mix['short'])} strata had fewer rows than the ratio asked for (see mix.json).")
    load = {
        "hf": 'from datasets import load_from_disk\nds = load_from_disk("path/to/export")',
        "parquet": 'from datasets import load_dataset\nds = load_dataset("parquet", data_dir="path/to/export")  # or load_dataset("REPO_ID") from the Hub',
        "jsonl": 'from datasets import load_dataset\nds = load_dataset("json", data_dir="path/to/export")',
    }[fmt]
    parts += [
        "## Usage",
        "```python\n" + load + '\nreal_only = ds.filter(lambda r: not r["is_synthetic"])\n'
        'synthetic_only = ds.filter(lambda r: r["is_synthetic"])\n```',
        "Evaluate on real data only: every `eval` row is real." if "eval" in splits else "",
    ]
    if include_rejected:
        parts.append('This export includes rejected rows (`--include-rejected`): filter on `status == "kept"` to train.')
    return "\n\n".join(p for p in parts if p) + "\n"


def funnel(run_dir: Path, pipeline: dict[str, Any] | None = None) -> list[str]:
    """The dedup / filter funnel from RUN_DIR/stats.json: per-step counters (pipeline order) and rejection reasons."""
    p = run_dir / "stats.json"
    if not p.exists():
        return []
    stats = json.loads(p.read_text())
    steps = stats.get("steps") or {}
    cfg = pipeline or {}
    order = [s.get("name") or s.get("type") for s in [*(cfg.get("sources") or []), *(cfg.get("steps") or [])] if isinstance(s, dict)]
    rows = []
    for step in [n for n in order if n in steps] + sorted(set(steps) - set(order)):
        counters = steps[step]
        shown = {k: v for k, v in counters.items() if k != "seconds"}
        rows.append([step, ", ".join(f"{k}={int(v) if float(v).is_integer() else v}" for k, v in sorted(shown.items()))])
    reasons = (stats.get("manifest") or {}).get("by_reason") or {}
    out = ["## Deduplication and filtering funnel", _table(["step", "counters"], rows) if rows else "No step counters recorded."]
    if reasons:
        out.append(_table(["rejection reason", "rows"], [[k, v] for k, v in sorted(reasons.items())]))
        if any(k == EVAL_LEAK for k in reasons):
            out.append(f"Rows rejected as `{EVAL_LEAK}` were near copies of eval data and never enter a mix.")
    return out


def build_card(
    rows: pa.Table,
    run_dir: Path,
    *,
    fmt: str,
    mix: dict[str, Any] | None = None,
    license: str = "unknown",
    pretty_name: str | None = None,
    configs: list[dict[str, Any]] | None = None,
    include_rejected: bool = False,
):
    """A huggingface_hub ``DatasetCard`` for the exported ``rows`` of the run at ``run_dir``."""
    from huggingface_hub import DatasetCard, DatasetCardData

    pipeline = _pipeline(run_dir)
    modalities = sorted(set(rows.column("modality").to_pylist())) if rows.num_rows else []
    title = pretty_name or f"synth: {pipeline.get('name', run_dir.name)}" + (f" ({', '.join(modalities)})" if modalities else "")
    extra: dict[str, Any] = {"configs": configs} if configs else {}
    data = DatasetCardData(
        license=license,
        tags=["synthetic", "synth", *modalities],
        task_categories=[_TASKS[m] for m in modalities] or None,
        size_categories=[size_category(rows.num_rows)],
        source_datasets=source_datasets(pipeline),
        pretty_name=title,
        **extra,
    )
    body = card_body(rows, run_dir, mix, pipeline, fmt, title, include_rejected)
    return DatasetCard(f"---\n{data.to_yaml()}\n---\n\n{body}")
