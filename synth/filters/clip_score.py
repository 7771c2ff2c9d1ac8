"""Text-image alignment: CLIPScore of a generated image against the prompt it was made from.

CLIPScore (Hessel et al. 2021, as in torchmetrics): ``100 * max(cos(image, text), 0)`` with
CLIP's L2-normalised image and text embeddings, loaded through transformers' CLIP classes.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from synth.filters._base import QualityFilter, Rule, load_images
from synth.registry import register
from synth.sample import Sample
from synth.steps import Context, Params, Resources


class ClipScoreParams(Params):
    model: str = Field(description="CLIP folder (save_pretrained, safetensors) or Hub id, e.g. openai/clip-vit-base-patch32")
    text_template: str | None = Field(
        None, description="text to compare with when a sample has no prompt, e.g. 'a photo of the digit {label}'"
    )
    use_prompt: bool = Field(True, description="compare with the sample's prompt when it has one")
    min_score: float | None = Field(20.0, ge=0, le=100, description="reject images whose CLIPScore is below this")
    batch_size: int = Field(32, ge=1, description="images per forward pass")
    device: str = Field("cpu", description="torch device")


@register("clip_score")
class ClipScore(QualityFilter):
    """Rejects generated images that do not match their prompt (CLIPScore below ``min_score``).

    Reads: the image payload; ``prompt`` (or ``text_template`` filled with ``label``).
    Writes: score ``<name>.clip_score`` (0..100); none for a sample with no text to compare.
    Drops: ``filter:<name>.misaligned``.
    Example: ``{type: clip_score, model: openai/clip-vit-base-patch32, min_score: 22}``
    """

    Params = ClipScoreParams
    modality: ClassVar = "image"
    default_resources: ClassVar[Resources] = Resources(cpus=1)
    batch_size: ClassVar[int] = 64
    decision_params: ClassVar[frozenset[str]] = frozenset({"min_score"})

    def rules(self) -> list[Rule]:
        return [Rule("clip_score", ">=", self.params.min_score, "misaligned")]

    def setup(self, ctx: Context) -> None:
        from synth.embeddings import clip_encoder

        self._enc = clip_encoder(self.params.model, self.params.device)
        self.record_model(ctx, self._enc.model_id, self._enc.revision)

    def teardown(self) -> None:
        self.__dict__.pop("_enc", None)

    def text_for(self, sample: Sample) -> str | None:
        if self.params.use_prompt and sample.prompt:
            return sample.prompt
        if self.params.text_template is not None:
            return self.params.text_template.replace("{label}", sample.label or "")
        return None

    def compute(self, samples: list[Sample], ctx: Context) -> list[dict[str, float]]:
        if not hasattr(self, "_enc"):
            from synth.errors import InputError

            raise InputError(f"step {self.name!r}: call setup(ctx) before scoring (it loads CLIP).")
        texts = [self.text_for(s) for s in samples]
        with_text = [i for i, t in enumerate(texts) if t is not None]
        images = dict(zip(with_text, load_images([samples[i] for i in with_text], ctx.run_dir)))
        todo = [i for i in with_text if images[i] is not None]
        out: list[dict[str, float]] = [{} for _ in samples]
        if not todo:
            return out
        bs = self.params.batch_size
        img = self._enc.encode_images([images[i] for i in todo], bs)
        txt = self._enc.encode_texts([texts[i] for i in todo], bs)
        cos = (img * txt).sum(axis=1)
        for i, c in zip(todo, cos):
            out[i] = {"clip_score": 100.0 * max(float(c), 0.0)}
        return out
