"""A folder of images with one sub-folder per class (torchvision's ImageFolder layout)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from pydantic import Field

from synth.errors import InputError
from synth.registry import register
from synth.sample import Sample
from synth.sources._base import RealSource, SourceParams
from synth.steps import Context
from synth.util import sha256_text

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")


class ImageFolderParams(SourceParams):
    path: str = Field(description="root folder: ROOT/<label>/<image>, optionally ROOT/<split>/<label>/<image>")
    splits: dict[str, str] | None = Field(None, description="sub-folders that are splits, e.g. {train: train, val: eval}")


@register("image_folder")
class ImageFolderSource(RealSource):
    """Reads ``ROOT/<label>/*.png|jpg|...`` (or ``ROOT/<split folder>/<label>/...`` with ``splits``).

    Writes: image samples with ``uri`` ``file://<absolute path>`` and a copy of the bytes under
    ``data/<name>/``. Drops: nothing silently; an unreadable or truncated image becomes a
    rejected real sample with reason ``source:unreadable``.
    """

    Params = ImageFolderParams

    def rows(self, ctx: Context) -> Iterator[tuple[Sample, bytes | None]]:
        root = Path(self.params.path).expanduser()
        if not root.is_dir():
            raise InputError(f"source {self.name!r}: path {str(root)!r} is not a folder. Expected ROOT/<label>/<image files>.")
        layouts = [(root / folder, split) for folder, split in (self.params.splits or {}).items()] or [(root, "train")]
        for base, split in layouts:
            if not base.is_dir():
                raise InputError(f"source {self.name!r}: split folder {str(base)!r} does not exist (from 'splits').")
            classes = sorted(d for d in base.iterdir() if d.is_dir() and not d.name.startswith("."))
            if not classes:
                raise InputError(f"source {self.name!r}: {str(base)!r} has no class sub-folders. Expected {base}/<label>/<image files>.")
            for cls_dir in classes:
                for f in sorted(cls_dir.rglob("*")):
                    if f.suffix.lower() not in IMAGE_SUFFIXES or not f.is_file():
                        continue
                    rel_src = f.relative_to(root).as_posix()
                    sid = f"{self.name}-{sha256_text(rel_src)[:12]}"
                    s = Sample(
                        id=sid, modality="image", origin="real", label=cls_dir.name, split=split, path=rel_src, uri=f.resolve().as_uri()
                    )
                    yield s, f.read_bytes()
