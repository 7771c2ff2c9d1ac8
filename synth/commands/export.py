"""``synth export``: a run or a mix as a HF DatasetDict / Parquet / JSONL with a dataset card."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from synth.cli import app, console


@app.command("export")
def export_command(
    src: Annotated[Path, typer.Argument(help="run directory or mix directory")],
    out: Annotated[Path, typer.Option(help="export directory (an earlier export there is replaced)")],
    format: Annotated[str, typer.Option("--format", help="hf (save_to_disk), parquet or jsonl")] = "hf",
    modality: Annotated[str | None, typer.Option(help="image or text (default: each present; two give OUT/image and OUT/text)")] = None,
    include_rejected: Annotated[bool, typer.Option(help="add rejected rows with status and reject_reason")] = False,
    license: Annotated[str, typer.Option(help="license field of the dataset card")] = "unknown",
    pretty_name: Annotated[str | None, typer.Option(help="title of the dataset card")] = None,
    push_to_hub: Annotated[str | None, typer.Option(help="Hub dataset repo id (token from the HF_TOKEN environment variable)")] = None,
    private: Annotated[bool, typer.Option(help="create the Hub repo private")] = False,
) -> None:
    """Export kept rows with Features, provenance columns and a dataset card (README.md)."""
    from synth.export import export

    res = export(
        src,
        out,
        format,
        modality=modality,
        include_rejected=include_rejected,
        license=license,
        pretty_name=pretty_name,
        push_to_hub=push_to_hub,
        private=private,
    )
    for m, splits in res["splits"].items():
        console.print(f"[green]export[/green] {res['dir']} ({res['format']}, {m}): " + ", ".join(f"{s}={n}" for s, n in splits.items()))
    if "hub" in res:
        console.print(f"pushed to {res['hub']['url']}")
