"""Contract-test parameters of the text generators, and the tiny in-code language models the text
tests share (built once per session under a fixed seed, saved with save_pretrained, loaded back
through the generator like any local model)."""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FIXTURE_TOKENIZER = ROOT / "tests" / "fixtures" / "tokenizer"
SHIPPED_MODEL = ROOT / "models" / "intents-gpt2"
CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}\n{% endfor %}{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
# the shipped model's formats (models/intents-gpt2/synth_model.json)
GPT2_LABEL = {"template": "Intent: {label}\n{shots}Example:", "shot_template": "Example: {text}\n", "n_per_prompt": 1, "stop": ["\n"]}
GPT2_PARAPHRASE = {"template": "Paraphrase: {source_text}\nIntent: {label}\nExample:", "shots": 0, "n_per_prompt": 1, "stop": ["\n"]}


@functools.cache
def _work() -> Path:
    """One temporary folder per test session for the cached tiny models."""
    path = Path(tempfile.mkdtemp(prefix="synth-tiny-lm-"))
    atexit.register(shutil.rmtree, path, True)
    return path


def load_tokenizer(chat_template: str | None = None):
    """The tiny test tokenizer (tests/fixtures/tokenizer: byte-level BPE, 400 tokens, eos = pad = id 0)."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(FIXTURE_TOKENIZER)
    tok.chat_template = chat_template
    return tok


def build_tiny_lm(
    out: Path, arch: str = "gpt2", chat_template: str | None = None, seed: int = 0, suppress_all_but_eos: bool = False
) -> Path:
    """A randomly initialised GPT-2 or Llama at a tiny size, saved (safetensors) with its tokenizer."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    tok = load_tokenizer(chat_template)
    ids = {"bos_token_id": tok.eos_token_id, "eos_token_id": tok.eos_token_id}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if arch == "gpt2":
            model = GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_positions=256, n_embd=32, n_layer=2, n_head=2, **ids))
        elif arch == "llama":
            cfg = LlamaConfig(
                vocab_size=len(tok),
                hidden_size=32,
                intermediate_size=64,
                num_hidden_layers=2,
                num_attention_heads=4,
                num_key_value_heads=2,
                max_position_embeddings=256,
                **ids,
            )
            model = LlamaForCausalLM(cfg)
        else:
            raise ValueError(arch)
    if suppress_all_but_eos:  # a model that can only end the text at once: every answer is empty
        model.generation_config.suppress_tokens = [i for i in range(len(tok)) if i != tok.eos_token_id]
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


@functools.cache
def tiny_lm_dir(arch: str = "gpt2", chat: bool = False) -> Path:
    """Session-cached tiny model folder."""
    return build_tiny_lm(_work() / f"{arch}{'-chat' if chat else ''}", arch, CHAT_TEMPLATE if chat else None)


def _llm(tmp_path):
    return {"model": str(tiny_lm_dir()), "num_per_label": 2, "batch_size": 3, "max_new_tokens": 8, "shots": 1, **GPT2_LABEL}


EXAMPLES = {
    "llm": _llm,
    "text_augment": lambda tmp_path: {"num_per_parent": 2, "ops": ["delete", "swap", "insert", "char_noise"], "ops_per_variant": 2},
}
