"""Text rows from JSONL, CSV or Parquet files, with column mapping."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from synth.errors import InputError
from synth.registry import register
from synth.sample import Sample
from synth.sources._base import RealSource, SourceParams
from synth.steps import Context
from synth.util import sha256_text


class TabularParams(SourceParams):
    path: str | dict[str, str] = Field(description="a .jsonl, .csv or .parquet file, or {split: file} for one file per split")
    format: Literal["auto", "jsonl", "csv", "parquet"] = "auto"
    text_column: str = "text"
    label_column: str | None = "label"
    id_column: str | None = None
    split_column: str | None = None
    split: str = Field("train", description="the split of every row when there is no split_column")


@register("text_file")
class TextFileSource(RealSource):
    """Reads labelled text from JSONL / CSV / Parquet.

    Writes: text samples, ``uri`` ``<file>#<row>``. Drops: nothing silently; a JSONL line that is
    not UTF-8 or not a JSON object, or a row without text, becomes a rejected real sample
    (``source:bad_encoding``, ``source:bad_json``, ``source:missing_text``).
    Errors: the file is missing, empty, or lacks the text/label column (the message lists the
    columns it has).
    """

    Params = TabularParams

    def _records(self, path: Path) -> Iterator[tuple[int, dict[str, Any] | None, str | None]]:
        fmt = self.params.format if self.params.format != "auto" else path.suffix.lower().lstrip(".")
        if fmt in ("jsonl", "ndjson"):
            with open(path, "rb") as f:
                for i, raw in enumerate(f):
                    if not raw.strip():
                        continue
                    try:
                        line = raw.decode("utf-8")
                    except UnicodeDecodeError:
                        yield i, None, "bad_encoding"
                        continue
                    try:
                        rec = json.loads(line)
                    except json.JSONDecodeError:
                        rec = None
                    yield (i, rec, None) if isinstance(rec, dict) else (i, None, "bad_json")
        elif fmt in ("csv", "parquet"):
            import pyarrow.csv as pcsv
            import pyarrow.parquet as pq

            try:
                table = pcsv.read_csv(path) if fmt == "csv" else pq.read_table(path)
            except Exception as e:  # pyarrow raises several types for unreadable files
                raise InputError(f"source {self.name!r}: cannot read {str(path)!r} as {fmt}: {e}") from None
            for i, rec in enumerate(table.to_pylist()):
                yield i, rec, None
        else:
            raise InputError(f"source {self.name!r}: cannot tell the format of {str(path)!r}. Set format: jsonl, csv or parquet.")

    def rows(self, ctx: Context) -> Iterator[tuple[Sample, bytes | None]]:
        files = self.params.path if isinstance(self.params.path, dict) else {None: self.params.path}
        for split, file in files.items():
            yield from self._file_rows(Path(file).expanduser(), split)

    def _file_rows(self, path: Path, file_split: str | None) -> Iterator[tuple[Sample, bytes | None]]:
        p = self.params
        if not path.is_file():
            raise InputError(f"source {self.name!r}: file {str(path)!r} not found. Give a .jsonl, .csv or .parquet path.")
        seen_columns: set[str] = set()
        checked = False
        for i, rec, problem in self._records(path):
            uri = f"{path.resolve().as_uri()}#{i}"
            if rec is not None and not checked:
                checked = True
                seen_columns = set(rec)
                need = [c for c in (p.text_column, p.label_column, p.id_column, p.split_column) if c]
                missing = [c for c in need if c not in rec]
                if missing:
                    raise InputError(
                        f"source {self.name!r}: column(s) {', '.join(map(repr, missing))} not in {str(path)!r}. "
                        f"Available columns: {', '.join(sorted(seen_columns))}. Set text_column / label_column accordingly."
                    )
            key = str(rec[p.id_column]) if rec is not None and p.id_column else (f"{file_split}-{i:06d}" if file_split else f"{i:06d}")
            sid = f"{self.name}-{key}"
            split = str(rec[p.split_column]) if rec is not None and p.split_column else (file_split or p.split)
            if rec is None:
                s = Sample(id=sid, modality="text", origin="real", split=split, uri=uri)
                s.reject(f"source:{problem}")
                yield s, None
                continue
            text = rec.get(p.text_column)
            label = rec.get(p.label_column) if p.label_column else None
            s = Sample(
                id=sid,
                modality="text",
                origin="real",
                label=None if label is None else str(label),
                split=split,
                text=text if isinstance(text, str) else None,
                uri=uri,
            )
            if not s.text or not s.text.strip():
                s.text = None
                s.reject("source:missing_text")
            else:
                s.content_sha256 = sha256_text(s.text)
            yield s, None
