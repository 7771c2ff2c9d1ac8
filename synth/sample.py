"""The one record type that flows between steps."""

from __future__ import annotations

import io
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

Modality = Literal["image", "text"]
Origin = Literal["real", "synthetic"]
Status = Literal["kept", "rejected"]


@dataclass
class Sample:
    """One real or synthetic sample.

    Images travel by reference: ``path`` is the payload file relative to the run directory (or
    absolute); ``load_image`` decodes it lazily. ``uri`` says where the sample came from (a source
    URI for real data, the payload path for synthetic data).
    """

    id: str
    modality: Modality
    origin: Origin
    label: str | None = None
    split: str = "train"
    text: str | None = None
    path: str | None = None
    uri: str | None = None
    parent_id: str | None = None
    generator: str | None = None
    model: str | None = None
    model_revision: str | None = None
    seed: int | None = None
    prompt: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    scores: dict[str, float] = field(default_factory=dict)
    status: Status = "kept"
    reject_reason: str | None = None
    dedup_cluster: str | None = None
    duplicate_of: str | None = None
    content_sha256: str | None = None
    created_at: datetime | None = None

    @property
    def kept(self) -> bool:
        return self.status == "kept"

    def reject(self, reason: str) -> None:
        """Mark rejected with a named reason; the first reason wins (the funnel order)."""
        if self.status == "kept":
            self.status = "rejected"
            self.reject_reason = reason

    def resolve(self, root: str | Path | None = None) -> Path:
        """Absolute path of the payload file."""
        if self.path is None:
            raise ValueError(f"sample {self.id!r} has no payload path")
        p = Path(self.path)
        return p if p.is_absolute() or root is None else Path(root) / p

    def load_image(self, root: str | Path | None = None):
        """Decode the image payload as a PIL image (lazily imported)."""
        from PIL import Image

        with open(self.resolve(root), "rb") as f:
            img = Image.open(io.BytesIO(f.read()))
            img.load()
        return img

    def copy(self, **changes: Any) -> Sample:
        return replace(self, params=dict(self.params), scores=dict(self.scores), **changes)
