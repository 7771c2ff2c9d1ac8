"""Text from a causal language model: label-conditioned few-shot generation, or paraphrase.

The model work sits behind a small ``Backend`` protocol (in ``_text_common``: render a chat
prompt, generate a batch of completions under a seed); :class:`TransformersBackend` is the one
implementation today, so another engine (e.g. vLLM) is one more class, not a rewrite. Prompt
rendering and output parsing are pure functions in ``_text_common``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from synth.errors import ConfigError, InputError
from synth.generators._text_common import (
    DEFAULT_SHOT_TEMPLATE,
    DEFAULT_TEMPLATES,
    SHOT_FIELDS,
    TEMPLATE_FIELDS,
    Backend,
    Completion,
    Item,
    ParseConfig,
    Sampling,
    assign_items,
    check_template,
    draw_shots,
    parse_completion,
    render_prompt,
    select_parents,
    template_fields,
)
from synth.registry import register
from synth.steps import Context, Generator, Params, Resources, Task
from synth.util import derive_seed, file_tree_hash, sha256_text

log = logging.getLogger(__name__)
ENGINES = ("transformers",)


def hub_commit(model_id: str, revision: str | None) -> str:
    """The commit hash a Hub id (and optional branch/tag) resolves to, read from the local cache or the Hub."""
    from huggingface_hub import hf_hub_download

    path = Path(hf_hub_download(model_id, "config.json", revision=revision))
    return path.parent.name if path.parent.parent.name == "snapshots" else file_tree_hash(path.parent)


class TransformersBackend:
    """``AutoModelForCausalLM`` + ``AutoTokenizer``: left-padded batches, one ``generate`` call each."""

    def __init__(self, model: str, revision: str | None = None, device: str = "cpu", dtype: str = "float32", threads: int = 1):
        try:
            import torch
            import transformers
        except ImportError as e:  # pragma: no cover - both are core dependencies
            raise ConfigError(f"the llm generator needs torch and transformers ({e}): pip install torch transformers") from None
        self.torch = torch
        local = Path(model).expanduser()
        if not local.exists() and (model.startswith((".", "/", "~")) or model.count("/") > 1):
            raise InputError(f"model: {model!r} is neither a local folder nor a Hub id (org/name); check the path.")
        if local.exists() and revision is not None:
            raise ConfigError(
                f"revision: {revision!r} applies to Hub ids only; {model!r} is a local folder (its revision is its file hash)."
            )
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise ConfigError(f"device: {device!r} but CUDA is not available on this machine; use device: cpu.")
        if device == "mps" and not torch.backends.mps.is_available():
            raise ConfigError("device: 'mps' but MPS is not available on this machine; use device: cpu.")
        src = str(local) if local.exists() else model
        kw: dict[str, Any] = {"revision": revision, "trust_remote_code": False}
        try:
            self.tokenizer = transformers.AutoTokenizer.from_pretrained(src, **kw)
            self.model = transformers.AutoModelForCausalLM.from_pretrained(src, use_safetensors=True, dtype=getattr(torch, dtype), **kw)
        except (OSError, ValueError) as e:
            raise InputError(
                f"model: cannot load {model!r} as a causal LM with safetensors weights ({str(e).splitlines()[0]}). Pass a local "
                "folder written by save_pretrained (safetensors) or a Hub id available on this machine."
            ) from None
        self.model.to(device).eval()
        self.device, self.threads = device, threads
        self.model_revision = file_tree_hash(local) if local.exists() else hub_commit(model, revision)
        tok = self.tokenizer
        tok.padding_side = "left"
        if tok.pad_token_id is None:
            if tok.eos_token_id is None:
                raise InputError(f"model: the tokenizer of {model!r} has neither a pad nor an eos token, so batches cannot be padded.")
            tok.pad_token = tok.eos_token
        gc = self.model.generation_config
        if gc.eos_token_id is None and tok.eos_token_id is not None:
            gc.eos_token_id = tok.eos_token_id
        eos = gc.eos_token_id if gc.eos_token_id is not None else []
        self.end_ids = {*([eos] if isinstance(eos, int) else eos), tok.pad_token_id}
        self.has_chat_template = bool(getattr(tok, "chat_template", None))
        limit = getattr(self.model.config, "max_position_embeddings", None)
        self.max_positions = limit if isinstance(limit, int) else None
        self._stops: dict[tuple[str, ...], Any] = {}
        log.info("loaded %s (%s) on %s/%s", model, self.model_revision, device, dtype)

    def chat_prompt(self, prompt: str, system_prompt: str | None) -> str:
        messages = ([{"role": "system", "content": system_prompt}] if system_prompt else []) + [{"role": "user", "content": prompt}]
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def encode(self, prompts: list[str], chat: bool):
        # a chat-formatted prompt already holds its special tokens (BOS etc.)
        return self.tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=not chat).to(self.device)

    def generate_kwargs(self, sampling: Sampling) -> dict[str, Any]:
        kw: dict[str, Any] = {
            "max_new_tokens": sampling.max_new_tokens,
            "do_sample": sampling.do_sample,
            "repetition_penalty": sampling.repetition_penalty,
            "pad_token_id": self.tokenizer.pad_token_id,
        }
        if sampling.do_sample:
            kw.update(temperature=sampling.temperature, top_p=sampling.top_p, top_k=sampling.top_k)
        if sampling.stop:
            kw["stopping_criteria"] = self.stop_criteria(sampling.stop)
        return kw

    def stop_criteria(self, stop: tuple[str, ...]):
        """Built once per stop list (``stop_strings=`` would rebuild the vocabulary tables on every call)."""
        if stop not in self._stops:
            from transformers import StoppingCriteriaList, StopStringCriteria

            self._stops[stop] = StoppingCriteriaList([StopStringCriteria(self.tokenizer, list(stop))])
        return self._stops[stop]

    def count_new_tokens(self, new_ids) -> list[int]:
        """Generated tokens per row, up to the first end-of-sequence or pad token."""
        return [next((i for i, t in enumerate(row) if t in self.end_ids), len(row)) for row in new_ids.tolist()]

    @contextmanager
    def seeded(self, seed: int):
        """Seed torch and set its CPU threads for one call, restoring the caller's RNG state and threads."""
        dev, torch = self.torch.device(self.device), self.torch
        devices = [dev.index or 0] if dev.type in ("cuda", "mps") else []
        before = torch.get_num_threads()
        torch.set_num_threads(self.threads)  # more threads than the step's cpus thrash on small models
        try:
            with torch.random.fork_rng(devices=devices, device_type=dev.type if dev.type != "cpu" else None):
                torch.manual_seed(seed)
                yield
        finally:
            torch.set_num_threads(before)

    def generate(self, prompts: list[str], sampling: Sampling, seed: int, chat: bool) -> list[Completion | None]:
        """One ``model.generate`` call for the prompts that fit the context; None for the others."""
        enc = self.encode(prompts, chat)
        fits = [True] * len(prompts)
        if self.max_positions is not None:
            fits = [n + sampling.max_new_tokens <= self.max_positions for n in enc["attention_mask"].sum(1).tolist()]
            if not any(fits):
                return [None] * len(prompts)
            if not all(fits):
                enc = self.encode([q for q, ok in zip(prompts, fits, strict=True) if ok], chat)
        with self.torch.inference_mode(), self.seeded(seed):
            out = self.model.generate(**enc, **self.generate_kwargs(sampling))
        new = out[:, enc["input_ids"].shape[1] :].cpu()
        texts = self.tokenizer.batch_decode(new, skip_special_tokens=True)
        made = iter([Completion(t, n) for t, n in zip(texts, self.count_new_tokens(new), strict=True)])
        return [next(made) if ok else None for ok in fits]

    def close(self) -> None:
        del self.model
        if self.device.startswith("cuda"):
            self.torch.cuda.empty_cache()


def make_backend(p: LLMParams, threads: int) -> Backend:
    if p.engine == "transformers":
        return TransformersBackend(p.model, p.revision, p.device, p.dtype, threads)
    raise ConfigError(f"engine: {p.engine!r} is not implemented; valid engines: {', '.join(ENGINES)}.")  # unreachable: validated


class LLMParams(Params):
    model: str = Field(description="Hub id or local folder loadable with AutoModelForCausalLM.from_pretrained (safetensors)")
    revision: str | None = Field(None, description="Hub branch, tag or commit (Hub ids only)")
    engine: str = Field("transformers", description="inference backend; only 'transformers' exists today")
    device: str = Field("cpu", pattern=r"^(cpu|cuda(:\d+)?|mps)$", description="cpu, cuda, cuda:N or mps")
    dtype: Literal["float32", "float16", "bfloat16"] = "float32"
    mode: Literal["label", "paraphrase"] = Field("label", description="label: new texts per label; paraphrase: rewrite real samples")
    num_per_label: int = Field(10, ge=1, description="label mode: samples per label")
    labels: list[str] | None = Field(None, description="label mode: only these labels (default: every label of the real train split)")
    parents_per_label: int | None = Field(None, ge=1, description="paraphrase mode: real parents per label, seeded choice (default: all)")
    num_per_parent: int = Field(1, ge=1, description="paraphrase mode: samples per real parent")
    n_per_prompt: int = Field(5, ge=1, le=100, description="samples asked for in one prompt ({n}); the answer is split into items")
    template: str | None = Field(None, description="prompt template; fields {label} {n} {shots} (+ {source_text} in paraphrase mode)")
    shot_template: str = Field(DEFAULT_SHOT_TEMPLATE, description="one few-shot example; fields {text} {label} {i}")
    shots: int = Field(3, ge=0, le=32, description="few-shot examples of the same label drawn (seeded) from the real train split")
    chat_template: Literal["auto", "always", "never"] = Field("auto", description="wrap the prompt in the tokenizer's chat template")
    system_prompt: str | None = Field(None, description="system message (chat template only)")
    batch_size: int = Field(8, ge=1, description="prompts per generate call")
    do_sample: bool = True
    temperature: float = Field(0.9, gt=0)
    top_p: float = Field(0.95, gt=0, le=1)
    top_k: int = Field(50, ge=0, description="0 disables top-k")
    max_new_tokens: int = Field(128, ge=1)
    repetition_penalty: float = Field(1.0, gt=0)
    stop: list[str] = Field(default_factory=list, description="stop strings: generation and parsing cut there")
    split: Literal["lines", "none"] = Field("lines", description="lines: one item per non-empty line; none: the whole answer is one item")
    max_chars: int = Field(300, ge=1, description="items longer than this (after cleaning) are rejected as generate:too_long")
    item_prefixes: list[str] = Field(["Example:"], description="prefixes stripped from the start of each item")
    skip_header_lines: bool = Field(True, description="drop preamble lines ending with ':' (e.g. 'Here are 5 examples:')")

    @field_validator("engine")
    @classmethod
    def _engine(cls, v: str) -> str:
        if v == "vllm":
            raise ValueError("engine 'vllm' is not implemented yet; use engine: transformers")
        if v not in ENGINES:
            raise ValueError(f"unknown engine {v!r}; valid engines: {', '.join(ENGINES)}")
        return v

    @model_validator(mode="after")
    def _templates(self) -> LLMParams:
        template = self.resolved_template
        check_template(template, TEMPLATE_FIELDS[self.mode], "template", required=("source_text",) if self.mode == "paraphrase" else ())
        check_template(self.shot_template, SHOT_FIELDS, "shot_template", required=("text",))
        if self.shots and "shots" not in template_fields(template):
            raise ValueError(f"template has no {{shots}} field but shots={self.shots}; add {{shots}} to the template or set shots: 0")
        if self.split == "none" and self.n_per_prompt != 1:
            raise ValueError("split: none keeps the whole answer as one item, so n_per_prompt must be 1")
        if self.system_prompt and self.chat_template == "never":
            raise ValueError("system_prompt needs a chat template; remove it or set chat_template: auto/always")
        return self

    @property
    def resolved_template(self) -> str:
        return self.template if self.template is not None else DEFAULT_TEMPLATES[self.mode]

    def sampling(self) -> Sampling:
        return Sampling(
            self.do_sample, self.temperature, self.top_p, self.top_k, self.max_new_tokens, self.repetition_penalty, tuple(self.stop)
        )

    def parse_config(self) -> ParseConfig:
        return ParseConfig(tuple(self.stop), self.split, self.max_chars, tuple(self.item_prefixes), self.skip_header_lines)


def _chunks(total: int, size: int) -> list[int]:
    return [min(size, total - i) for i in range(0, total, size)]


@register("llm")
class LLMGenerator(Generator):
    """Generates text with a causal LM: few-shot per label, or paraphrases of real samples.

    Reads: kept real train text samples (their labels; few-shot examples; parents in paraphrase mode).
    Writes: text samples with ``prompt`` (the full prompt, chat template applied), ``model``,
    ``model_revision`` (Hub commit or local file hash), ``seed`` (the seed of the generate call that
    made it) and ``params`` (sampling settings, shot ids, batch position); ``parent_id`` in paraphrase mode.
    Resources: on CPU, torch uses ``resources.cpus`` threads while generating (default 1).
    Drops: nothing silently. A prompt asking for n samples yields exactly n rows; missing or unusable
    items are rejected ``generate:empty_output``, ``generate:too_few_items`` or ``generate:too_long``, and
    a prompt that does not fit the model's context (with ``max_new_tokens``) ``generate:prompt_too_long``.
    Example::

        - type: llm
          model: models/intents-gpt2
          template: "Intent: {label}\\n{shots}Example:"
          shot_template: "Example: {text}\\n"
          shots: 2
          n_per_prompt: 1
          stop: ["\\n"]
    """

    Params: ClassVar[type[LLMParams]] = LLMParams
    params: LLMParams
    modality: ClassVar[Literal["text"]] = "text"
    default_resources: ClassVar[Resources] = Resources(cpus=1)

    def setup(self, ctx: Context) -> None:
        if getattr(self, "backend", None) is not None:
            return
        p = self.params
        self.backend: Backend | None = make_backend(p, self.threads)
        has = self.backend.has_chat_template
        if p.chat_template == "always" and not has:
            raise ConfigError(
                f"step {self.name!r}: chat_template: always, but the tokenizer of {p.model!r} has no chat template; use auto or never."
            )
        if p.system_prompt and not has:
            raise ConfigError(f"step {self.name!r}: system_prompt needs a chat template and the tokenizer of {p.model!r} has none.")
        self.use_chat = has and p.chat_template != "never"

    @property
    def threads(self) -> int:
        """CPU threads for torch while generating: the step's declared ``resources.cpus``."""
        return max(1, int(self.resources.cpus))

    def teardown(self) -> None:
        if getattr(self, "backend", None) is not None:
            self.backend.close()
        self.backend = None

    # ---- planning: pure function of the real samples ---------------------------------------
    def plan(self, real: list, ctx: Context) -> list[Task]:
        import numpy as np

        p = self.params
        pools: dict[str | None, list] = {}
        for s in real:
            if s.text:
                pools.setdefault(s.label, []).append(s)
        tasks: list[Task] = []
        if not pools:
            return tasks
        if p.mode == "label":
            labels = p.labels or sorted(k for k in pools if k is not None)
            missing = [lb for lb in labels if lb not in pools]
            if missing:
                raise InputError(
                    f"step {self.name!r}: labels {missing} have no real train text; labels present: {sorted(k for k in pools if k)}."
                )
            jobs = [(lb, None, n) for lb in labels for n in _chunks(p.num_per_label, p.n_per_prompt)]
        else:
            rng = np.random.default_rng(derive_seed(ctx.run_seed, self.name, "parents"))
            parents = select_parents(real, p.parents_per_label, rng)
            jobs = [(par.label, par, n) for par in parents for n in _chunks(p.num_per_parent, p.n_per_prompt)]
        index = 0
        for label, parent, n in jobs:
            rng = np.random.default_rng(derive_seed(ctx.run_seed, self.name, "shots", index))
            shots = draw_shots(pools.get(label, []), p.shots, rng, exclude_id=parent.id if parent else None)
            prompt = render_prompt(
                p.resolved_template,
                label=label,
                n=n,
                shots=[s.text for s in shots],
                shot_template=p.shot_template,
                source_text=parent.text if parent else None,
            )
            tasks.append(Task(index, label, parent, {"n": n, "prompt": prompt, "shot_ids": [s.id for s in shots]}))
            index += n
        return tasks

    # ---- generation ----------------------------------------------------------------------------
    def batch_seed(self, tasks: list[Task], ctx: Context) -> int:
        return derive_seed(ctx.run_seed, self.name, "batch", tasks[0].index) & 0xFFFF_FFFF

    def generate(self, tasks: list[Task], ctx: Context) -> Iterator:
        p = self.params
        if not tasks:
            return
        if getattr(self, "backend", None) is None:
            raise RuntimeError(f"step {self.name!r}: call setup(ctx) before generate()")
        sampling, parse = p.sampling(), p.parse_config()
        for start in range(0, len(tasks), p.batch_size):
            batch = tasks[start : start + p.batch_size]
            seed = self.batch_seed(batch, ctx)
            prompts = [self.backend.chat_prompt(t.extra["prompt"], p.system_prompt) if self.use_chat else t.extra["prompt"] for t in batch]
            t0 = time.perf_counter()
            completions = self.backend.generate(prompts, sampling, seed, self.use_chat)
            done = [c for c in completions if c is not None]
            if done:
                ctx.count(self.name, "generate_calls")
                ctx.count(self.name, "generate_seconds", time.perf_counter() - t0)
                ctx.count(self.name, "prompts", len(done))
                ctx.count(self.name, "new_tokens", sum(c.new_tokens for c in done))
            row = 0
            for task, prompt, comp in zip(batch, prompts, completions, strict=True):
                batch_info = {"first_index": batch[0].index, "size": len(done), "position": row if comp is not None else None}
                row += comp is not None
                yield from self._samples(task, prompt, comp, parse, ctx, seed, batch_info)

    def _samples(
        self, task: Task, prompt: str, comp: Completion | None, parse: ParseConfig, ctx: Context, seed: int, batch: dict
    ) -> Iterator:
        p, n = self.params, task.extra["n"]
        if comp is None:  # not generated: prompt + max_new_tokens exceed the model's context
            parsed, raw = [Item("", "generate:prompt_too_long")] * n, ""
        else:
            parsed, raw = parse_completion(comp.text, parse, prompt), comp.text
        if len(parsed) > n:
            ctx.count(self.name, "items_discarded", len(parsed) - n)
        base = {"engine": p.engine, "mode": p.mode, "device": p.device, "dtype": p.dtype, "threads": self.threads}
        base |= {"chat_template": self.use_chat, "sampling": {**asdict(p.sampling()), "stop": list(p.stop)}}
        base |= {"shot_ids": task.extra["shot_ids"], "n_requested": n, "batch": batch}
        for j, item in enumerate(assign_items(parsed, n)):
            params = {**base, "item": j}
            if item.reject_reason:
                params["raw_output"] = raw[:1000]
            s = self.new_sample(
                Task(task.index + j, task.label, task.parent),
                ctx,
                text=item.text or None,
                model=p.model,
                model_revision=self.backend.model_revision,
                seed=seed,
                prompt=prompt,
                params=params,
                content_sha256=sha256_text(item.text) if item.text else None,
            )
            if item.reject_reason:
                s.reject(item.reject_reason)
                ctx.count(self.name, f"rejected_{item.reject_reason.split(':', 1)[1]}")
            yield s
