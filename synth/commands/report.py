"""``synth report RUN_DIR``: RUN_DIR/report.html."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from synth.cli import app, console


@app.command()
def report(
    run_dir: Annotated[Path, typer.Argument(help="a run directory made by synth run")],
    ablation: Annotated[Path | None, typer.Option(help="an ablation directory (default: one found in RUN_DIR)")] = None,
    per_label: Annotated[int, typer.Option(help="samples shown per label and column")] = 12,
) -> None:
    """Write one self-contained HTML report (images embedded, opens from disk)."""
    from synth.report import build_report

    out = build_report(run_dir, ablation, per_label)
    console.print(f"report: {out}")
