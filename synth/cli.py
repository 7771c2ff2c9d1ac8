"""The ``synth`` command line. Exit codes: 0 success, 2 usage/config/input error, 1 unexpected."""

from __future__ import annotations

import importlib
import json
import logging
import os
import pkgutil
import sys
import traceback
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from typer._click.exceptions import ClickException
from typer.exceptions import Abort, Exit

from synth.errors import SynthError

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # synth draws its own bars; no per-model "Loading weights" bars

app = typer.Typer(
    help="synth: synthetic training data with provenance, dedup, filters, mixing and ablation.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
manifest_app = typer.Typer(help="Validate, summarise and query manifests.", no_args_is_help=True)
app.add_typer(manifest_app, name="manifest")
console = Console()
err = Console(stderr=True)

Sets = Annotated[list[str] | None, typer.Option("--set", help="override a config value: key.path=value (repeatable)")]


@app.callback()
def _main(log_level: Annotated[str, typer.Option(help="DEBUG, INFO, WARNING or ERROR")] = "WARNING") -> None:
    logging.basicConfig(level=log_level.upper(), format="%(levelname)s %(name)s: %(message)s")


@app.command()
def run(
    pipeline: Annotated[Path, typer.Argument(help="pipeline YAML file")],
    out: Annotated[Path | None, typer.Option(help="run directory (default runs/<pipeline name>)")] = None,
    set_: Sets = None,
    executor: Annotated[str, typer.Option(help="local or ray")] = "local",
    address: Annotated[str | None, typer.Option(help="Ray cluster address (with --executor ray)")] = None,
    fresh: Annotated[bool, typer.Option(help="delete the run directory's previous state first")] = False,
) -> None:
    """Run a pipeline; re-running the same command resumes from finished shards."""
    from synth.config import load_pipeline
    from synth.executors import get_executor

    p = load_pipeline(pipeline, set_)
    run_dir = out or Path("runs") / p.name
    options = {"address": address} if executor == "ray" else {}
    if address and executor != "ray":
        raise SynthError("--address only applies with --executor ray.")
    result = get_executor(executor, **options).run(p, run_dir, fresh=fresh)
    _print_run_summary(p, run_dir, result)


def _print_run_summary(p, run_dir: Path, result: dict) -> None:
    """Counts, kept share per generator, the ablation table, and where every output is."""
    import csv

    stats = json.loads((run_dir / "stats.json").read_text())
    m = stats["manifest"]
    table = Table("origin/status", "count", title=f"run {p.name} ({stats['run_id']}) in {stats.get('wall_seconds') or 0:.1f}s")
    for k, v in m["by_origin_status"].items():
        table.add_row(k, str(v))
    console.print(table)
    from collections import Counter

    from synth.manifest import read_manifest

    cols = read_manifest(run_dir).select(["origin", "generator", "reject_reason"]).to_pylist()
    counts: dict[str, Counter] = {}
    for r in cols:
        if r["origin"] == "synthetic":
            counts.setdefault(r["generator"], Counter())[r["reject_reason"] or "kept"] += 1
    gens = Table("generator", "generated", "kept", "rejected by reason", title="synthetic samples")
    for gen, c in sorted(counts.items()):
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(c.items()) if k != "kept")
        gens.add_row(gen, str(sum(c.values())), str(c.get("kept", 0)), reasons or "-")
    if counts:
        console.print(gens)
    where = {"manifest": run_dir / "manifest.parquet", "stats": run_dir / "stats.json"}
    for out in p.outputs:
        r = result.get(out.name) or {}
        if out.type_name == "report":
            where["report"] = r.get("report")
        elif out.type_name == "export":
            where["export"] = r.get("dir")
        elif out.type_name == "mix":
            where["mixes"] = ", ".join(str(v.get("dir")) for v in r.values()) if isinstance(r, dict) and "dir" not in r else r.get("dir")
        elif out.type_name == "ablate":
            where["ablation table"] = r.get("summary")
            where["ablation plot"] = r.get("plot")
            summary = Path(r.get("summary") or "")
            if summary.is_file():
                with open(summary, newline="") as f:
                    rows = [x for x in csv.DictReader(f) if x.get("metric") == "accuracy" and x.get("arm") == "synthetic"]
                abl = Table(
                    "modality", "real budget", "ratio", "accuracy (mean ± std)", "Δ vs ratio 0 [95% CI]", title="ablation (real eval split)"
                )
                for x in rows:
                    delta = (
                        ""
                        if float(x["ratio"]) == 0
                        else f"{float(x['delta_mean']):+.3f} [{float(x['delta_ci_low']):+.3f}, {float(x['delta_ci_high']):+.3f}]"
                    )
                    abl.add_row(x["modality"], x["real_budget"], x["ratio"], f"{float(x['mean']):.3f} ± {float(x['std']):.3f}", delta)
                console.print(abl)
    console.print("[bold]outputs[/bold]")
    for k, v in where.items():
        if v:
            console.print(f"  {k}: {escape(str(v))}")


@app.command()
def validate(pipeline: Annotated[Path, typer.Argument()], set_: Sets = None) -> None:
    """Build every step of a pipeline without running anything."""
    from synth.config import load_pipeline
    from synth.engine import plan_segments

    p = load_pipeline(pipeline, set_)
    plan_segments(p)
    console.print(
        f"[green]ok[/green] {pipeline}: pipeline {p.name!r}, run id {p.run_id}, "
        f"{len(p.sources)} sources, {len(p.steps)} steps, {len(p.outputs)} outputs"
    )


@app.command()
def steps(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List every registered source, generator, filter, barrier and output step."""
    from synth.registry import all_steps

    reg = all_steps()
    if as_json:
        console.print_json(json.dumps({n: {"kind": c.kind, "params": c.Params.model_json_schema()} for n, c in reg.items()}))
        return
    table = Table("type", "kind", "parameters", "summary")
    for name, cls in sorted(reg.items(), key=lambda kv: (kv[1].kind, kv[0])):
        doc = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
        table.add_row(name, cls.kind, ", ".join(cls.Params.model_fields), doc)
    console.print(table)


@manifest_app.command("validate")
def manifest_validate(path: Annotated[Path, typer.Argument(help="run dir or manifest .parquet")]) -> None:
    """Exit 0 iff the manifest is valid against manifests/schema.json."""
    from synth.manifest_ops import validate as do_validate

    problems = do_validate(path)
    if problems:
        raise SynthError(f"{path}: manifest is invalid:\n" + "\n".join(problems))
    console.print(f"[green]valid[/green] {path}")


@manifest_app.command("stats")
def manifest_stats(path: Annotated[Path, typer.Argument()], as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Counts by origin, label, generator, status and reason; the leakage report."""
    from synth.manifest import read_manifest
    from synth.manifest_ops import stats

    s = stats(read_manifest(path))
    if as_json:
        print(json.dumps(s, indent=2))
        return
    for section, counts in s.items():
        if isinstance(counts, dict) and counts:
            table = Table(section, "count", title=section)
            for k, v in counts.items():
                table.add_row(str(k), json.dumps(v) if isinstance(v, dict) else str(v))
            console.print(table)
    console.print(f"total rows: {s['total']}")


@manifest_app.command("query")
def manifest_query(
    path: Annotated[Path, typer.Argument()],
    sql: Annotated[str, typer.Argument(help="SQL over table `manifest`")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Run DuckDB SQL over the manifest (table name ``manifest``)."""
    from synth.manifest_ops import query

    result = query(path, sql)
    if as_json:
        print(json.dumps(result.to_pylist(), default=str, indent=2))
        return
    table = Table(*result.column_names)
    for row in result.to_pylist():
        table.add_row(*(str(v) for v in row.values()))
    console.print(table)


def _load_commands() -> None:
    import synth.commands as pkg

    for mod in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
        importlib.import_module(f"synth.commands.{mod.name}")


_load_commands()


def main(argv: list[str] | None = None) -> int:
    """Entry point: maps errors to exit codes and one clear message."""
    try:
        rv = app(args=argv, standalone_mode=False, prog_name="synth")
    except Exit as e:
        return e.exit_code
    except Abort:
        err.print("aborted")
        return 130
    except ClickException as e:
        e.show()
        return e.exit_code
    except SynthError as e:
        err.print("[bold red]error:[/bold red]", escape(str(e)), highlight=False, soft_wrap=True)
        return 2
    except Exception:
        traceback.print_exc()
        err.print("[bold red]unexpected failure[/bold red] (exit 1): please report it with the traceback above.")
        return 1
    return rv if isinstance(rv, int) else 0


def entrypoint() -> None:
    sys.exit(main())
