"""``synth report RUN_DIR``: one self-contained HTML page (images embedded, no network).

Sections: summary, the funnel per generator, samples per label (real beside kept synthetic beside
rejected with reasons), score histograms with thresholds, set-level diagnostics, the ablation
plot and table, and the run config with models, revisions, seeds and timings.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from synth.manifest import read_manifest, table_to_samples
from synth.sample import Sample
from synth.util import atomic_write_text

DEDUP_ORDER = ("dedup:exact_duplicate", "dedup:near_duplicate", "dedup:near_copy_of_real", "dedup:eval_leak", "dedup:in_reference")

CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,sans-serif;margin:0;color:#1d232a;background:#f6f7f9}
header{background:#1d3557;color:#fff;padding:18px 28px}header h1{margin:0;font-size:22px}header p{margin:4px 0 0;opacity:.85}
nav{position:sticky;top:0;background:#fff;border-bottom:1px solid #dde;padding:8px 28px;z-index:2}nav a{margin-right:16px;color:#1d3557;text-decoration:none}
main{padding:8px 28px 40px;max-width:1300px;box-sizing:border-box}.lbl>div{min-width:0;overflow-wrap:anywhere}section{background:#fff;border:1px solid #e3e6ea;border-radius:8px;padding:14px 20px;margin:18px 0}
h2{margin:4px 0 12px;font-size:18px}h3{font-size:15px;margin:14px 0 6px}table{border-collapse:collapse;margin:6px 0}
td,th{border-bottom:1px solid #eceef1;padding:4px 10px;text-align:left;vertical-align:top}th{background:#f3f5f8}
td.num{text-align:right;font-variant-numeric:tabular-nums}.cards{display:flex;gap:14px;flex-wrap:wrap}
.card{border:1px solid #e3e6ea;border-radius:8px;padding:10px 16px;min-width:130px}.card b{display:block;font-size:22px}
.grid{display:flex;flex-wrap:wrap;gap:4px;align-items:flex-start}.grid figure{margin:0;text-align:center;font-size:10px;color:#556}
.grid img{width:56px;height:56px;image-rendering:pixelated;object-fit:contain;border:1px solid #ccd;background:#000}
.rej img{border-color:#c0392b}.lbl{display:grid;grid-template-columns:80px 1fr 1fr 1fr;gap:10px;border-top:1px solid #eee;padding:8px 0}
.bar{display:inline-block;height:10px;background:#457b9d;border-radius:2px}.muted{color:#778}.warn{color:#b03a2e}
pre{background:#f3f5f8;padding:10px;overflow:auto;max-height:420px;font-size:12px}.plot{max-width:100%}
"""


def _e(x: Any) -> str:
    return html.escape("" if x is None else str(x))


def _png_data_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _fig_uri(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return _png_data_uri(buf.getvalue())


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f'<td class="num">{_e(c)}</td>' if isinstance(c, int | float) else f"<td>{_e(c)}</td>" for c in r) + "</tr>"
        for r in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def funnel(samples: list[Sample], filter_order: list[str]) -> dict[str, list[tuple[str, int]]]:
    """Per generator: [(stage, rows remaining after it)], from generated to kept, in pipeline order."""
    by_gen: dict[str, Counter] = defaultdict(Counter)
    for s in samples:
        if s.origin == "synthetic":
            by_gen[s.generator or "?"]["generated"] += 1
            by_gen[s.generator or "?"][s.reject_reason or "kept"] += 1
    reasons = [*DEDUP_ORDER, *(f"filter:{f}" for f in filter_order)]
    out = {}
    for gen, c in sorted(by_gen.items()):
        left = c["generated"]
        stages = [("generated", left)]
        extra = sorted(r for r in c if r not in ("generated", "kept", *reasons))
        for r in [*extra, *reasons]:
            if c.get(r):
                left -= c[r]
                stages.append((r, left))
        out[gen] = stages
    return out


def _filter_info(run_dir: Path) -> tuple[list[str], dict[str, dict[str, list[tuple[str, float]]]]]:
    """Filter reasons in pipeline order and the thresholds in force (refilter.yaml after a refilter)."""
    from synth import diagnostics
    from synth.config import Pipeline, read_yaml
    from synth.steps import Filter

    cfg = run_dir / "refilter.yaml" if (run_dir / "refilter.yaml").exists() else run_dir / "pipeline.yaml"
    try:
        steps = Pipeline.from_config(read_yaml(cfg)).steps
    except Exception:  # a report of a run whose steps are no longer installed still renders
        return [], {}
    order: list[str] = []
    for step in steps:
        if isinstance(step, Filter):
            reasons = getattr(step, "reasons", None)
            order.extend(reasons() if callable(reasons) else [step.name])
    return order, diagnostics.filter_thresholds(steps)


def _image_uri(s: Sample, run_dir: Path) -> str | None:
    try:
        return _png_data_uri(s.resolve(run_dir).read_bytes()) if s.path and s.path.lower().endswith(".png") else _reencode(s, run_dir)
    except OSError:
        return None


def _reencode(s: Sample, run_dir: Path) -> str | None:
    img = s.load_image(run_dir)
    img.thumbnail((128, 128))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return _png_data_uri(buf.getvalue())


def _samples_section(samples: list[Sample], run_dir: Path, per_cell: int) -> str:
    parts = []
    for modality in ("image", "text"):
        rows = [s for s in samples if s.modality == modality]
        if not rows:
            continue
        parts.append(f"<h3>{modality}</h3>")
        labels = sorted({s.label for s in rows if s.label is not None}, key=lambda x: (len(x), x))
        for label in labels:
            real = [s for s in rows if s.label == label and s.origin == "real" and s.split == "train" and s.kept][:per_cell]
            kept = [s for s in rows if s.label == label and s.origin == "synthetic" and s.kept][:per_cell]
            rej = [s for s in rows if s.label == label and s.origin == "synthetic" and not s.kept][: max(4, per_cell // 3)]
            if modality == "image":
                cells = [_img_grid(real, run_dir), _img_grid(kept, run_dir), _img_grid(rej, run_dir, rejected=True)]
            else:
                cells = [_text_list(real), _text_list(kept), _text_list(rej, rejected=True)]
            parts.append(f'<div class="lbl"><div><b>{_e(label)}</b></div>' + "".join(f"<div>{c}</div>" for c in cells) + "</div>")
    head = '<div class="lbl muted"><div>label</div><div>real (train)</div><div>synthetic, kept</div><div>synthetic, rejected</div></div>'
    return head + "".join(parts)


def _img_grid(samples: list[Sample], run_dir: Path, rejected: bool = False) -> str:
    figs = []
    for s in samples:
        uri = _image_uri(s, run_dir)
        if uri:
            cap = _e((s.reject_reason or "").split(":")[-1]) if rejected else ""
            figs.append(
                f'<figure class="{"rej" if rejected else ""}"><img src="{uri}" alt="{_e(s.id)}" title="{_e(s.id)} {_e(s.reject_reason or "")}"><figcaption>{cap}</figcaption></figure>'
            )
    return f'<div class="grid">{"".join(figs) or "<span class=muted>none</span>"}</div>'


def _text_list(samples: list[Sample], rejected: bool = False) -> str:
    if not samples:
        return '<span class="muted">none</span>'
    items = "".join(
        f"<li>{_e(s.text)}" + (f' <span class="warn">[{_e(s.reject_reason)}]</span>' if rejected else "") + "</li>" for s in samples
    )
    return f"<ul>{items}</ul>"


def _histograms(samples: list[Sample], thresholds: dict[str, dict[str, list[tuple[str, float]]]]) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = sorted({k for s in samples if s.origin == "synthetic" for k in s.scores})
    if not names:
        return '<p class="muted">No filter scores in this run.</p>'
    flat: dict[str, list[tuple[str, float]]] = {}
    for t in thresholds.values():
        for k, rules in t.items():
            flat.setdefault(k, []).extend(rules)
    cols = 4
    rows_n = (len(names) + cols - 1) // cols
    fig, axes = plt.subplots(rows_n, cols, figsize=(3.4 * cols, 2.4 * rows_n), squeeze=False)
    for ax, name in zip(axes.flat, names, strict=False):
        kept = [s.scores[name] for s in samples if name in s.scores and s.kept]
        rej = [s.scores[name] for s in samples if name in s.scores and not s.kept]
        ax.hist([kept, rej], bins=20, stacked=True, color=["#457b9d", "#e76f51"], label=["kept", "rejected"])
        for _, value in flat.get(name, []):
            ax.axvline(float(value), color="#1d3557", linestyle="--", linewidth=1.2)
        rules = ", ".join(f"{op} {value:g}" for op, value in flat.get(name, []))
        ax.set_title(f"{name} ({rules})" if rules else name, fontsize=9)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(names) :]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.tight_layout()
    return f'<img class="plot" src="{_fig_uri(fig)}" alt="score histograms">'


def _ablation(ablation_dir: Path | None) -> str:
    if ablation_dir is None or not (ablation_dir / "results.csv").exists():
        return '<p class="muted">No ablation found (run <code>synth ablate RUN_DIR --out RUN_DIR/ablation</code>, or pass <code>--ablation DIR</code>).</p>'
    out = []
    png = ablation_dir / "ablation.png"
    if png.exists():
        out.append(f'<img class="plot" src="{_png_data_uri(png.read_bytes())}" alt="ablation plot">')
    summary = ablation_dir / "summary.csv"
    with open(summary if summary.exists() else ablation_dir / "results.csv", newline="") as f:
        rows = list(csv.reader(f))
    if rows:
        out.append(_table(rows[0], [[_fmt(c) for c in r] for r in rows[1:80]]))
    return "".join(out)


def _fmt(c: str) -> str:
    try:
        v = float(c)
    except ValueError:
        return c
    return c if v.is_integer() and "." not in c else f"{v:.4g}"


def _diagnostics(run_dir: Path, stats: dict) -> str:
    diag = stats.get("diagnostics")
    if diag is None:
        try:
            from synth import diagnostics as d

            fn = getattr(d, "run_diagnostics", None)
            diag = fn(run_dir) if callable(fn) else None
        except Exception as e:  # diagnostics are advisory: show why they are missing
            return f'<p class="muted">Diagnostics unavailable: {_e(e)}</p>'
    if not diag:
        return '<p class="muted">No set-level diagnostics for this run.</p>'
    return _nested_tables(diag)


def _nested_tables(obj: Any) -> str:
    """Render {group: {label: {metric: value}}} (or flatter) as tables."""
    if (
        isinstance(obj, dict)
        and obj
        and all(isinstance(v, dict) and all(not isinstance(x, dict) for x in v.values()) for v in obj.values())
    ):
        metrics = sorted({m for v in obj.values() for m in v})
        return _table(["", *metrics], [[k, *[_round(v.get(m)) for m in metrics]] for k, v in obj.items()])
    if isinstance(obj, dict):
        return "".join(f"<h3>{_e(k)}</h3>{_nested_tables(v)}" for k, v in obj.items())
    return f"<pre>{_e(json.dumps(obj, indent=1, default=str))}</pre>"


def _round(v: Any) -> Any:
    return round(v, 4) if isinstance(v, float) else v


def find_ablation(run_dir: Path, stats: dict) -> Path | None:
    for cand in [run_dir / "ablation", *sorted(run_dir.glob("ablation*")), *sorted(run_dir.glob("*/ablation*"))]:
        if (cand / "results.csv").exists():
            return cand
    return None


def build_report(run_dir: str | Path, ablation_dir: str | Path | None = None, per_cell: int = 12) -> Path:
    """Write RUN_DIR/report.html and return its path."""
    run_dir = Path(run_dir)
    table = read_manifest(run_dir)
    samples = table_to_samples(table)
    stats = json.loads((run_dir / "stats.json").read_text()) if (run_dir / "stats.json").exists() else {}
    pipeline_yaml = (run_dir / "pipeline.yaml").read_text() if (run_dir / "pipeline.yaml").exists() else ""
    filter_order, thresholds = _filter_info(run_dir)
    abl = Path(ablation_dir) if ablation_dir else find_ablation(run_dir, stats)

    m = stats.get("manifest", {})
    n_syn = sum(s.origin == "synthetic" for s in samples)
    n_syn_kept = sum(s.origin == "synthetic" and s.kept for s in samples)
    cards = [
        ("rows", len(samples)),
        ("real", sum(s.origin == "real" for s in samples)),
        ("synthetic generated", n_syn),
        ("synthetic kept", n_syn_kept),
        ("kept share", f"{n_syn_kept / n_syn:.0%}" if n_syn else "-"),
        ("wall time", f"{stats.get('wall_seconds') or 0:.0f} s"),
    ]
    summary = '<div class="cards">' + "".join(f'<div class="card"><b>{_e(v)}</b>{_e(k)}</div>' for k, v in cards) + "</div>"
    leak = stats.get("dedup") or {}
    warn = [
        f'<p class="warn">{r["real_train_eval_overlap"]["pairs"]} real train/eval pairs are near-duplicates (reported, not dropped).</p>'
        for r in leak.values()
        if isinstance(r, dict) and r.get("real_train_eval_overlap", {}).get("pairs")
    ]

    fun = funnel(samples, filter_order)
    fun_html = []
    for gen, stages in fun.items():
        total = stages[0][1] or 1
        rows = [[stage, n, f"{n / total:.0%}", ""] for stage, n in stages]
        body = "".join(
            f'<tr><td>{_e(r[0])}</td><td class=num>{r[1]}</td><td class=num>{r[2]}</td><td><span class=bar style="width:{int(240 * stages[i][1] / total)}px"></span></td></tr>'
            for i, r in enumerate(rows)
        )
        fun_html.append(
            f"<h3>{_e(gen)}</h3><table><tr><th>after</th><th>remaining</th><th>share</th><th></th></tr>{body}<tr><td><b>kept</b></td><td class=num><b>{stages[-1][1]}</b></td><td></td><td></td></tr></table>"
        )

    models = sorted({(s.generator, s.model, s.model_revision) for s in samples if s.origin == "synthetic"}, key=str)
    timings = [[k, *[_round(v.get(c)) for c in ("seconds", "generated", "scored", "kept")]] for k, v in (stats.get("steps") or {}).items()]
    sections = [
        (
            "summary",
            "Summary",
            summary + "".join(warn) + _table(["origin/status", "count"], [[k, v] for k, v in (m.get("by_origin_status") or {}).items()]),
        ),
        ("funnel", "Funnel per generator", "".join(fun_html) or '<p class="muted">No synthetic samples.</p>'),
        ("samples", "Samples per label", _samples_section(samples, run_dir, per_cell)),
        ("scores", "Score histograms (dashed line: threshold)", _histograms(samples, thresholds)),
        ("diagnostics", "Set-level diagnostics", _diagnostics(run_dir, stats)),
        ("ablation", "Ablation", _ablation(abl)),
        (
            "config",
            "Run config, models and timings",
            _table(["generator", "model", "revision"], [list(x) for x in models])
            + _table(["step", "seconds", "generated", "scored", "kept"], timings)
            + f"<p>run id <code>{_e(stats.get('run_id'))}</code>, seed {_e(stats.get('seed'))}, shards {_e(stats.get('shards'))}, synth {_e(stats.get('synth_version'))}</p>"
            + f"<pre>{_e(pipeline_yaml)}</pre>",
        ),
    ]
    nav = "".join(f'<a href="#{sid}">{_e(title.split(" (")[0])}</a>' for sid, title, _ in sections)
    body = "".join(f'<section id="{sid}"><h2>{_e(title)}</h2>{content}</section>' for sid, title, content in sections)
    page = (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>synth report: {_e(stats.get("pipeline", run_dir.name))}</title>'
        f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{CSS}</style></head><body>'
        f"<header><h1>synth report: {_e(stats.get('pipeline', run_dir.name))}</h1><p>{_e(run_dir.resolve())}</p></header>"
        f"<nav>{nav}</nav><main>{body}</main></body></html>"
    )
    out = run_dir / "report.html"
    atomic_write_text(out, page)
    return out
