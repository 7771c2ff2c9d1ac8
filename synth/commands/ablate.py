"""``synth ablate``: ratios x seeds (x real budgets x generator subsets x controls), probe on real eval."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

from synth.cli import app, console
from synth.commands.mix import spec_error
from synth.errors import InputError


def _floats(text: str, flag: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise InputError(f"{flag} {text!r}: expected comma-separated numbers, e.g. 0,0.5,1,2.") from None


def _budgets(text: str | None) -> list[int | None]:
    if not text:
        return []
    out: list[int | None] = []
    for x in text.split(","):
        x = x.strip()
        if x == "all":
            out.append(None)
        elif x.isdigit() and int(x) > 0:
            out.append(int(x))
        else:
            raise InputError(f"--real-per-class {text!r}: expected comma-separated positive integers or 'all', e.g. 5,20,all.")
    return out


@app.command("ablate")
def ablate_command(
    src: Annotated[Path, typer.Argument(help="run directory")],
    ratios: Annotated[str, typer.Option(help="comma-separated synthetic:real ratios, e.g. 0,0.5,1,2 (0 is always added)")],
    out: Annotated[Path, typer.Option(help="ablation directory (results.csv, summary.csv, ablation.png, cells/)")],
    seeds: Annotated[int, typer.Option(help="number of seeds (0..N-1)")] = 3,
    probe: Annotated[str | None, typer.Option(help="pixels_lr, cnn, minilm_lr, tfidf_lr or module:function (default by modality)")] = None,
    modality: Annotated[list[str] | None, typer.Option(help="image or text (repeatable; default: each present)")] = None,
    real_per_class: Annotated[str | None, typer.Option(help="real budgets per label, e.g. 5,20,all")] = None,
    real_fraction: Annotated[str | None, typer.Option(help="real budgets as shares, e.g. 0.1,0.5")] = None,
    generators: Annotated[list[str] | None, typer.Option(help="a generator subset, comma-separated (repeatable: one curve each)")] = None,
    controls: Annotated[str | None, typer.Option(help="extra arms: real_repeat,augment_only,unfiltered,synthetic_only")] = None,
    mode: Annotated[str, typer.Option(help="additive or fixed_total")] = "additive",
    total: Annotated[int | None, typer.Option(help="train rows per cell with --mode fixed_total")] = None,
    max_per_parent: Annotated[int | None, typer.Option(help="cap synthetic rows per parent sample")] = None,
    parents_in_real: Annotated[
        bool, typer.Option(help="only synthetic rows whose parent is among the budgeted real rows (strict low-data)")
    ] = False,
    allow_short: Annotated[bool, typer.Option(help="cells short of synthetic rows take what there is")] = False,
) -> None:
    """Train a probe on each mix of the grid, evaluate on real eval rows, report paired deltas."""
    from synth.ablate import AblationSpec, ablate

    try:
        spec = AblationSpec(
            ratios=_floats(ratios, "--ratios"),
            seeds=seeds,
            probe=probe,
            modalities=modality or None,
            real_per_class=_budgets(real_per_class),
            real_fraction=_floats(real_fraction, "--real-fraction") if real_fraction else [],
            generator_sets=[[g.strip() for g in s.split(",") if g.strip()] for s in generators] if generators else None,
            controls=[c.strip() for c in controls.split(",") if c.strip()] if controls else [],
            mode=mode,
            total=total,
            max_per_parent=max_per_parent,
            parents_in_real=parents_in_real,
            allow_short=allow_short,
        )
    except ValidationError as e:
        raise spec_error(e) from None
    res = ablate(src, out, spec)
    console.print(f"[green]ablation[/green] {res['dir']}: {res['cells']} cells ({res['computed']} computed, {res['cached']} cached)")
    for note in res["notes"]:
        console.print(f"  note: {note}")
    _print_summary(Path(res["summary"]))


def _print_summary(path: Path) -> None:
    import csv

    from rich.table import Table

    rows = [r for r in csv.DictReader(path.open()) if r["metric"] == "accuracy"]
    title = "accuracy on real eval, mean ± std over seeds (train rows: real + synthetic, mean over seeds)"
    table = Table("modality", "arm", "generators", "real", "ratio", "train rows", "accuracy", "Δ vs ratio 0 [95% CI]", title=title)
    for r in rows:
        std = "" if r["std"] in ("", "nan") else f"±{float(r['std']):.3f}"
        delta = (
            ""
            if r["delta_mean"] in ("", "nan")
            else f"{float(r['delta_mean']):+.3f} [{float(r['delta_ci_low']):+.3f},{float(r['delta_ci_high']):+.3f}]"
        )
        n = f"{float(r['n_real']):g}+{float(r['n_synthetic']):g}"
        table.add_row(r["modality"], r["arm"], r["generators"], r["real_budget"], r["ratio"], n, f"{float(r['mean']):.3f}{std}", delta)
    console.print(table)
