"""Heuristic text quality: length, repetition, character ratios, refusals/boilerplate, copies.

Gopher-style rules (Rae et al. 2021, as in datatrove's ``GopherQualityFilter``) adapted to short
generations: repetition is measured over lines *and* sentences, and a top n-gram only counts when
it repeats, so a ten-word message is not punished for being short.
"""

from __future__ import annotations

import re
from functools import cached_property
from typing import Any, ClassVar

from pydantic import Field

from synth.filters import _scores as S
from synth.filters._base import QualityFilter, Rule
from synth.registry import register
from synth.sample import Sample
from synth.steps import Context, Params, Resources

REFUSAL_PATTERNS = [
    r"\bas an? (?:ai|artificial intelligence)(?: language)? (?:model|assistant)\b",
    r"\bi(?: am|'m) (?:just )?an? (?:ai|language model|virtual assistant)\b",
    r"\bi (?:cannot|can't|can not|am unable to|'m unable to|am not able to|won't be able to) (?:help|assist|provide|comply|fulfil+|"
    r"generate|create|write|produce|answer|complete) (?:with|that|this|your|such|you)\b",  # not "I can't complete payment"
    r"\bi (?:cannot|can't|can not|am unable to|'m unable to) (?:comply|fulfil+)\b",
    r"\b(?:i'm|i am) sorry,? but (?:i|as)\b",
    r"\bi apologi[sz]e,? but (?:i|as)\b",
    r"\b(?:violates?|against) (?:my|the|our) (?:guidelines|policy|policies|programming)\b",
]
BOILERPLATE_PATTERNS = [
    r"^\s*(?:sure|certainly|of course|absolutely)[,!.]?\s+(?:here|i)\b",
    r"\bhere (?:is|are) (?:a|an|the|some|your|\d+) (?:\w+ ){0,3}(?:example|examples|message|messages|sample|samples|"
    r"variation|variations|paraphrase|paraphrases|text|query|queries)\b",
    r"\b(?:customer|user) (?:message|query|request) (?:about|for|with) (?:the )?(?:intent|label|category)\b",
    r"\b(?:intent|label|category)\s*[:=]\s*\w+",
    r"<\|?(?:endoftext|im_start|im_end|eot_id|s|/s|pad)\|?>",
    r"\[(?:INST|/INST|PAD|SEP|CLS)\]",
]


class TextQualityParams(Params):
    min_chars: int | None = Field(10, ge=0, description="reject texts shorter than this many characters (None: off)")
    max_chars: int | None = Field(10_000, ge=1, description="reject texts longer than this many characters")
    min_words: int | None = Field(3, ge=0, description="reject texts with fewer words")
    max_words: int | None = Field(2_000, ge=1, description="reject texts with more words")
    max_dup_segment_frac: float | None = Field(0.3, ge=0, le=1, description="max share of lines/sentences repeating an earlier one")
    max_top_ngram_frac: float | None = Field(0.2, ge=0, le=1, description="max share of characters in the most frequent repeated 2-4-gram")
    top_ngram_min_count: int = Field(
        3, ge=1, description="a top n-gram counts from this many occurrences (scoring parameter; 3 lets a short message say a phrase twice)"
    )
    max_dup_ngram_frac: float | None = Field(0.15, ge=0, le=1, description="max share of characters inside repeated word n-grams")
    dup_ngram: int = Field(5, ge=2, le=20, description="n of the repeated-n-gram score (scoring parameter)")
    min_alpha_frac: float | None = Field(0.6, ge=0, le=1, description="min share of alphabetic characters among non-space ones")
    max_symbol_frac: float | None = Field(0.1, ge=0, le=1, description="max share of symbol characters (not letters, digits, punctuation)")
    max_refusals: int | None = Field(0, ge=0, description="max refusal patterns matched ('as an AI language model', 'I cannot help')")
    max_boilerplate: int | None = Field(
        0, ge=0, description="max boilerplate patterns matched ('Sure, here is an example', 'intent: x', special tokens)"
    )
    extra_refusal_patterns: list[str] = Field(
        default_factory=list, description="more case-insensitive regexes counted as refusals (scoring parameter)"
    )
    extra_boilerplate_patterns: list[str] = Field(
        default_factory=list, description="more case-insensitive regexes counted as boilerplate (scoring parameter)"
    )
    max_copy_frac: float | None = Field(0.8, ge=0, le=1, description="max word-3-gram containment with the prompt or a few-shot example")
    copy_ngram: int = Field(3, ge=1, le=10, description="n of the copy score (scoring parameter)")
    few_shot_keys: list[str] = Field(
        default_factory=list,
        description="params keys holding more texts not to copy (strings or {text: ...} "
        "items); the llm generator renders its shots into `prompt`, which is always compared",
    )


@register("text_quality")
class TextQuality(QualityFilter):
    """Rejects empty, too long, repetitive, symbol-heavy, refusing, boilerplate or copied text.

    Reads: ``text``; ``prompt`` (the llm generator's prompt holds its few-shot examples) and any
    texts in ``params[few_shot_keys]`` (copy score).
    Writes: scores ``<name>.chars``, ``.words``, ``.dup_segment_frac``, ``.top_ngram_frac``,
    ``.dup_ngram_frac``, ``.alpha_frac``, ``.symbol_frac``, ``.refusals``, ``.boilerplate``,
    ``.copy_frac`` (only when there is a prompt or an example).
    Drops: ``filter:<name>.too_short`` / ``too_long`` / ``too_few_words`` / ``too_many_words`` /
    ``repeated_lines`` / ``repeated_ngram`` / ``duplicate_ngrams`` / ``non_alpha`` / ``symbols`` /
    ``refusal`` / ``boilerplate`` / ``copies_prompt``.
    Example: ``{type: text_quality, min_words: 3, max_copy_frac: 0.9}``
    """

    Params = TextQualityParams
    modality: ClassVar = "text"
    default_resources: ClassVar[Resources] = Resources(cpus=1)
    batch_size: ClassVar[int] = 256
    decision_params: ClassVar[frozenset[str]] = frozenset(
        {
            "min_chars",
            "max_chars",
            "min_words",
            "max_words",
            "max_dup_segment_frac",
            "max_top_ngram_frac",
            "max_dup_ngram_frac",
            "min_alpha_frac",
            "max_symbol_frac",
            "max_refusals",
            "max_boilerplate",
            "max_copy_frac",
        }
    )

    @cached_property
    def _patterns(self) -> tuple[list[re.Pattern[str]], list[re.Pattern[str]]]:
        from synth.errors import ConfigError

        def comp(pats: list[str], key: str) -> list[re.Pattern[str]]:
            out = []
            for p in pats:
                try:
                    out.append(re.compile(p, re.IGNORECASE | re.MULTILINE))
                except re.error as e:
                    raise ConfigError(f"step {self.name!r}: {key} entry {p!r} is not a valid regular expression ({e}).") from None
            return out

        p = self.params
        return (
            comp(REFUSAL_PATTERNS + p.extra_refusal_patterns, "extra_refusal_patterns"),
            comp(BOILERPLATE_PATTERNS + p.extra_boilerplate_patterns, "extra_boilerplate_patterns"),
        )

    def setup(self, ctx: Context) -> None:
        self._patterns  # noqa: B018 - compile early so a bad regex fails before any work

    def rules(self) -> list[Rule]:
        p = self.params
        return [
            Rule("chars", ">=", p.min_chars, "too_short"),
            Rule("chars", "<=", p.max_chars, "too_long"),
            Rule("words", ">=", p.min_words, "too_few_words"),
            Rule("words", "<=", p.max_words, "too_many_words"),
            Rule("refusals", "<=", p.max_refusals, "refusal"),
            Rule("boilerplate", "<=", p.max_boilerplate, "boilerplate"),
            Rule("copy_frac", "<=", p.max_copy_frac, "copies_prompt"),
            Rule("dup_segment_frac", "<=", p.max_dup_segment_frac, "repeated_lines"),
            Rule("top_ngram_frac", "<=", p.max_top_ngram_frac, "repeated_ngram"),
            Rule("dup_ngram_frac", "<=", p.max_dup_ngram_frac, "duplicate_ngrams"),
            Rule("symbol_frac", "<=", p.max_symbol_frac, "symbols"),
            Rule("alpha_frac", ">=", p.min_alpha_frac, "non_alpha"),
        ]

    def references(self, sample: Sample) -> list[str]:
        """The texts a generation must not copy: its prompt and any few-shot examples."""
        refs = [sample.prompt] if sample.prompt else []
        for key in self.params.few_shot_keys:
            refs.extend(_texts(sample.params.get(key)))
        return refs

    def compute(self, samples: list[Sample], ctx: Context) -> list[dict[str, float]]:
        refusal, boiler = self._patterns
        out = []
        for s in samples:
            text = s.text or ""
            toks = S.words(text)
            plain = text.replace("’", "'")  # curly apostrophes match the patterns too
            d = {
                "chars": S.char_count(text),
                "words": len(toks),
                "dup_segment_frac": S.dup_segment_frac(text),
                "top_ngram_frac": max(S.top_ngram_frac(toks, n, self.params.top_ngram_min_count) for n in (2, 3, 4)),
                "dup_ngram_frac": S.dup_ngram_frac(toks, self.params.dup_ngram),
                "alpha_frac": S.alpha_frac(text),
                "symbol_frac": S.symbol_frac(text),
                "refusals": S.pattern_hits(plain, refusal),
                "boilerplate": S.pattern_hits(plain, boiler),
            }
            refs = self.references(s)
            if refs:
                d["copy_frac"] = S.copy_frac(text, refs, self.params.copy_ngram)
            out.append(d)
        return out


def _texts(value: Any) -> list[str]:
    """Strings from a params value: a string, a list of strings, or a list of {text: ...} items."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [str(value["text"])] if "text" in value else []
    if isinstance(value, list | tuple):
        return [t for v in value for t in _texts(v)]
    return []
