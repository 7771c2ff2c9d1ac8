"""Deduplicate any table of records (``synth dedup``): JSONL, Parquet, a ``save_to_disk`` dataset
or a folder of images in; the same rows plus ``dedup_cluster`` and ``duplicate_of`` out."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from synth.errors import InputError
from synth.sources.imagefolder import IMAGE_SUFFIXES

ADDED = ("dedup_cluster", "duplicate_of")


def read_records(path: Path) -> tuple[pa.Table, str]:
    """Returns: (table, kind) where kind is jsonl | parquet | hf | images."""
    if path.is_dir():
        if (path / "dataset_info.json").exists() or (path / "state.json").exists() or (path / "dataset_dict.json").exists():
            import datasets

            ds = datasets.load_from_disk(str(path))
            if isinstance(ds, datasets.DatasetDict):
                raise InputError(f"{path} holds a DatasetDict ({', '.join(ds)}); pass one split's folder, e.g. {path}/{next(iter(ds))}.")
            return ds.data.table, "hf"
        files = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not files:
            raise InputError(
                f"{path} is a folder with no images and no saved dataset. Pass a .jsonl, .parquet, a save_to_disk folder or an image folder."
            )
        return pa.table({"id": [p.relative_to(path).as_posix() for p in files], "path": [str(p) for p in files]}), "images"
    if not path.is_file():
        raise InputError(f"input {str(path)!r} not found.")
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        rows = []
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if line.strip():
                    try:
                        rows.append(json.loads(line))
                    except json.JSONDecodeError as e:
                        raise InputError(f"{path}:{n}: not valid JSON ({e.msg}).") from None
        return pa.Table.from_pylist(rows), "jsonl"
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.read_table(path), "parquet"
    raise InputError(f"cannot read {str(path)!r}: expected .jsonl, .parquet, a save_to_disk folder or an image folder.")


def dedup_table(
    table: pa.Table,
    field: str,
    id_field: str,
    threshold: float = 0.8,
    num_perm: int = 128,
    ngram: int = 5,
    max_bits: int = 4,
    root: Path | None = None,
) -> tuple[pa.Table, dict[str, Any]]:
    """Add ``dedup_cluster`` / ``duplicate_of`` (kept representative: smaller id; real first when
    an ``origin`` column says so). ``field`` is ``text`` (a text column name) or ``image`` (a
    column of image paths, or of HF image structs)."""
    from synth.dedup import lsh, minhash, phash

    cols = table.column_names
    if id_field not in cols:
        raise InputError(f"--id-field {id_field!r} is not a column. Available columns: {', '.join(cols)}.")
    ids = [str(x) for x in table.column(id_field).to_pylist()]
    if len(set(ids)) != len(ids):
        raise InputError(f"--id-field {id_field!r} has repeated values; pick a unique id column.")
    col = field if field in cols else ("path" if field == "image" and "path" in cols else None)
    if col is None:
        raise InputError(f"--field {field!r} is not a column. Available columns: {', '.join(cols)}.")
    values = table.column(col).to_pylist()
    if field == "image" or col == "path" or (values and isinstance(values[0], dict)):
        hashes = phash.image_hashes([_image(v, root) for v in values])
        clusters = phash.near_duplicate_images(hashes, max_bits, num_perm)
        info = {"field": col, "kind": "image", "max_bits": max_bits}
    else:
        texts = ["" if v is None else str(v) for v in values]
        sig = minhash.text_signatures(texts, num_perm, 1, ngram)
        clusters = lsh.near_duplicate_clusters(sig, threshold, similarity=lambda p: minhash.exact_jaccard(texts, p, ngram))
        info = {"field": col, "kind": "text", "threshold": threshold, "ngram": ngram, **minhash.scheme_info(num_perm, 1, ngram)}
    is_real = np.array([o == "real" for o in table.column("origin").to_pylist()]) if "origin" in cols else None
    reps = lsh.choose_representatives(clusters.labels, ids, is_real=is_real)
    cluster, dup = lsh.dedup_columns(ids, reps)
    for name, vals in zip(ADDED, (cluster, dup), strict=True):
        table = table.drop_columns([name]) if name in table.column_names else table
        table = table.append_column(name, pa.array(vals, pa.string()))
    info.update(
        rows=len(ids),
        duplicates=sum(d is not None for d in dup),
        clusters=len({c for c in cluster if c}),
        lsh={
            "bands": clusters.params.bands,
            "rows": clusters.params.rows,
            "recall_at_threshold": round(float(clusters.params.recall_at_threshold), 4),
        },
    )
    return table, info


def _image(value: Any, root: Path | None):
    import io

    from PIL import Image

    if isinstance(value, dict):  # HF Image struct {"bytes", "path"}
        data = value.get("bytes") or Path(value["path"]).read_bytes()
        return Image.open(io.BytesIO(data)).convert("L")
    p = Path(value)
    if not p.is_absolute() and root is not None:
        p = root / p
    try:
        return Image.open(p).convert("L")
    except (OSError, ValueError) as e:
        raise InputError(f"cannot read image {str(p)!r}: {e}") from None


def write_records(table: pa.Table, out: Path, kind: str) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    suffix = out.suffix.lower()
    if suffix in (".jsonl", ".ndjson") or (kind == "jsonl" and suffix == ""):
        from synth.util import atomic_write_text

        atomic_write_text(out, "".join(json.dumps(r, ensure_ascii=False, default=str) + "\n" for r in table.to_pylist()))
    elif suffix == ".parquet" or kind == "parquet":
        import pyarrow.parquet as pq

        from synth.util import atomic_write_bytes as awb

        sink = pa.BufferOutputStream()
        pq.write_table(table, sink)
        awb(out, sink.getvalue().to_pybytes())
    elif kind == "hf":
        import datasets

        datasets.Dataset(table).save_to_disk(str(out))
    else:
        raise InputError(f"--out {str(out)!r}: name a .jsonl or .parquet file (image folders are written as a table of paths).")
