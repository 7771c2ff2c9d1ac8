"""Perplexity of synthetic text under a reference causal language model.

Any ``AutoModelForCausalLM.from_pretrained`` folder or Hub id (safetensors only, no remote code).
Texts are scored in padded batches; each text's perplexity is ``exp`` of its mean token negative
log-likelihood, with the tokenizer's BOS token prepended (when it has one) so that the first word
is predicted too. An optional ``prefix`` (e.g. the generator's prompt format, with ``{label}``)
conditions the model without being scored: a model fine-tuned on "Intent: x\nExample: text"
finds bare text far less likely than the same text in its format. Right padding leaves each text's score unchanged (up to float rounding).
"""

from __future__ import annotations

import math
from typing import ClassVar

from pydantic import Field, field_validator

from synth.filters._base import QualityFilter, Rule
from synth.registry import register
from synth.sample import Sample
from synth.steps import Context, Params, Resources


class PerplexityParams(Params):
    model: str = Field(description="causal LM folder (save_pretrained, safetensors) or Hub id")
    max_perplexity: float | None = Field(None, gt=0, description="reject texts the model finds less likely than this (None: score only)")
    min_perplexity: float | None = Field(None, gt=0, description="reject suspiciously likely texts (memorised, degenerate loops)")
    prefix: str = Field(
        "", description="conditioning text before each sample, not scored; {label} is replaced (e.g. the LM's prompt format)"
    )
    text_template: str = Field("{text}", description="the scored part; {text} is replaced (e.g. ' {text}' after a prefix ending in ':')")
    batch_size: int = Field(16, ge=1, description="texts per forward pass")
    max_length: int = Field(256, ge=2, description="tokens scored per text (longer texts are truncated)")
    device: str = Field("cpu", description="torch device")
    dtype: str = Field("float32", description="torch dtype of the model: float32, float16 or bfloat16")

    @field_validator("text_template")
    @classmethod
    def _has_text(cls, v: str) -> str:
        if "{text}" not in v:
            raise ValueError("text_template must contain {text}")
        return v


@register("perplexity")
class Perplexity(QualityFilter):
    """Scores each text by its perplexity under a reference LM; rejects outside [min, max].

    Reads: ``text``.
    Writes: scores ``<name>.perplexity`` and ``<name>.tokens`` (tokens scored).
    Drops: ``filter:<name>.high_perplexity`` / ``low_perplexity``.
    Example: ``{type: perplexity, model: models/intents-gpt2, prefix: "Intent: {label}\\nExample:", text_template: " {text}",
    max_perplexity: 500}``
    """

    Params = PerplexityParams
    modality: ClassVar = "text"
    default_resources: ClassVar[Resources] = Resources(cpus=1)
    decision_params: ClassVar[frozenset[str]] = frozenset({"max_perplexity", "min_perplexity"})

    def rules(self) -> list[Rule]:
        return [
            Rule("perplexity", "<=", self.params.max_perplexity, "high_perplexity"),
            Rule("perplexity", ">=", self.params.min_perplexity, "low_perplexity"),
        ]

    def setup(self, ctx: Context) -> None:
        from synth.embeddings import _torch, load_pretrained, model_revision

        torch = _torch()
        from transformers import AutoModelForCausalLM, AutoTokenizer

        p = self.params
        dtype = getattr(torch, p.dtype, None)
        if not isinstance(dtype, torch.dtype):
            from synth.errors import ConfigError

            raise ConfigError(f"step {self.name!r}: dtype {p.dtype!r} is not a torch dtype. Valid options: float32, float16, bfloat16.")
        self._tok = load_pretrained(AutoTokenizer, p.model, "a tokenizer")
        self._lm = (
            load_pretrained(
                AutoModelForCausalLM, p.model, "a causal language model", use_safetensors=True, trust_remote_code=False, dtype=dtype
            )
            .to(p.device)
            .eval()
        )
        self.record_model(ctx, p.model, model_revision(p.model, self._lm))

    def teardown(self) -> None:
        self.__dict__.pop("_lm", None)
        self.__dict__.pop("_tok", None)

    def _ids(self, sample: Sample) -> tuple[list[int], int]:
        """Token ids of BOS + prefix + text, and how many leading ids are context (not scored)."""
        tok, p = self._tok, self.params
        bos = tok.bos_token_id if tok.bos_token_id is not None else tok.cls_token_id
        context = [bos] if bos is not None else []
        if p.prefix:
            context += tok(p.prefix.replace("{label}", sample.label or ""), add_special_tokens=False)["input_ids"]
        text = p.text_template.replace("{text}", sample.text or "") if sample.text else ""
        ids = context + tok(text, add_special_tokens=False)["input_ids"]
        return ids[: p.max_length], max(len(context), 1)

    def compute(self, samples: list[Sample], ctx: Context) -> list[dict[str, float]]:
        import torch

        if not hasattr(self, "_lm"):
            from synth.errors import InputError

            raise InputError(f"step {self.name!r}: call setup(ctx) before scoring (it loads the model).")
        out: list[dict[str, float]] = []
        p = self.params
        dev = torch.device(p.device)
        for i in range(0, len(samples), p.batch_size):
            seqs = [self._ids(s) for s in samples[i : i + p.batch_size]]
            width = max(len(x) for x, _ in seqs)
            ids = torch.zeros((len(seqs), width), dtype=torch.long)
            mask = torch.zeros((len(seqs), width), dtype=torch.long)
            scored = torch.zeros((len(seqs), width), dtype=torch.long)
            for r, (x, n_context) in enumerate(seqs):  # right padding: causal attention never sees the pad
                ids[r, : len(x)] = torch.tensor(x, dtype=torch.long)
                mask[r, : len(x)] = 1
                scored[r, n_context : len(x)] = 1
            with torch.inference_mode():
                logits = self._lm(input_ids=ids.to(dev), attention_mask=mask.to(dev)).logits.float()
            logp = torch.log_softmax(logits[:, :-1], dim=-1)
            target = ids[:, 1:].to(dev)
            nll = -logp.gather(-1, target.unsqueeze(-1)).squeeze(-1)
            m = scored[:, 1:].to(dev).float()  # token t is predicted at position t-1
            for r in range(len(seqs)):
                n = int(m[r].sum().item())
                if n == 0:
                    out.append({"tokens": 0.0})  # nothing to predict: no perplexity
                    continue
                mean = float((nll[r] * m[r]).sum().item() / n)
                out.append({"perplexity": math.exp(min(mean, 700.0)), "tokens": float(n)})
        return out
