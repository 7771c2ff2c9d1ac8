"""``synth dedup INPUT --out OUTPUT``: near-duplicate marking for any dataset."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from synth.cli import app, console


@app.command()
def dedup(
    input: Annotated[Path, typer.Argument(help=".jsonl, .parquet, a save_to_disk folder or an image folder")],
    out: Annotated[
        Path, typer.Option(help="output: .jsonl / .parquet (same rows + dedup_cluster, duplicate_of), or a folder for a saved dataset")
    ],
    field: Annotated[str, typer.Option(help="'text' / a text column, or 'image' / a column of image paths")] = "text",
    id_field: Annotated[str, typer.Option(help="unique id column (image folders: the relative path)")] = "id",
    threshold: Annotated[float, typer.Option(help="text: Jaccard threshold of word n-gram shingles")] = 0.8,
    num_perm: Annotated[int, typer.Option(help="MinHash permutations")] = 128,
    ngram: Annotated[int, typer.Option(help="text: shingle size in words")] = 5,
    max_bits: Annotated[int, typer.Option(help="images: Hamming distance (of 64 perceptual-hash bits) counted as a near-duplicate")] = 4,
) -> None:
    """Mark near-duplicates: writes the same rows plus dedup_cluster and duplicate_of (null for the kept one)."""
    from synth.dedup.records import dedup_table, read_records, write_records
    from synth.errors import InputError

    if not 0 < threshold < 1:
        raise InputError(f"--threshold must be in (0, 1), got {threshold}.")
    table, kind = read_records(input)
    if kind == "images":
        field = "image"
    result, info = dedup_table(table, field, id_field, threshold, num_perm, ngram, max_bits, root=input if input.is_dir() else input.parent)
    write_records(result, out, kind)
    console.print(f"{info['rows']} rows, {info['clusters']} clusters, {info['duplicates']} duplicates marked -> {out}")
    console.print(json.dumps(info["lsh"]))
