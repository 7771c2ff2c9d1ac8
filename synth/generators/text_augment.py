"""Rule-based text augmentation: seeded token-level perturbations of real samples (the text
counterpart of albumentations).

The operations are pure functions on a list of words with an explicit ``numpy`` Generator; each
returns the new words and a record of what it did (positions, words), so every variant can be
replayed from its manifest row. Words are whitespace-separated tokens (punctuation stays attached)
and variants are re-joined with single spaces.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field

from synth.generators._text_common import select_parents
from synth.registry import register
from synth.steps import Context, Generator, Params, Resources, Task
from synth.util import derive_seed, sha256_text

if TYPE_CHECKING:
    import numpy as np

    from synth.sample import Sample

Op = Literal["delete", "swap", "insert", "char_noise"]
Record = dict[str, Any]


def _key_neighbours() -> dict[str, str]:
    """QWERTY neighbours of each letter (same row, and the staggered rows above and below), for realistic typos."""
    rows = ("qwertyuiop", "asdfghjkl", "zxcvbnm")
    out = {}
    for r, row in enumerate(rows):
        for c, ch in enumerate(row):
            near = [(r, c - 1), (r, c + 1), (r - 1, c), (r - 1, c + 1), (r + 1, c - 1), (r + 1, c)]
            out[ch] = "".join(rows[rr][cc] for rr, cc in near if 0 <= rr < 3 and 0 <= cc < len(rows[rr]))
    return out


KEY_NEIGHBOURS = _key_neighbours()


def n_affected(n_words: int, alpha: float) -> int:
    """How many words an operation touches: ``alpha`` of them, at least one."""
    return max(1, round(alpha * n_words))


def random_deletion(words: list[str], rng: np.random.Generator, alpha: float) -> tuple[list[str], Record]:
    """Delete ``n_affected`` words (never all of them)."""
    k = min(n_affected(len(words), alpha), len(words) - 1)
    if k <= 0:
        return list(words), {"op": "delete", "positions": [], "words": [], "skipped": "too_few_words"}
    pos = sorted(int(i) for i in rng.choice(len(words), size=k, replace=False))
    drop = set(pos)
    return [w for i, w in enumerate(words) if i not in drop], {"op": "delete", "positions": pos, "words": [words[i] for i in pos]}


def random_swap(words: list[str], rng: np.random.Generator, alpha: float) -> tuple[list[str], Record]:
    """Swap ``n_affected`` pairs of distinct positions, one after the other."""
    if len(words) < 2:
        return list(words), {"op": "swap", "pairs": [], "skipped": "too_few_words"}
    out, pairs = list(words), []
    for _ in range(n_affected(len(words), alpha)):
        i, j = sorted(int(x) for x in rng.choice(len(out), size=2, replace=False))
        out[i], out[j] = out[j], out[i]
        pairs.append([i, j])
    return out, {"op": "swap", "pairs": pairs}


def random_insertion(words: list[str], rng: np.random.Generator, alpha: float) -> tuple[list[str], Record]:
    """Insert ``n_affected`` copies of words of the same text at random positions."""
    if not words:
        return [], {"op": "insert", "positions": [], "words": [], "skipped": "too_few_words"}
    out, pos, ins = list(words), [], []
    for _ in range(n_affected(len(words), alpha)):
        w = words[int(rng.integers(len(words)))]
        at = int(rng.integers(len(out) + 1))
        out.insert(at, w)
        pos.append(at)
        ins.append(w)
    return out, {"op": "insert", "positions": pos, "words": ins}


CHAR_EDITS = ("swap", "drop", "repeat", "keyboard")


def noise_word(word: str, rng: np.random.Generator) -> tuple[str, str]:
    """One character-level typo in ``word``: swap two adjacent letters, drop, repeat or mistype one."""
    letters = [i for i, c in enumerate(word) if c.isalpha()]
    kind = CHAR_EDITS[int(rng.integers(len(CHAR_EDITS)))]
    i = letters[int(rng.integers(len(letters)))]
    if kind == "swap":
        j = i + 1 if i + 1 < len(word) else i - 1
        a, b = min(i, j), max(i, j)
        return word[:a] + word[b] + word[a] + word[b + 1 :], kind
    if kind == "drop":
        return word[:i] + word[i + 1 :], kind
    if kind == "repeat":
        return word[:i] + word[i] + word[i:], kind
    near = KEY_NEIGHBOURS.get(word[i].lower(), "")
    if not near:
        return word[:i] + word[i] + word[i:], "repeat"
    sub = near[int(rng.integers(len(near)))]
    return word[:i] + (sub.upper() if word[i].isupper() else sub) + word[i + 1 :], kind


def char_noise(words: list[str], rng: np.random.Generator, alpha: float) -> tuple[list[str], Record]:
    """A typo in each of ``n_affected`` words having at least two letters."""
    eligible = [i for i, w in enumerate(words) if sum(c.isalpha() for c in w) >= 2]
    if not eligible:
        return list(words), {"op": "char_noise", "positions": [], "edits": [], "skipped": "no_word_to_noise"}
    k = min(n_affected(len(words), alpha), len(eligible))
    pos = sorted(eligible[int(i)] for i in rng.choice(len(eligible), size=k, replace=False))
    out, edits = list(words), []
    for i in pos:
        out[i], kind = noise_word(words[i], rng)
        edits.append({"from": words[i], "to": out[i], "kind": kind})
    return out, {"op": "char_noise", "positions": pos, "edits": edits}


OPS: dict[str, Callable[[list[str], np.random.Generator, float], tuple[list[str], Record]]] = {
    "delete": random_deletion,
    "swap": random_swap,
    "insert": random_insertion,
    "char_noise": char_noise,
}


def augment_text(text: str, ops: list[str], rng: np.random.Generator, alpha: float = 0.1, n_ops: int = 1) -> tuple[str, list[Record]]:
    """Apply ``n_ops`` operations drawn (with replacement) from ``ops`` in sequence; returns the
    variant and one record per applied operation."""
    words = text.split()
    applied = []
    for _ in range(n_ops):
        name = ops[int(rng.integers(len(ops)))]
        words, rec = OPS[name](words, rng, alpha)
        applied.append(rec)
    return " ".join(words), applied


class TextAugmentParams(Params):
    num_per_parent: int = Field(2, ge=1, description="variants per real sample")
    parents_per_label: int | None = Field(None, ge=1, description="real parents per label, seeded choice (default: all)")
    ops: list[Op] = Field(["delete", "swap", "insert", "char_noise"], min_length=1, description="operations to draw from")
    ops_per_variant: int = Field(1, ge=1, le=10, description="operations applied in sequence to make one variant")
    alpha: float = Field(0.1, gt=0, le=1, description="share of the words one operation touches (at least one)")


@register("text_augment")
class TextAugmentGenerator(Generator):
    """Seeded word deletion / swap / insertion and character noise on real text samples.

    Reads: kept real train text samples (the parents). Writes: ``num_per_parent`` variants per
    parent with ``parent_id``, ``seed`` (the per-sample seed) and ``params.ops`` (each applied
    operation with the positions and words it affected). Drops: nothing silently; a variant equal to
    its parent (e.g. a one-word text) is rejected ``generate:unchanged``.
    Example::

        - type: text_augment
          num_per_parent: 2
          ops: [delete, swap, char_noise]
          alpha: 0.15
    """

    Params: ClassVar[type[TextAugmentParams]] = TextAugmentParams
    params: TextAugmentParams
    modality: ClassVar[Literal["text"]] = "text"
    default_resources: ClassVar[Resources] = Resources(cpus=1)

    def plan(self, real: list[Sample], ctx: Context) -> list[Task]:
        import numpy as np

        rng = np.random.default_rng(derive_seed(ctx.run_seed, self.name, "parents"))
        parents = select_parents(real, self.params.parents_per_label, rng)
        n = self.params.num_per_parent
        return [Task(i * n + v, parent.label, parent, {"variant": v}) for i, parent in enumerate(parents) for v in range(n)]

    def generate(self, tasks: list[Task], ctx: Context) -> Iterator[Sample]:
        import numpy as np

        p = self.params
        for task in tasks:
            assert task.parent is not None and task.parent.text is not None
            seed = self.sample_seed(task, ctx)
            text, applied = augment_text(task.parent.text, list(p.ops), np.random.default_rng(seed), p.alpha, p.ops_per_variant)
            s = self.new_sample(
                task,
                ctx,
                text=text,
                seed=seed,
                content_sha256=sha256_text(text),
                params={"ops": applied, "alpha": p.alpha, "variant": task.extra["variant"]},
            )
            if text == " ".join(task.parent.text.split()) or text == task.parent.text:
                s.reject("generate:unchanged")
                ctx.count(self.name, "rejected_unchanged")
            yield s
