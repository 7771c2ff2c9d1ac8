"""The manifest: one Parquet row per sample, columns declared here and in manifests/schema.json."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from synth.errors import InputError
from synth.sample import Sample
from synth.util import atomic_write_bytes

SCHEMA_VERSION = "1.0"
SCHEMA_PATH = Path(__file__).resolve().parent.parent / "manifests" / "schema.json"

COLUMNS: list[tuple[str, pa.DataType, bool]] = [  # (name, type, nullable)
    ("id", pa.string(), False),
    ("run_id", pa.string(), False),
    ("modality", pa.string(), False),
    ("origin", pa.string(), False),
    ("label", pa.string(), True),
    ("split", pa.string(), False),
    ("status", pa.string(), False),
    ("reject_reason", pa.string(), True),
    ("parent_id", pa.string(), True),
    ("generator", pa.string(), True),
    ("model", pa.string(), True),
    ("model_revision", pa.string(), True),
    ("seed", pa.int64(), True),
    ("prompt", pa.string(), True),
    ("params", pa.string(), False),
    ("scores", pa.string(), False),
    ("dedup_cluster", pa.string(), True),
    ("duplicate_of", pa.string(), True),
    ("content_sha256", pa.string(), True),
    ("uri", pa.string(), True),
    ("path", pa.string(), True),
    ("text", pa.string(), True),
    ("created_at", pa.timestamp("us", tz="UTC"), False),
    ("schema_version", pa.string(), False),
]
SCHEMA = pa.schema([pa.field(n, t, nullable=nullable) for n, t, nullable in COLUMNS])
COLUMN_NAMES = [c[0] for c in COLUMNS]
_JSON_COLUMNS = ("params", "scores")


def samples_to_table(samples: list[Sample], run_id: str) -> pa.Table:
    """Samples -> manifest table with the declared schema (params/scores as JSON strings)."""
    now = datetime.now(UTC)
    cols: dict[str, list[Any]] = {n: [] for n in COLUMN_NAMES}
    for s in samples:
        for n in COLUMN_NAMES:
            if n == "run_id":
                v: Any = run_id
            elif n == "schema_version":
                v = SCHEMA_VERSION
            elif n == "created_at":
                v = s.created_at or now
            elif n in _JSON_COLUMNS:
                v = json.dumps(getattr(s, n), sort_keys=True, default=str)
            else:
                v = getattr(s, n)
            cols[n].append(v)
    return pa.Table.from_pydict(cols, schema=SCHEMA)


def table_to_samples(table: pa.Table) -> list[Sample]:
    """Manifest table -> samples (inverse of :func:`samples_to_table`, minus run_id/schema_version)."""
    rows = table.to_pylist()
    out = []
    for r in rows:
        kw = {k: r[k] for k in COLUMN_NAMES if k not in ("run_id", "schema_version") and k in r}
        for k in _JSON_COLUMNS:
            kw[k] = json.loads(kw.get(k) or "{}")
        out.append(Sample(**kw))
    return out


def empty_table() -> pa.Table:
    return SCHEMA.empty_table()


def write_table(table: pa.Table, path: Path) -> None:
    """Atomically write a manifest table as Parquet (temp file + rename)."""
    sink = pa.BufferOutputStream()
    pq.write_table(table.cast(SCHEMA), sink, compression="zstd")
    atomic_write_bytes(Path(path), sink.getvalue().to_pybytes(), fsync=True)


def manifest_path(dir_or_file: str | Path) -> Path:
    p = Path(dir_or_file)
    if p.is_dir():
        p = p / "manifest.parquet"
    if not p.exists():
        raise InputError(
            f"no manifest at {p}: pass a run directory holding manifest.parquet (made by `synth run`) "
            "or the path of a manifest .parquet file."
        )
    return p


def read_manifest(dir_or_file: str | Path) -> pa.Table:
    p = manifest_path(dir_or_file)
    try:
        return pq.read_table(p)
    except (pa.ArrowInvalid, OSError) as e:
        raise InputError(f"{p} is not a readable Parquet file ({e}).") from e


def read_samples(dir_or_file: str | Path) -> list[Sample]:
    return table_to_samples(read_manifest(dir_or_file))
