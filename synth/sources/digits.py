"""scikit-learn's digits: 1,797 real 8x8 grayscale images of 10 classes, shipped with the package."""

from __future__ import annotations

from collections.abc import Iterator

from pydantic import Field

from synth.registry import register
from synth.sample import Sample
from synth.sources._base import RealSource, SourceParams, png_bytes
from synth.splits import digits_split
from synth.steps import Context


class DigitsParams(SourceParams):
    eval_fraction: float | None = Field(0.3, ge=0, lt=1)


@register("digits")
class DigitsSource(RealSource):
    """The offline demo image dataset.

    Writes: image samples labelled "0".."9", ``uri`` ``sklearn://digits/<index>``, payload PNGs
    (8x8, mode L, 0..255) under ``data/<name>/``. With the defaults (eval_fraction 0.3, split_seed
    0) the split is the one the shipped digits diffusion model was trained on (train rows only).

    Example: ``{type: digits, max_per_label: 20}``
    """

    Params = DigitsParams
    resplit = False  # digits_split is the canonical split

    def rows(self, ctx: Context) -> Iterator[tuple[Sample, bytes | None]]:
        from PIL import Image

        p = self.params
        images, labels, is_eval = digits_split(p.eval_fraction or 0.0, p.split_seed)
        for i, (img, lab, ev) in enumerate(zip(images, labels, is_eval, strict=True)):
            sid = f"{self.name}-{i:05d}"
            s = Sample(
                id=sid, modality="image", origin="real", label=str(int(lab)), split="eval" if ev else "train", uri=f"sklearn://digits/{i}"
            )
            yield s, png_bytes(Image.fromarray(img, mode="L"))
