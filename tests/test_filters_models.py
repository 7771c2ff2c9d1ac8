"""Model-based text filters: MiniLM label consistency (the real bundled model), perplexity under a
tiny GPT-2 and a tiny user-provided text classifier, and the shared sentence encoder."""

from __future__ import annotations

import numpy as np
import pytest
from examples.filters import texts_reference, tiny_gpt2, tiny_text_classifier

from synth.embeddings import default_sentence_model, sentence_encoder
from synth.errors import ConfigError
from synth.filters.label_consistency import TextLabelConsistency, label_scores
from synth.filters.model_scorer import ModelScorer
from synth.filters.perplexity import Perplexity
from synth.sample import Sample

HELD_OUT = {
    "track_order": ["has my parcel shipped yet", "when will my delivery arrive"],
    "refund_request": ["give me my money back for the shoes", "i returned the item, where is my refund"],
    "account_login": ["i forgot my password and cannot sign in", "the login page says my account is locked"],
}


def synth(text: str, label: str, i: int) -> Sample:
    return Sample(id=f"g-s0-{i:06d}", modality="text", origin="synthetic", label=label, text=text, generator="g")


def held_out(shift: int = 0) -> list[Sample]:
    labels = sorted(HELD_OUT)
    out = []
    for j, lab in enumerate(labels):
        for t in HELD_OUT[lab]:
            out.append(synth(t, labels[(j + shift) % len(labels)], len(out)))
    return out


def test_sentence_encoder_is_mean_pooled_unit_vectors_and_cached():
    import torch
    from transformers import AutoModel, AutoTokenizer

    enc = sentence_encoder()
    assert sentence_encoder() is enc and enc.model_id == default_sentence_model() and enc.revision.startswith("sha256:")
    texts = ["where is my parcel", "refund please, the lamp arrived broken and i want my money back"]
    emb = enc.encode(texts, batch_size=1)
    assert emb.shape == (2, 384) and np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    assert np.allclose(enc.encode(texts, batch_size=2), emb, atol=1e-5)  # padding does not change a text's vector
    tok, model = AutoTokenizer.from_pretrained(enc.model_id), AutoModel.from_pretrained(enc.model_id)
    with torch.no_grad():
        h = model(**tok(texts[:1], return_tensors="pt")).last_hidden_state[0].mean(0).numpy()
    assert np.allclose(emb[0], h / np.linalg.norm(h), atol=1e-5)
    assert enc.encode([]).shape == (0, 384)


def test_label_scores_margin_and_prob():
    m = np.array([[0.9, 0.1, 0.2], [0.1, 0.5, 0.45]])
    s = label_scores(m, ["a", "b", "c"], ["a", "c"], temperature=0.1)
    assert s[0]["margin"] == pytest.approx(0.7) and s[1]["margin"] == pytest.approx(-0.05)
    assert s[0]["prob"] == pytest.approx(np.exp(9) / (np.exp(9) + np.exp(1) + np.exp(2)))
    assert label_scores(m[:1], ["a", "b", "c"], ["zzz"], None) == [{"known": 0.0}]


@pytest.mark.parametrize("method", ["centroid", "knn"])
def test_text_label_consistency_with_minilm(method, tmp_path, ctx):
    f = TextLabelConsistency(reference=texts_reference(tmp_path), method=method, k=2)
    f.setup(ctx)
    assert f.labels == sorted(HELD_OUT)
    assert f.accuracy(held_out()) == 1.0
    right = f.process(held_out(), ctx)
    assert all(s.kept for s in right), [(s.text, s.scores) for s in right if not s.kept]
    wrong = f.process(held_out(shift=1), ctx)
    rejected = [s for s in wrong if s.reject_reason == "filter:text_label_consistency.label_mismatch"]
    assert len(rejected) >= 5, [(s.text, s.label, s.scores) for s in wrong]
    assert all(s.scores["text_label_consistency.margin"] < r.scores["text_label_consistency.margin"] for s, r in zip(wrong, right))
    assert ctx.extra["filter_models"]["text_label_consistency"]["model"] == default_sentence_model()


def test_text_label_consistency_fit_directly(real_texts, ctx):
    f = TextLabelConsistency(min_margin=None, min_prob=0.5)
    f.fit(real_texts)  # no run dir needed: the reference is given in code
    [good, bad] = f.process(
        [synth("has my parcel shipped yet", "track_order", 0), synth("has my parcel shipped yet", "account_login", 1)], ctx
    )
    assert good.kept and bad.reject_reason == "filter:text_label_consistency.low_label_prob"
    assert good.scores["text_label_consistency.prob"] > 0.5 > bad.scores["text_label_consistency.prob"]


# ---- perplexity -----------------------------------------------------------------------------------


def test_perplexity_ranks_learned_text_lower_and_batches_consistently(ctx):
    f = Perplexity(model=tiny_gpt2(), batch_size=2, max_perplexity=50.0)
    f.setup(ctx)
    texts = ["a photo of the digit seven", "seven digit the photo of a", "a", ""]
    out = f.process([synth(t, "x", i) for i, t in enumerate(texts)], ctx)
    ppl = [s.scores.get("perplexity.perplexity") for s in out]
    assert ppl[0] < 5 < 50 < ppl[1]
    assert out[0].kept and out[1].reject_reason == "filter:perplexity.high_perplexity"
    assert ppl[3] is None and out[3].kept and out[3].scores["perplexity.tokens"] == 0  # nothing to predict
    one = Perplexity(model=tiny_gpt2(), batch_size=1)
    one.setup(ctx)
    alone = [s.scores.get("perplexity.perplexity") for s in one.process([synth(t, "x", i) for i, t in enumerate(texts)], ctx)]
    assert alone[:3] == pytest.approx(ppl[:3], rel=1e-4)


def test_perplexity_prefix_conditions_without_being_scored(ctx):
    bare = Perplexity(model=tiny_gpt2())
    bare.setup(ctx)
    cond = Perplexity(model=tiny_gpt2(), prefix="a photo of {label}", text_template="{text}")
    cond.setup(ctx)
    s = synth("digit seven", "the", 0)
    [b], [c] = bare.compute([s], ctx), cond.compute([s], ctx)
    assert c["tokens"] == 2 and b["tokens"] == 2  # only the text's tokens are scored
    assert c["perplexity"] < 5 and b["perplexity"] > 20 * c["perplexity"]  # in its learned context the text is likely
    with pytest.raises(ValueError, match="text"):
        Perplexity(model="x", text_template="no placeholder")


def test_perplexity_bad_model_path(ctx, tmp_path):
    with pytest.raises(ConfigError, match="cannot load"):
        Perplexity(model=str(tmp_path / "missing")).setup(ctx)


# ---- user-provided text classifier ---------------------------------------------------------------------


def test_model_scorer_text(ctx):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    path = tiny_text_classifier()
    texts = ["a photo of the digit seven", "a cat and a dog", "low quality"]
    f = ModelScorer(name="toxicity", model=path, task="text-classification", labels=["toxic"], max_score=0.99)
    f.setup(ctx)
    out = f.process([synth(t, "x", i) for i, t in enumerate(texts)], ctx)
    model, tok = AutoModelForSequenceClassification.from_pretrained(path), AutoTokenizer.from_pretrained(path)
    with torch.no_grad():
        p = [torch.softmax(model(**tok(t, return_tensors="pt")).logits, -1)[0, 1].item() for t in texts]
    assert [s.scores["toxicity.score"] for s in out] == pytest.approx(p, abs=1e-4)
    both = ModelScorer(model=path, task="text-classification", labels=["ok", "toxic"])
    both.setup(ctx)
    assert all(
        s.scores["model_scorer.score"] == pytest.approx(1.0) for s in both.process([synth(t, "x", i) for i, t in enumerate(texts)], ctx)
    )
