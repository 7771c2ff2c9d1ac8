"""Image quality: size and aspect ratio, blur (variance of the Laplacian), exposure and contrast.

All scores are pure numpy functions of the decoded pixels (synth.filters._scores). Blur is
scale-dependent: the defaults suit photos of a few hundred pixels (Laplacian variance >= 100 is
the usual rule for "sharp"); tiny images such as the 8x8 digits need their own thresholds (the
smoke pipeline sets them).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from pydantic import Field

from synth.filters import _scores as S
from synth.filters._base import QualityFilter, Rule
from synth.registry import register
from synth.sample import Sample
from synth.steps import Context, Params


class ImageQualityParams(Params):
    min_width: int | None = Field(8, ge=1, description="reject images narrower than this (pixels)")
    min_height: int | None = Field(8, ge=1, description="reject images lower than this (pixels)")
    max_width: int | None = Field(None, ge=1, description="reject images wider than this")
    max_height: int | None = Field(None, ge=1, description="reject images taller than this")
    max_aspect: float | None = Field(4.0, ge=1, description="reject images whose long side / short side exceeds this")
    min_sharpness: float | None = Field(100.0, ge=0, description="reject blurry images: variance of the Laplacian of the 0..255 luminance")
    min_brightness: float | None = Field(0.03, ge=0, le=1, description="reject too dark images: mean luminance (0..1)")
    max_brightness: float | None = Field(0.97, ge=0, le=1, description="reject too bright images: mean luminance (0..1)")
    min_contrast: float | None = Field(0.02, ge=0, le=1, description="reject near-constant images: luminance standard deviation (0..1)")


@register("image_quality")
class ImageQuality(QualityFilter):
    """Rejects unreadable, tiny, stretched, blurry, blank, too dark or too bright images.

    Reads: the image payload (``path`` relative to the run dir).
    Writes: scores ``<name>.width``, ``.height``, ``.aspect``, ``.sharpness``, ``.brightness``,
    ``.contrast``; ``.readable`` (0 when the payload cannot be decoded).
    Drops: ``filter:<name>.unreadable`` / ``too_small`` / ``too_large`` / ``aspect`` / ``low_contrast`` /
    ``too_dark`` / ``too_bright`` / ``blurry``.
    Example (8x8 digits): ``{type: image_quality, min_sharpness: 500, min_contrast: 0.1}``
    """

    Params = ImageQualityParams
    modality: ClassVar = "image"
    batch_size: ClassVar[int] = 256
    decision_params: ClassVar[frozenset[str]] = frozenset(ImageQualityParams.model_fields)

    def rules(self) -> list[Rule]:
        p = self.params
        return [
            Rule("readable", ">=", 1, "unreadable"),
            Rule("width", ">=", p.min_width, "too_small"),
            Rule("height", ">=", p.min_height, "too_small"),
            Rule("width", "<=", p.max_width, "too_large"),
            Rule("height", "<=", p.max_height, "too_large"),
            Rule("aspect", "<=", p.max_aspect, "aspect"),
            Rule("contrast", ">=", p.min_contrast, "low_contrast"),
            Rule("brightness", ">=", p.min_brightness, "too_dark"),
            Rule("brightness", "<=", p.max_brightness, "too_bright"),
            Rule("sharpness", ">=", p.min_sharpness, "blurry"),
        ]

    def compute(self, samples: list[Sample], ctx: Context) -> list[dict[str, float]]:
        out = []
        for s in samples:
            try:
                img = s.load_image(ctx.run_dir)
                arr = np.asarray(img if img.mode in ("L", "LA", "RGB", "RGBA") else img.convert("RGB"))
            except (OSError, ValueError, SyntaxError):
                out.append({"readable": 0.0})
                continue
            out.append({"readable": 1.0, **S.image_stats(arr)})
        return out
