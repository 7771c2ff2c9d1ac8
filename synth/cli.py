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
    stats = json.loads((run_dir / "stats.json").read_text())
    m = stats["manifest"]
    table = Table(title=f"run {p.name} ({stats['run_id']}) in {stats.get('wall_seconds') or 0:.1f}s")
    for col in ("origin/status", "count"):
        table.add_column(col)
    for k, v in m["by_origin_status"].items():
        table.add_row(k, str(v))
    console.print(table)
    for k, v in result.items():
        if k not in ("rows",):
            console.print(f"  {k}: {v if not isinstance(v, dict) else json.dumps(v, default=str)}")


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
