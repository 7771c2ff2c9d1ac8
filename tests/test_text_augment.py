"""Rule-based text augmentation: the pure operations, then the generator."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from synth.generators.text_augment import (
    KEY_NEIGHBOURS,
    OPS,
    TextAugmentGenerator,
    augment_text,
    char_noise,
    noise_word,
    random_deletion,
    random_insertion,
    random_swap,
)

WORDS = ["please", "refund", "the", "broken", "lamp", "i", "returned", "last", "week"]


def rng(seed=0):
    return np.random.default_rng(seed)


def test_deletion_records_what_it_removed():
    out, rec = random_deletion(WORDS, rng(), alpha=0.25)
    assert rec["op"] == "delete" and len(rec["positions"]) == 2
    assert [WORDS[i] for i in rec["positions"]] == rec["words"]
    assert out == [w for i, w in enumerate(WORDS) if i not in rec["positions"]]


def test_deletion_never_empties_a_text():
    out, rec = random_deletion(["hello"], rng(), alpha=1.0)
    assert out == ["hello"] and rec["skipped"] == "too_few_words"
    out, _ = random_deletion(["a", "b"], rng(), alpha=1.0)
    assert len(out) == 1


def test_swap_replays_from_its_record():
    out, rec = random_swap(WORDS, rng(3), alpha=0.3)
    replay = list(WORDS)
    for i, j in rec["pairs"]:
        replay[i], replay[j] = replay[j], replay[i]
    assert out == replay and sorted(out) == sorted(WORDS) and len(rec["pairs"]) == 3
    assert random_swap(["solo"], rng(), 0.5)[1]["skipped"] == "too_few_words"


def test_insertion_uses_words_of_the_same_text():
    out, rec = random_insertion(WORDS, rng(5), alpha=0.2)
    assert len(out) == len(WORDS) + 2 and set(rec["words"]) <= set(WORDS)
    replay = list(WORDS)
    for at, w in zip(rec["positions"], rec["words"], strict=True):
        replay.insert(at, w)
    assert out == replay


def test_char_noise_edits_one_character_per_word():
    out, rec = char_noise(WORDS, rng(2), alpha=0.3)
    assert len(rec["positions"]) == 3
    for i, edit in zip(rec["positions"], rec["edits"], strict=True):
        assert edit["from"] == WORDS[i] and out[i] == edit["to"]
        assert abs(len(edit["to"]) - len(edit["from"])) <= 1
    untouched = [i for i in range(len(WORDS)) if i not in rec["positions"]]
    assert all(out[i] == WORDS[i] for i in untouched)
    assert char_noise(["a", "1", "?"], rng(), 0.5)[1]["skipped"] == "no_word_to_noise"


@pytest.mark.parametrize("seed", range(30))
def test_noise_word_kinds(seed):
    word = "Refund"
    out, kind = noise_word(word, rng(seed))
    if kind == "drop":
        assert len(out) == len(word) - 1
    elif kind == "repeat":
        assert len(out) == len(word) + 1
    elif kind == "swap":
        assert sorted(out) == sorted(word)
    else:
        diff = [(a, b) for a, b in zip(word, out, strict=True) if a != b]
        assert len(diff) == 1 and diff[0][1].lower() in KEY_NEIGHBOURS[diff[0][0].lower()]
        assert diff[0][0].isupper() == diff[0][1].isupper()


def test_key_neighbours_are_symmetric():
    for a, near in KEY_NEIGHBOURS.items():
        assert a not in near
        assert all(a in KEY_NEIGHBOURS[b] for b in near)


def test_augment_text_is_seeded():
    text = " ".join(WORDS)
    a = augment_text(text, list(OPS), rng(11), alpha=0.2, n_ops=3)
    assert a == augment_text(text, list(OPS), rng(11), alpha=0.2, n_ops=3)
    assert a[0] != text and len(a[1]) == 3
    variants = {augment_text(text, list(OPS), rng(s), 0.2, 2)[0] for s in range(20)}
    assert len(variants) > 15


# ---- the generator ---------------------------------------------------------------------------


def test_generator_variants_per_parent(ctx, real_texts):
    g = TextAugmentGenerator(num_per_parent=3, ops=["delete", "swap"], ops_per_variant=2, alpha=0.3)
    tasks = g.plan(g.inputs(real_texts), ctx)
    out = list(g.generate(tasks, ctx))
    assert len(out) == 3 * len(real_texts)
    by_id = {s.id: s for s in real_texts}
    for s in out:
        parent = by_id[s.parent_id]
        assert s.label == parent.label and s.origin == "synthetic" and s.generator == "text_augment"
        assert [r["op"] for r in s.params["ops"]] and {r["op"] for r in s.params["ops"]} <= {"delete", "swap"}
        # the recorded operations replay the variant from the parent
        replay = augment_text(parent.text, ["delete", "swap"], np.random.default_rng(s.seed), 0.3, 2)
        assert replay == (s.text, s.params["ops"])
    assert len({s.id for s in out}) == len(out)
    assert out == list(g.generate(tasks, ctx))


def test_generator_parents_per_label_and_unchanged_rejection(ctx, real_texts):
    from synth.sample import Sample

    g = TextAugmentGenerator(num_per_parent=1, parents_per_label=1, ops=["delete"])
    tasks = g.plan(g.inputs(real_texts), ctx)
    assert sorted(t.label for t in tasks) == ["account_login", "refund_request", "track_order"]
    one_word = [Sample(id="w", modality="text", origin="real", label="x", text="hello")]
    (s,) = g.generate(g.plan(one_word, ctx), ctx)
    assert s.status == "rejected" and s.reject_reason == "generate:unchanged" and s.text == "hello"
    assert ctx.counters["text_augment"]["rejected_unchanged"] == 1


def test_different_run_seed_gives_other_variants(ctx, real_texts):
    g = TextAugmentGenerator(num_per_parent=2)
    a = [s.text for s in g.generate(g.plan(real_texts, ctx), ctx)]
    ctx.run_seed = 1
    b = [s.text for s in g.generate(g.plan(real_texts, ctx), ctx)]
    assert a != b


def test_bad_params_are_rejected():
    with pytest.raises(ValidationError, match="ops"):
        TextAugmentGenerator(ops=["shuffle"])
    with pytest.raises(ValidationError):
        TextAugmentGenerator(ops=[])
