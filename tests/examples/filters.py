"""Test parameters for the quality filters, and the tiny models their tests share.

The tiny models (CLIP, GPT-2, ViT and BERT classifiers) are real transformers classes built in
code under a fixed seed, saved once per test session with ``save_pretrained`` into a temporary
folder, and loaded by the filters through the same ``from_pretrained`` path as a Hub model. The
tokenizer is the tiny CLIP tokenizer in tests/fixtures/clip_tokenizer.
"""

from __future__ import annotations

import atexit
import json
import shutil
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
TOKENIZER = ROOT / "tests" / "fixtures" / "clip_tokenizer"
_MODELS: dict[str, Path] = {}
_DIR: list[Path] = []


def _models_dir() -> Path:
    if not _DIR:
        d = Path(tempfile.mkdtemp(prefix="synth-test-models-"))
        atexit.register(shutil.rmtree, d, True)
        _DIR.append(d)
    return _DIR[0]


def _tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(TOKENIZER))


def _cached(name: str, build) -> str:
    if name not in _MODELS:
        import torch

        out = _models_dir() / name
        torch.manual_seed(0)
        build(out)
        _MODELS[name] = out
    return str(_MODELS[name])


def tiny_clip() -> str:
    """A CLIPModel (32-px images, 16-dim projection) with the tiny tokenizer and a CLIP image processor."""

    def build(out: Path) -> None:
        from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

        tok = _tokenizer()
        cfg = CLIPConfig(
            text_config={
                "vocab_size": len(tok),
                "hidden_size": 32,
                "intermediate_size": 37,
                "num_attention_heads": 4,
                "num_hidden_layers": 2,
                "max_position_embeddings": 77,
                "bos_token_id": tok.bos_token_id,
                "eos_token_id": tok.eos_token_id,
                "pad_token_id": tok.pad_token_id,
            },
            vision_config={
                "image_size": 32,
                "patch_size": 8,
                "hidden_size": 32,
                "intermediate_size": 37,
                "num_attention_heads": 4,
                "num_hidden_layers": 2,
                "num_channels": 3,
            },
            projection_dim=16,
        )
        CLIPModel(cfg).eval().save_pretrained(out)
        CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(out)
        tok.save_pretrained(out)

    return _cached("clip", build)


def tiny_gpt2(train_text: str = "a photo of the digit seven", steps: int = 15) -> str:
    """A 2-layer GPT-2 over the tiny tokenizer, trained for a few steps on ``train_text`` so that
    text has a low perplexity and a shuffled version a high one."""

    def build(out: Path) -> None:
        import torch
        from transformers import GPT2Config, GPT2LMHeadModel

        tok = _tokenizer()
        model = GPT2LMHeadModel(
            GPT2Config(
                vocab_size=len(tok),
                n_embd=32,
                n_layer=2,
                n_head=2,
                n_positions=64,
                bos_token_id=tok.bos_token_id,
                eos_token_id=tok.eos_token_id,
            )
        )
        ids = torch.tensor([[tok.bos_token_id, *tok(train_text, add_special_tokens=False)["input_ids"]]])
        opt = torch.optim.Adam(model.parameters(), lr=3e-2)
        for _ in range(steps):
            loss = model(input_ids=ids, labels=ids).loss
            opt.zero_grad()
            loss.backward()
            opt.step()
        model.eval().save_pretrained(out)
        tok.save_pretrained(out)

    return _cached("gpt2", build)


def tiny_vit_classifier() -> str:
    """A ViT image classifier with labels 'sfw' / 'nsfw' (16-px inputs)."""

    def build(out: Path) -> None:
        from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

        cfg = ViTConfig(
            image_size=16,
            patch_size=8,
            hidden_size=16,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=16,
            num_labels=2,
            id2label={0: "sfw", 1: "nsfw"},
            label2id={"sfw": 0, "nsfw": 1},
        )
        ViTForImageClassification(cfg).eval().save_pretrained(out)
        ViTImageProcessor(size={"height": 16, "width": 16}).save_pretrained(out)

    return _cached("vit", build)


def tiny_text_classifier() -> str:
    """A BERT sequence classifier with labels 'ok' / 'toxic' over the tiny tokenizer."""

    def build(out: Path) -> None:
        from transformers import BertConfig, BertForSequenceClassification

        tok = _tokenizer()
        cfg = BertConfig(
            vocab_size=len(tok),
            hidden_size=16,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=16,
            max_position_embeddings=80,
            pad_token_id=tok.pad_token_id,
            num_labels=2,
            id2label={0: "ok", 1: "toxic"},
            label2id={"ok": 0, "toxic": 1},
        )
        BertForSequenceClassification(cfg).eval().save_pretrained(out)
        tok.save_pretrained(out)

    return _cached("bert", build)


def digits_reference(tmp_path: Path, per_label: int = 3) -> str:
    """A run-like dir holding real digits in state/sources.parquet (payloads beside it)."""
    from synth.manifest import samples_to_table, write_table
    from synth.sources.digits import DigitsSource
    from synth.steps import Context

    ref = tmp_path / "ref"
    rows = list(DigitsSource(max_per_label=per_label).read(Context(run_dir=ref)))
    write_table(samples_to_table(rows, "ref"), ref / "state" / "sources.parquet")
    return str(ref)


def texts_reference(tmp_path: Path) -> str:
    """The conftest texts as a reference .jsonl (text, label)."""
    from conftest import TEXTS

    p = tmp_path / "ref_texts.jsonl"
    p.write_text("".join(json.dumps({"text": t, "label": lab}) + "\n" for lab, ts in TEXTS.items() for t in ts))
    return str(p)


EXAMPLES = {
    "text_quality": lambda tmp_path: {"min_words": 4},
    "pii": lambda tmp_path: {"action": "redact"},
    "image_quality": lambda tmp_path: {"min_sharpness": 500.0, "min_contrast": 0.1},
    "text_label_consistency": lambda tmp_path: {"reference": texts_reference(tmp_path), "method": "knn", "k": 2},
    "image_label_consistency": lambda tmp_path: {"reference": digits_reference(tmp_path)},
    "perplexity": lambda tmp_path: {"model": tiny_gpt2(), "max_perplexity": 1000.0, "batch_size": 4},
    "clip_score": lambda tmp_path: {"model": tiny_clip(), "text_template": "a photo of the digit {label}", "min_score": 1.0},
    "model_scorer": lambda tmp_path: {"model": tiny_vit_classifier(), "task": "image-classification", "labels": ["nsfw"], "max_score": 0.9},
}


def _images(ctx):
    from conftest import real_image_samples

    return real_image_samples(ctx, per_label=1)


def _texts_with_pii(ctx):
    from conftest import real_text_samples

    rows = real_text_samples()
    return [*rows, rows[0].copy(id="pii-0", text="mail me at jane.doe@example.com or call +1 415 555 0100")]


INPUTS = {
    "model_scorer": _images,
    "pii": _texts_with_pii,
}
