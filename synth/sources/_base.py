"""What every real-data source shares: the train/eval split, limits, and payload copies.

Real image payloads are copied into the run directory (``data/<source>/...``) so a run is
self-contained: filters, dedup and exports read inside the run dir only, and ``uri`` keeps the
pointer back to where the sample came from.
"""

from __future__ import annotations

import io
from collections import defaultdict
from collections.abc import Iterator
from typing import ClassVar

from pydantic import Field

from synth.errors import InputError
from synth.sample import Sample
from synth.splits import stratified_split
from synth.steps import Context, Params, Source
from synth.util import atomic_write_bytes, sha256_bytes


class SourceParams(Params):
    eval_fraction: float | None = Field(None, ge=0, lt=1, description="split off this stratified share as 'eval' (sources with one split)")
    split_seed: int = Field(0, description="seed of the train/eval split (independent of the run seed)")
    max_per_label: int | None = Field(None, ge=1, description="keep at most this many rows per (split, label), the first by id")


class RealSource(Source):
    """Subclasses implement ``rows``: ``(sample, image bytes or None)`` pairs with ``split`` set to
    the source's own split; the base splits, limits, then stores the payloads of the rows it keeps
    (an undecodable image becomes a ``source:unreadable`` rejection)."""

    Params: ClassVar[type[SourceParams]] = SourceParams
    resplit: ClassVar[bool] = True  # False where the source applies eval_fraction itself

    def rows(self, ctx: Context) -> Iterator[tuple[Sample, bytes | None]]:
        raise NotImplementedError

    def read(self, ctx: Context) -> Iterator[Sample]:
        pairs = list(self.rows(ctx))
        payloads = {s.id: data for s, data in pairs if data is not None}
        rows = [s for s, _ in pairs]
        p = self.params
        if self.resplit and p.eval_fraction is not None and rows:
            splits = {s.split for s in rows}
            if len(splits) > 1:
                raise InputError(
                    f"source {self.name!r}: eval_fraction splits a single-split source, but this one already has splits "
                    f"{sorted(splits)}. Remove eval_fraction or choose one split."
                )
            ok = [s for s in rows if s.kept]
            for s, is_eval in zip(ok, stratified_split([s.label for s in ok], p.eval_fraction, p.split_seed), strict=True):
                s.split = "eval" if is_eval else "train"
        if p.max_per_label is not None:
            seen: dict[tuple[str, str | None], int] = defaultdict(int)
            kept = []
            for s in sorted(rows, key=lambda s: s.id):
                seen[(s.split, s.label)] += 1
                if seen[(s.split, s.label)] <= p.max_per_label:
                    kept.append(s)
            rows = kept
        for s in rows:
            if s.id in payloads:
                s.path, s.content_sha256, ok = store_image(ctx, self.name, s.path or f"{s.id}.png", payloads[s.id])
                if not ok:
                    s.path = None
                    s.reject("source:unreadable")
            yield s


def store_image(ctx: Context, source: str, name: str, data: bytes) -> tuple[str, str, bool]:
    """Copy image bytes to ``data/<source>/<name>`` in the run dir; (relative path, sha256, decodable?)."""
    from PIL import Image, UnidentifiedImageError

    ok = True
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        ok = False
    abs_path, rel = ctx.payload_path(source, name)
    if ok:
        atomic_write_bytes(abs_path, data)
    return rel, sha256_bytes(data), ok


def png_bytes(image) -> bytes:
    """Deterministic PNG encoding of a PIL image (no timestamps or extra chunks)."""
    buf = io.BytesIO()
    image.save(buf, format="PNG", optimize=False, compress_level=6)
    return buf.getvalue()
