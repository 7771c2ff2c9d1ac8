"""``synth mix``: a seeded, stratified mix of a run's kept rows at a synthetic:real ratio."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

from synth.cli import app, console
from synth.errors import InputError


def spec_error(e: ValidationError) -> InputError:
    lines = []
    for err in e.errors():
        flag = "--" + ".".join(str(p) for p in err["loc"]).replace("_", "-") + ": " if err["loc"] else ""
        lines.append(flag + err["msg"].removeprefix("Value error, "))
    return InputError("invalid options: " + "; ".join(lines) + ".")


@app.command("mix")
def mix_command(
    src: Annotated[Path, typer.Argument(help="run directory (or a mix directory / manifest .parquet)")],
    ratio: Annotated[float, typer.Option(help="n_synthetic / n_real")],
    out: Annotated[Path, typer.Option(help="mix directory to write (manifest.parquet + mix.json)")],
    mode: Annotated[str, typer.Option(help="additive (all chosen real + R x n_real synthetic) or fixed_total")] = "additive",
    total: Annotated[int | None, typer.Option(help="train rows of a fixed_total mix")] = None,
    seed: Annotated[int, typer.Option(help="selection seed")] = 0,
    modality: Annotated[str | None, typer.Option(help="image or text (default: every modality)")] = None,
    real_per_class: Annotated[int | None, typer.Option(help="real budget: K real train rows per label")] = None,
    real_fraction: Annotated[float | None, typer.Option(help="real budget: this share of each label's real train rows")] = None,
    generator: Annotated[list[str] | None, typer.Option(help="draw synthetic rows only from this generator step (repeatable)")] = None,
    max_per_parent: Annotated[int | None, typer.Option(help="cap synthetic rows per parent sample")] = None,
    parents_in_real: Annotated[bool, typer.Option(help="only synthetic rows whose parent is among the budgeted real rows")] = False,
    include_rejected: Annotated[bool, typer.Option(help="draw rejected synthetic rows too (unfiltered control; never eval leaks)")] = False,
    allow_short: Annotated[bool, typer.Option(help="take what there is when synthetic rows run short (recorded in mix.json)")] = False,
    include_eval: Annotated[bool, typer.Option(help="copy the real eval rows into the mix manifest")] = True,
) -> None:
    """Mix kept real and synthetic train rows at a ratio (stratified by label, seeded, pure)."""
    from synth.mix import MixSpec, mix_run

    try:
        spec = MixSpec(
            ratio=ratio,
            mode=mode,
            total=total,
            seed=seed,
            modality=modality,
            real_per_class=real_per_class,
            real_fraction=real_fraction,
            generators=generator or None,
            max_per_parent=max_per_parent,
            parents_in_real=parents_in_real,
            include_rejected=include_rejected,
            allow_short=allow_short,
            include_eval=include_eval,
        )
    except ValidationError as e:
        raise spec_error(e) from None
    res = mix_run(src, out, spec)
    console.print(
        f"[green]mix[/green] {res['dir']}: {res['n_real']} real + {res['n_synthetic']} synthetic train rows "
        f"(fingerprint {res['fingerprint']}{', SHORT: see mix.json' if res['short'] else ''})"
    )
