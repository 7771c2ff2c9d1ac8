"""Test-only steps, registered through SYNTH_PLUGINS=plugins.slow_steps: a slow, deterministic text
generator so a subprocess run can be killed mid-run, and a filter with a threshold."""

from __future__ import annotations

import time

import numpy as np
from pydantic import Field

from synth.registry import register
from synth.steps import Filter, Generator, Params, Task
from synth.util import sha256_text

WORDS = [
    "alpha",
    "bravo",
    "charlie",
    "delta",
    "echo",
    "foxtrot",
    "golf",
    "hotel",
    "india",
    "juliet",
    "kilo",
    "lima",
    "mike",
    "november",
    "oscar",
    "papa",
]


class SlowParams(Params):
    n_per_label: int = Field(4, ge=0)
    delay: float = Field(0.0, ge=0)


@register("slow_text")
class SlowTextGenerator(Generator):
    """Writes n_per_label texts per real label, sleeping ``delay`` seconds per sample."""

    Params = SlowParams
    modality = "text"

    def plan(self, real, ctx):
        labels = sorted({s.label for s in real})
        return [Task(index=i * len(labels) + j, label=lab) for i in range(self.params.n_per_label) for j, lab in enumerate(labels)]

    def generate(self, tasks, ctx):
        for t in tasks:
            time.sleep(self.params.delay)
            s = self.new_sample(t, ctx, model="none")
            rng = np.random.default_rng(s.seed)
            s.text = f"{t.label} " + " ".join(rng.choice(WORDS, size=int(rng.integers(2, 10))))
            s.content_sha256 = sha256_text(s.text)
            s.params = {"delay": self.params.delay}
            yield s


class LenParams(Params):
    min_words: int = 3


@register("min_words")
class MinWordsFilter(Filter):
    """Rejects texts with fewer than min_words words."""

    Params = LenParams
    modality = "text"

    def score(self, samples, ctx):
        return [{"words": float(len((s.text or "").split()))} for s in samples]

    def decide(self, scores):
        return "short" if scores["words"] < self.params.min_words else None
