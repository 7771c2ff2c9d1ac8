"""Pure helpers of the text generators: prompt templates, few-shot and parent selection, the
backend protocol of the LLM generator, output parsing.

No model and no I/O here: every function takes strings (and an explicit ``numpy`` Generator where
randomness is involved) and is tested directly. The LLM generator renders a prompt with
:func:`render_prompt`, generates, then turns the raw completion into samples with
:func:`parse_completion`.
"""

from __future__ import annotations

import re
import string
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import numpy as np

    from synth.sample import Sample

# Defaults suit an instruct model with a chat template; the shipped GPT-2 uses its own formats
# (see pipelines/smoke.yaml and models/intents-gpt2/synth_model.json).
DEFAULT_TEMPLATES = {
    "label": (
        "Write {n} short, varied examples of a customer message with the intent '{label}'. "
        "Write one message per line, without numbering or quotes. Examples:\n{shots}"
    ),
    "paraphrase": (
        "Rewrite the customer message below in {n} different ways that keep its intent ('{label}'). "
        "Write one version per line, without numbering or quotes.\n{shots}Message: {source_text}"
    ),
}
DEFAULT_SHOT_TEMPLATE = "- {text}\n"
TEMPLATE_FIELDS = {"label": {"label", "n", "shots"}, "paraphrase": {"label", "n", "shots", "source_text"}}
SHOT_FIELDS = {"text", "label", "i"}

_NUMBERING = re.compile(r"^\s*(?:\(?\d{1,3}[.):\]]|#\d{1,3}[.:)]?|[-*•·–—+>])(?:\s+|$)")
_QUOTES = {'"': '"', "'": "'", "“": "”", "‘": "’", "«": "»", "`": "`", "„": "“"}


def template_fields(template: str) -> set[str]:
    """The ``{field}`` names a format string uses (ValueError for a malformed one)."""
    return {name.split(".")[0].split("[")[0] for _, name, _, _ in string.Formatter().parse(template) if name is not None}


def check_template(template: str, allowed: set[str], key: str, required: Iterable[str] = ()) -> None:
    """ValueError naming ``key`` when ``template`` is malformed, uses an unknown field or misses a required one."""
    try:
        fields = template_fields(template)
    except ValueError as e:
        raise ValueError(f"{key} is not a valid format string ({e}); write literal braces as '{{{{' and '}}}}'.") from None
    unknown = sorted(fields - allowed)
    if unknown or "" in fields:
        bad = ", ".join("{}" if f == "" else "{" + f + "}" for f in unknown or [""])
        raise ValueError(f"{key} uses {bad}; the fields it may use are " + ", ".join("{" + f + "}" for f in sorted(allowed)) + ".")
    missing = [f for f in required if f not in fields]
    if missing:
        raise ValueError(f"{key} must contain " + ", ".join("{" + f + "}" for f in missing) + ".")


def render_shots(texts: Sequence[str], shot_template: str, label: str | None) -> str:
    return "".join(shot_template.format(text=t, label=label or "", i=i + 1) for i, t in enumerate(texts))


def render_prompt(
    template: str,
    *,
    label: str | None,
    n: int,
    shots: Sequence[str] = (),
    shot_template: str = DEFAULT_SHOT_TEMPLATE,
    source_text: str | None = None,
) -> str:
    """The prompt for one generation call, before any chat template."""
    fields = {"label": label or "", "n": n, "shots": render_shots(shots, shot_template, label)}
    if source_text is not None:
        fields["source_text"] = source_text
    return template.format(**fields)


def draw_shots(pool: Sequence[Sample], k: int, rng: np.random.Generator, exclude_id: str | None = None) -> list[Sample]:
    """``k`` distinct samples of ``pool`` (fewer if it is smaller), drawn with ``rng``, in drawn order."""
    candidates = sorted((s for s in pool if s.id != exclude_id and s.text), key=lambda s: s.id)
    if k <= 0 or not candidates:
        return []
    picks = rng.choice(len(candidates), size=min(k, len(candidates)), replace=False)
    return [candidates[int(i)] for i in picks]


def select_parents(samples: Iterable[Sample], per_label: int | None, rng: np.random.Generator) -> list[Sample]:
    """At most ``per_label`` samples with text per label (all when None), chosen with ``rng``;
    returned ordered by (label, id) so the task list does not depend on input order."""
    groups: dict[str, list[Sample]] = defaultdict(list)
    for s in samples:
        if s.text:
            groups[s.label or ""].append(s)
    out: list[Sample] = []
    for label in sorted(groups):
        group = sorted(groups[label], key=lambda s: s.id)
        if per_label is not None and per_label < len(group):
            keep = sorted(int(i) for i in rng.choice(len(group), size=per_label, replace=False))
            group = [group[i] for i in keep]
        out.extend(group)
    return out


# ---- what an inference backend offers the LLM generator ---------------------------------------


@dataclass(frozen=True)
class Sampling:
    """Decoding settings shared by every backend (recorded in each sample's params)."""

    do_sample: bool
    temperature: float
    top_p: float
    top_k: int
    max_new_tokens: int
    repetition_penalty: float
    stop: tuple[str, ...]


@dataclass(frozen=True)
class Completion:
    text: str  # the generated text only (no prompt)
    new_tokens: int


class Backend(Protocol):
    """What the generator needs from an inference engine."""

    model_revision: str
    has_chat_template: bool

    def chat_prompt(self, prompt: str, system_prompt: str | None) -> str: ...

    def generate(self, prompts: list[str], sampling: Sampling, seed: int, chat: bool) -> list[Completion | None]:
        """One batched call under ``seed``; None for a prompt that does not fit the model's context."""
        ...

    def close(self) -> None: ...


# ---- output parsing ------------------------------------------------------------------------


@dataclass(frozen=True)
class ParseConfig:
    """How a raw completion becomes items. ``split='lines'``: one item per non-empty line (a
    numbered or bulleted list, or the first line when one item is asked for); ``'none'``: the whole
    completion is one item. ``stop`` strings cut the completion first; items longer than
    ``max_chars`` after cleaning are rejected as too long."""

    stop: tuple[str, ...] = ()
    split: str = "lines"
    max_chars: int = 300
    item_prefixes: tuple[str, ...] = ("Example:",)
    skip_header_lines: bool = True


@dataclass(frozen=True)
class Item:
    """One parsed candidate: its cleaned text and, when it cannot be kept, the reason."""

    text: str
    reject_reason: str | None = None


def strip_prompt(raw: str, prompt: str) -> str:
    """Remove an echoed prompt (backends that return prompt + completion)."""
    return raw[len(prompt) :] if prompt and raw.startswith(prompt) else raw


def cut_at_stop(raw: str, stop: Iterable[str]) -> str:
    """``raw`` up to the earliest stop string."""
    cut = len(raw)
    for s in stop:
        if s:
            i = raw.find(s)
            if i != -1:
                cut = min(cut, i)
    return raw[:cut]


def strip_quotes(text: str) -> str:
    """Remove one pair of matching surrounding quotes (straight, curly, guillemets, backticks)."""
    text = text.strip()
    while len(text) >= 2 and _QUOTES.get(text[0]) == text[-1]:
        text = text[1:-1].strip()
    return text


def clean_item(line: str, prefixes: Iterable[str] = ()) -> str:
    """Strip list numbering (``1.``, ``2)``, ``(3)``, ``#4``), bullets, known prefixes and quotes."""
    text = line.strip()
    for _ in range(3):  # e.g. "1. Example: \"...\"": numbering, then prefix, then quotes
        before = text
        text = _NUMBERING.sub("", text, count=1).strip()
        for p in prefixes:
            if p and text.lower().startswith(p.lower()):
                text = text[len(p) :].strip()
        text = strip_quotes(text)
        if text == before:
            break
    return text


def _is_header(line: str) -> bool:
    """A preamble such as "Sure! Here are 5 examples:" (ends with a colon, no list marker)."""
    s = line.strip()
    return s.endswith(":") and not _NUMBERING.match(s)


def parse_completion(raw: str, config: ParseConfig, prompt: str = "") -> list[Item]:
    """Candidates of one completion, in order. An empty list means the output was empty."""
    text = cut_at_stop(strip_prompt(raw, prompt), config.stop)
    if config.split == "none":
        chunks = [text]
    elif config.split == "lines":
        chunks = [ln for ln in text.splitlines() if ln.strip()]
        if config.skip_header_lines:
            chunks = [ln for ln in chunks if not _is_header(ln)]
    else:
        raise ValueError(f"split must be 'lines' or 'none', got {config.split!r}")
    items = []
    for chunk in chunks:
        cleaned = clean_item(chunk, config.item_prefixes)
        if not cleaned:
            continue
        too_long = len(cleaned) > config.max_chars
        items.append(Item(cleaned, "generate:too_long" if too_long else None))
    return items


def assign_items(items: Sequence[Item], n: int) -> list[Item]:
    """Exactly ``n`` results for the ``n`` samples a prompt asked for: the first ``n`` candidates,
    then rejections for the missing ones (``empty_output`` when there was nothing at all)."""
    out = list(items[:n])
    reason = "generate:empty_output" if not items else "generate:too_few_items"
    out.extend(Item("", reason) for _ in range(n - len(out)))
    return out
