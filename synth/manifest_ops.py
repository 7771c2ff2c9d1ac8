"""Operations on manifests: validate against manifests/schema.json, stats, DuckDB queries."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa

from synth.errors import InputError
from synth.manifest import COLUMN_NAMES, SCHEMA_PATH, read_manifest


def load_schema() -> dict[str, Any]:
    return json.loads(SCHEMA_PATH.read_text())


def validate_table(table: pa.Table, max_errors: int = 20) -> list[str]:
    """Every problem found, as ``row <i> (id=...): <message>`` lines; empty when valid."""
    import jsonschema

    schema = load_schema()
    errors: list[str] = []
    missing = [c for c in schema["required"] if c not in table.column_names]
    if missing:
        return [f"missing columns: {', '.join(missing)}"]
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
    seen: set[str] = set()
    ids = set(table.column("id").to_pylist())
    for i, row in enumerate(table.select(schema["required"]).to_pylist()):
        if row.get("created_at") is not None:
            row["created_at"] = row["created_at"].isoformat()
        where = f"row {i} (id={row.get('id')!r})"
        for err in validator.iter_errors(row):
            path = ".".join(str(p) for p in err.absolute_path) or "<row>"
            errors.append(f"{where}: {path}: {err.message}")
        for col in ("params", "scores"):
            try:
                value = json.loads(row[col]) if isinstance(row[col], str) else None
            except json.JSONDecodeError:
                value = None
            if not isinstance(value, dict):
                errors.append(f"{where}: {col} is not a JSON object")
            elif col == "scores" and not all(isinstance(v, int | float) for v in value.values()):
                errors.append(f"{where}: scores values must be numbers")
        if row["id"] in seen:
            errors.append(f"{where}: duplicate id")
        seen.add(row["id"])
        for ref in ("duplicate_of",):  # reference-run matches name rows of another run ("ref:<id>")
            if row.get(ref) is not None and row[ref] not in ids and row.get("reject_reason") != "dedup:in_reference":
                errors.append(f"{where}: {ref}={row[ref]!r} names no row of this manifest")
        if len(errors) >= max_errors:
            errors.append("... (stopped after the first errors)")
            break
    return errors


def validate(dir_or_file: str | Path) -> list[str]:
    return validate_table(read_manifest(dir_or_file))


def _count(rows: list[dict], *keys: str) -> dict[str, int]:
    c = Counter("/".join(str(r[k]) for k in keys) for r in rows)
    return dict(sorted(c.items()))


def stats(table: pa.Table) -> dict[str, Any]:
    """Counts by origin, status, label, generator and reason, plus the leakage report per generator."""
    rows = table.select(
        [c for c in ("origin", "status", "label", "generator", "reject_reason", "modality", "split") if c in table.column_names]
    ).to_pylist()
    for r in rows:
        r["generator"] = r.get("generator") or "(real)"
    leakage: dict[str, dict[str, int]] = {}
    for r in rows:
        reason = r.get("reject_reason") or ""
        if reason.startswith("dedup:"):
            leakage.setdefault(r["generator"], Counter())[reason.removeprefix("dedup:")] += 1
    return {
        "total": len(rows),
        "by_origin": _count(rows, "origin"),
        "by_status": _count(rows, "status"),
        "by_origin_status": _count(rows, "origin", "status"),
        "by_modality": _count(rows, "modality"),
        "by_split": _count(rows, "origin", "split"),
        "by_label": _count(rows, "origin", "label"),
        "by_generator": _count(rows, "generator", "status"),
        "by_reason": _count([r for r in rows if r.get("reject_reason")], "reject_reason"),
        "leakage": {g: dict(sorted(c.items())) for g, c in sorted(leakage.items())},
    }


def query(dir_or_file: str | Path, sql: str) -> pa.Table:
    """Run DuckDB SQL over the manifest, exposed as the table ``manifest``."""
    import duckdb

    manifest = read_manifest(dir_or_file)  # noqa: F841 (DuckDB finds it by name)
    con = duckdb.connect()
    con.register("manifest", manifest)
    try:
        return con.sql(sql).to_arrow_table()
    except duckdb.Error as e:
        raise InputError(f"query failed: {e}. The table is `manifest` with columns {', '.join(COLUMN_NAMES)}.") from e
