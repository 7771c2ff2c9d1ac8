"""``synth refilter RUN_DIR --set steps.<filter>.<threshold>=value``: new thresholds, stored scores."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from synth.cli import Sets, app, console


@app.command()
def refilter(
    run_dir: Annotated[Path, typer.Argument(help="a finished run dir (pipeline.yaml + manifest.parquet)")],
    set_: Sets = None,
    out: Annotated[Path | None, typer.Option(help="write a refiltered copy of the run here instead of updating RUN_DIR")] = None,
    diagnostics: Annotated[
        bool | None, typer.Option("--diagnostics/--no-diagnostics", help="recompute stats.json diagnostics (default: when already present)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the before/after counts as JSON")] = False,
) -> None:
    """Re-apply filter thresholds to the stored scores: no regeneration, no rescoring.

    Overrides may only change threshold parameters of filter steps (e.g. --set
    steps.image_quality.min_sharpness=50) and are relative to the run's own config. Writes
    manifest.parquet (previous kept as manifest.prev.parquet), refilter.yaml and stats.json.
    """
    from synth.refilter import refilter as do_refilter

    result = do_refilter(run_dir, set_ or [], out=out, diagnostics=diagnostics)
    if as_json:
        print(json.dumps(result.to_dict(), indent=2))
        return
    table = Table("filter", "rejected before", "rejected after", "change", title=f"refilter {result.run_dir}")
    for name in result.before:
        if name == "kept_synthetic":
            continue
        b, a = result.before[name], result.after[name]
        table.add_row(name, str(b), str(a), f"{a - b:+d}")
    b, a = result.before["kept_synthetic"], result.after["kept_synthetic"]
    table.add_row("[bold]kept synthetic[/bold]", str(b), str(a), f"{a - b:+d}")
    console.print(table)
    console.print(f"{result.changed} rows changed; manifest: {result.run_dir / 'manifest.parquet'}")
