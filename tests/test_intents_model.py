"""The shipped intents data, the intents-gpt2 model and the fixture tokenizer.

Everything here is read from the repository (no downloads); the whole file runs in seconds.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data" / "intents"
MODEL = ROOT / "models" / "intents-gpt2"
FIXTURE_TOKENIZER = ROOT / "tests" / "fixtures" / "tokenizer"
EOS = "<|endoftext|>"


def _rows(split: str) -> list[dict]:
    with open(DATA / f"{split}.jsonl", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def _normalize(text: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"[^\w\s]", "", text.lower())).strip()


def _shingles(text: str, n: int = 5) -> set[str]:
    s = _normalize(text)
    return {s[i : i + n] for i in range(max(1, len(s) - n + 1))}


# ----------------------------------------------------------------------------- data
@pytest.mark.parametrize("split", ["train", "eval"])
def test_rows_are_well_formed(split):
    rows = _rows(split)
    assert rows
    for k, row in enumerate(rows, start=1):
        assert set(row) == {"id", "text", "label"}
        assert row["id"] == f"intents-{split}-{k:04d}"
        assert row["text"] == row["text"].strip() and "\n" not in row["text"]
        assert 3 <= len(row["text"].split()) <= 30
        assert re.fullmatch(r"[a-z_]+", row["label"])


def test_label_counts_and_stratification():
    train, eval_ = Counter(r["label"] for r in _rows("train")), Counter(r["label"] for r in _rows("eval"))
    assert set(train) == set(eval_)
    assert len(train) >= 6
    for label in train:
        assert train[label] + eval_[label] >= 60, label
        share = eval_[label] / (train[label] + eval_[label])
        assert 0.2 <= share <= 0.3, (label, share)


def test_no_duplicates_and_no_train_eval_leak():
    train, eval_ = _rows("train"), _rows("eval")
    texts = [r["text"] for r in train + eval_]
    assert len({r["id"] for r in train + eval_}) == len(texts)
    assert len(set(texts)) == len(texts), "exact duplicate texts"
    assert len({_normalize(t) for t in texts}) == len(texts), "duplicates up to case/punctuation"
    train_sh = [_shingles(r["text"]) for r in train]
    for row in eval_:
        e = _shingles(row["text"])
        worst = max(len(e & t) / len(e | t) for t in train_sh)
        assert worst < 0.5, f"near-duplicate of a train text in eval: {row['text']!r}"


def test_model_card_labels_match_the_data():
    info = json.loads((MODEL / "synth_model.json").read_text())
    assert info["labels"] == sorted(set(r["label"] for r in _rows("train")), key=info["labels"].index)
    assert set(info["labels"]) == {r["label"] for r in _rows("train")}
    formats = info["prompt_formats"]
    assert formats["label_2shot"].format(label="x", ex1="a", ex2="b") == ("Intent: x\nExample: a\nExample: b\nExample:")
    assert formats["label_0shot"].format(label="x") == "Intent: x\nExample:"
    assert formats["paraphrase"].format(source_text="s", label="x") == ("Paraphrase: s\nIntent: x\nExample:")
    assert {"seed", "hparams", "train_seconds"} <= set(info["training"])


# ----------------------------------------------------------------------------- model
@pytest.fixture(scope="module")
def model_and_tokenizer():
    pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    model = transformers.AutoModelForCausalLM.from_pretrained(MODEL, use_safetensors=True)
    tokenizer = transformers.AutoTokenizer.from_pretrained(MODEL)
    return model.eval(), tokenizer


def test_model_folder_is_small_and_safetensors_only():
    files = {p.name: p.stat().st_size for p in MODEL.iterdir()}
    assert "model.safetensors" in files
    assert not any(name.endswith((".bin", ".pt", ".pth", ".pkl")) for name in files)
    assert sum(files.values()) < 5 * 1024 * 1024
    gen = json.loads((MODEL / "generation_config.json").read_text())
    assert gen["do_sample"] is True and 0.8 <= gen["temperature"] <= 1.0
    assert gen["top_p"] == 0.95 and gen["max_new_tokens"] == 40


def test_tokenizer_special_tokens(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    assert tokenizer.padding_side == "left"
    assert tokenizer.eos_token == tokenizer.pad_token == tokenizer.bos_token == EOS
    assert tokenizer.eos_token_id == model.config.eos_token_id == model.generation_config.eos_token_id
    assert tokenizer.pad_token_id == model.generation_config.pad_token_id
    assert len(tokenizer) == model.config.vocab_size
    text = "Intent: track_order\nExample: where is my parcel?"
    assert tokenizer.decode(tokenizer(text)["input_ids"]) == text


def _sample(model, tokenizer, prompts, seed, **kwargs):
    import torch

    enc = tokenizer(prompts, return_tensors="pt", padding=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a 1M-parameter model: one thread is fastest, and safe on a busy box
    try:
        torch.manual_seed(seed)
        with torch.no_grad():
            out = model.generate(**enc, max_new_tokens=20, **kwargs)
    finally:
        torch.set_num_threads(threads)
    return tokenizer.batch_decode(out[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)


def test_same_seed_same_text(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    prompts = ["Intent: refund_request\nExample:", "Intent: track_order\nExample: where is it\nExample:"]
    first = _sample(model, tokenizer, prompts, seed=7)
    assert first == _sample(model, tokenizer, prompts, seed=7)
    assert all(t.strip() for t in first)
    several = {tuple(_sample(model, tokenizer, prompts, seed=s)) for s in range(4)}
    assert len(several) > 1, "sampling ignores the seed"


def test_left_padded_batch_matches_single_prompts(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    prompts = [
        "Intent: complaint\nExample:",
        "Paraphrase: I forgot my password and the reset link never comes\nIntent: account_login\nExample:",
    ]
    batched = _sample(model, tokenizer, prompts, seed=0, do_sample=False)
    single = [_sample(model, tokenizer, [p], seed=0, do_sample=False)[0] for p in prompts]
    assert batched == single


# ----------------------------------------------------------------------------- fixture tokenizer
def test_fixture_tokenizer_loads():
    transformers = pytest.importorskip("transformers")
    tok = transformers.AutoTokenizer.from_pretrained(FIXTURE_TOKENIZER)
    assert 300 <= len(tok) <= 500
    assert tok.eos_token == tok.pad_token == EOS and tok.pad_token_id is not None
    assert tok.padding_side == "left"
    enc = tok(["hello", "the quick brown fox"], padding=True)
    assert enc["input_ids"][0][0] == tok.pad_token_id and enc["attention_mask"][0][0] == 0
    assert tok.decode(enc["input_ids"][1]) == "the quick brown fox"
    assert sum(p.stat().st_size for p in FIXTURE_TOKENIZER.iterdir()) < 100 * 1024
