"""User-provided scorers: any transformers image or text classifier, by model id or folder.

The hook for aesthetic, NSFW, toxicity or domain classifiers: the score is the probability the
classifier gives to the named labels (summed), and the sample is kept inside [min_score,
max_score]. Loaded with ``from_pretrained`` (safetensors only, no remote code); single-label
models use a softmax, multi-label ones (``problem_type: multi_label_classification``) a sigmoid.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from synth.errors import ConfigError, InputError
from synth.filters._base import QualityFilter, Rule, load_images
from synth.registry import register
from synth.sample import Sample
from synth.steps import Context, Params, Resources


class ModelScorerParams(Params):
    model: str = Field(description="classifier folder (save_pretrained, safetensors) or Hub id")
    task: Literal["image-classification", "text-classification"] = Field(description="which kind of classifier (and of sample) this is")
    labels: list[str] = Field(min_length=1, description="the classifier's label names whose probabilities are summed into the score")
    score_name: str = Field("score", pattern=r"^[A-Za-z0-9_]+$", description="name of the stored score (<step name>.<score_name>)")
    min_score: float | None = Field(None, ge=0, le=1, description="reject samples scoring below this (e.g. an aesthetic 'good' label)")
    max_score: float | None = Field(None, ge=0, le=1, description="reject samples scoring above this (e.g. an 'nsfw' label)")
    batch_size: int = Field(32, ge=1, description="samples per forward pass")
    max_length: int = Field(256, ge=2, description="tokens per text (text-classification)")
    device: str = Field("cpu", description="torch device")


@register("model_scorer")
class ModelScorer(QualityFilter):
    """Scores samples with a user-chosen classifier and keeps those inside the thresholds.

    Reads: the image payload (``task: image-classification``) or ``text``.
    Writes: score ``<name>.<score_name>``: the summed probability of ``labels``.
    Drops: ``filter:<name>.<score_name>_low`` / ``<score_name>_high``.
    Example: ``{type: model_scorer, name: nsfw, task: image-classification, model: Falconsai/nsfw_image_detection,
    labels: [nsfw], max_score: 0.5}``
    """

    Params = ModelScorerParams
    default_resources: ClassVar[Resources] = Resources(cpus=1)
    batch_size: ClassVar[int] = 64
    decision_params: ClassVar[frozenset[str]] = frozenset({"min_score", "max_score"})

    def applies_to(self, sample: Sample) -> bool:
        want = "image" if self.params.task == "image-classification" else "text"
        return sample.origin == "synthetic" and sample.modality == want

    def rules(self) -> list[Rule]:
        n = self.params.score_name
        return [Rule(n, ">=", self.params.min_score, f"{n}_low"), Rule(n, "<=", self.params.max_score, f"{n}_high")]

    def setup(self, ctx: Context) -> None:
        from synth.embeddings import _torch, load_pretrained, model_revision

        _torch()
        import transformers as tf

        p = self.params
        if p.task == "image-classification":
            self._pre = load_pretrained(tf.AutoImageProcessor, p.model, "an image processor")
            cls = tf.AutoModelForImageClassification
        else:
            self._pre = load_pretrained(tf.AutoTokenizer, p.model, "a tokenizer")
            cls = tf.AutoModelForSequenceClassification
        self._model = load_pretrained(cls, p.model, f"an {p.task} model", use_safetensors=True, trust_remote_code=False).to(p.device).eval()
        names = {str(v): int(k) for k, v in self._model.config.id2label.items()}
        missing = [lab for lab in p.labels if lab not in names]
        if missing:
            raise ConfigError(
                f"step {self.name!r}: labels {missing} are not labels of {p.model!r}. Valid options: {', '.join(sorted(names))}."
            )
        self._idx = [names[lab] for lab in p.labels]
        self._multi = getattr(self._model.config, "problem_type", None) == "multi_label_classification"
        self.record_model(ctx, p.model, model_revision(p.model, self._model))

    def teardown(self) -> None:
        for k in ("_model", "_pre"):
            self.__dict__.pop(k, None)

    def compute(self, samples: list[Sample], ctx: Context) -> list[dict[str, float]]:
        import torch

        if not hasattr(self, "_model"):
            raise InputError(f"step {self.name!r}: call setup(ctx) before scoring (it loads the model).")
        p = self.params
        out: list[dict[str, float]] = [{} for _ in samples]
        if p.task == "image-classification":
            items = load_images(samples, ctx.run_dir)
            todo = [i for i, im in enumerate(items) if im is not None]
        else:
            items = [s.text or "" for s in samples]
            todo = list(range(len(samples)))
        for b in range(0, len(todo), p.batch_size):
            idx = todo[b : b + p.batch_size]
            if p.task == "image-classification":
                inputs = self._pre(images=[items[i].convert("RGB") for i in idx], return_tensors="pt")
            else:
                inputs = self._pre([items[i] for i in idx], padding=True, truncation=True, max_length=p.max_length, return_tensors="pt")
            with torch.inference_mode():
                logits = self._model(**{k: v.to(p.device) for k, v in inputs.items()}).logits.float()
            probs = torch.sigmoid(logits) if self._multi else torch.softmax(logits, dim=-1)
            score = probs[:, self._idx].sum(dim=-1).clamp(max=1.0).cpu().tolist()
            for i, v in zip(idx, score):
                out[i] = {p.score_name: v}
        return out
