"""Text filters on crafted inputs: pure score functions, text_quality and pii, pass and fail."""

from __future__ import annotations

import pytest

from synth.config import build_step
from synth.errors import ConfigError
from synth.filters import _scores as S
from synth.filters.pii import PiiFilter, find_pii, redact
from synth.filters.text_quality import TextQuality
from synth.sample import Sample
from synth.util import sha256_text

GOOD = "Could you check where my parcel is? It was due on Friday and the tracking page has not changed."


def synth(text: str, i: int = 0, **kw) -> Sample:
    return Sample(
        id=f"g-s0-{i:06d}",
        modality="text",
        origin="synthetic",
        label="track_order",
        text=text,
        content_sha256=sha256_text(text),
        generator="g",
        **kw,
    )


def run(step, samples, ctx):
    step.setup(ctx)
    return step.process(samples, ctx)


# ---- pure functions -----------------------------------------------------------------------------


def test_repetition_scores():
    rep = "I like cats. I like cats. I like cats. I like cats."
    assert S.dup_segment_frac(rep) == pytest.approx(0.75)
    assert S.dup_segment_frac(GOOD) == 0.0
    toks = S.words(rep)
    assert S.top_ngram_frac(toks, 2) > 0.5 and S.dup_ngram_frac(toks, 5) == pytest.approx(1.0)
    assert S.top_ngram_frac(S.words(GOOD), 2) == 0.0  # a bigram seen once does not count
    twice = S.words("I can't log in on the website but I can't sign in")
    assert S.top_ngram_frac(twice, 2) > 0.2 and S.top_ngram_frac(twice, 2, min_count=3) == 0.0
    assert S.dup_ngram_frac(S.words(GOOD), 5) == 0.0
    assert S.top_ngram_frac([], 2) == 0.0 and S.dup_ngram_frac(["a"], 5) == 0.0


def test_char_ratios():
    assert S.alpha_frac("abc 123") == pytest.approx(0.5)
    assert S.alpha_frac("") == 1.0
    assert S.symbol_frac("hello, world!") == 0.0
    assert S.symbol_frac("★★★ ♥♥♥ ok") == pytest.approx(6 / 8)
    assert S.char_count("  hi  ") == 2


def test_copy_frac():
    prompt = "Write a customer message.\nExample: where is my package right now\nMessage:"
    assert S.copy_frac("where is my package right now", [prompt]) == 1.0
    assert S.copy_frac(prompt + " hello", [prompt]) > 0.9
    assert S.copy_frac("my refund never arrived for the lamp", [prompt]) == 0.0
    assert S.copy_frac("", [prompt]) == 0.0


@pytest.mark.parametrize(
    ("number", "ok"),
    [("4111111111111111", True), ("4111111111111112", False), ("79927398713", True), ("79927398710", False), ("12a4", False)],
)
def test_luhn(number, ok):
    assert S.luhn_valid(number) is ok


# ---- text_quality ---------------------------------------------------------------------------------

BAD = {
    "too_short": "ok",
    "too_few_words": "refund please!!",
    "repeated_lines": "Where is my order?\nWhere is my order?\nWhere is my order?",
    "repeated_ngram": "please refund please refund please refund the order",
    "refusal": "I'm sorry, but as an AI language model I cannot help with that request.",
    "boilerplate": "Sure, here is an example customer message: where is my parcel, it is late",
    "non_alpha": "order 12345 67890 11223 44556 7788 9900",
    "symbols": "where is my ★★★★★ parcel ♥♥♥♥♥ ☺☺☺",
    "copies_prompt": "Can you tell me where my package is right now please",
}


@pytest.mark.parametrize("reason", sorted(BAD))
def test_text_quality_rejects(reason, ctx):
    text = BAD[reason]
    prompt = "Intent: track_order. Examples:\n- Can you tell me where my package is right now please\nNew message:"
    s = synth(text, prompt=prompt)
    [out] = run(TextQuality(), [s], ctx)
    assert out.status == "rejected"
    assert out.reject_reason == f"filter:text_quality.{reason}"
    assert out.scores["text_quality.words"] == len(S.words(text))


def test_text_quality_keeps_good_text_and_stores_scores(ctx, real_texts):
    samples = [
        synth(GOOD, 0, prompt="Write a message about track_order."),
        *[t.copy(origin="synthetic", generator="g") for t in real_texts],
    ]
    out = run(TextQuality(), samples, ctx)
    assert all(s.kept for s in out), [(s.text, s.reject_reason) for s in out]
    keys = {
        "text_quality.chars",
        "text_quality.words",
        "text_quality.dup_segment_frac",
        "text_quality.top_ngram_frac",
        "text_quality.dup_ngram_frac",
        "text_quality.alpha_frac",
        "text_quality.symbol_frac",
        "text_quality.refusals",
        "text_quality.boilerplate",
    }
    assert keys <= set(out[0].scores) and "text_quality.copy_frac" in out[0].scores
    assert "text_quality.copy_frac" not in out[1].scores  # no prompt, no few-shot: nothing to copy
    assert ctx.counters["text_quality"] == {"scored": len(out), "kept": len(out)}


def test_text_quality_few_shot_from_params(ctx):
    example = "my order number is missing from the confirmation email i got"
    s = synth(example, params={"few_shot": [{"text": example, "label": "track_order"}, "something else"]})
    [out] = run(TextQuality(few_shot_keys=["few_shot"]), [s], ctx)
    assert out.reject_reason == "filter:text_quality.copies_prompt"
    [out] = run(TextQuality(), [synth(example, params=dict(s.params))], ctx)  # by default only the prompt is compared
    assert out.kept


@pytest.mark.parametrize(
    "text",
    [
        "I can't log in on the website but I can't sign in?",
        "Why does my card show two amounts? My card statement is wrong.",
        "Order #A-77341 arrived broken (the lid), 2 of 3 cups cracked - refund?",
        "The 3D Secure check never loads, so I can't complete payment.",
        "I can't create an account with my work email",
    ],
)
def test_text_quality_keeps_ordinary_messages(ctx, text):
    [out] = run(TextQuality(), [synth(text)], ctx)
    assert out.kept, out.scores


def test_refusal_with_curly_apostrophe(ctx):
    [out] = run(TextQuality(), [synth("Sorry, I can’t help with that request about your parcel.")], ctx)
    assert out.reject_reason == "filter:text_quality.refusal"


def test_text_quality_does_not_flag_user_saying_i_cannot(ctx):
    [out] = run(TextQuality(), [synth("I cannot log in to my account since the update yesterday")], ctx)
    assert out.kept and out.scores["text_quality.refusals"] == 0


def test_real_and_rejected_rows_are_left_alone(ctx):
    real = Sample(id="r", modality="text", origin="real", label="x", text="ok")
    gone = synth("ok", 1)
    gone.reject("dedup:near_copy_of_real")
    out = run(TextQuality(), [real, gone], ctx)
    assert out[0].kept and not out[0].scores
    assert out[1].reject_reason == "dedup:near_copy_of_real" and "text_quality.chars" in out[1].scores  # scored, reason kept


def test_thresholds_and_decide_from_scores_only():
    f = TextQuality(min_words=5, max_copy_frac=None)
    th = f.thresholds()
    assert th["text_quality.words"] == [(">=", 5.0), ("<=", 2000.0)]
    assert "text_quality.copy_frac" not in th
    assert f.decide({"text_quality.words": 4.0}) == "text_quality.too_few_words"
    assert f.decide({"text_quality.words": 6.0}) is None
    assert f.decide({}) is None  # missing scores never reject
    assert "text_quality.refusal" in f.reasons()


def test_bad_regex_is_a_config_error(ctx):
    with pytest.raises(ConfigError, match="extra_refusal_patterns"):
        TextQuality(extra_refusal_patterns=["(unclosed"]).setup(ctx)


def test_renamed_step_namespaces_scores_and_reasons(ctx):
    f = build_step({"type": "text_quality", "name": "tq_strict", "min_words": 50}, "steps", 0)
    [out] = run(f, [synth(GOOD)], ctx)
    assert out.reject_reason == "filter:tq_strict.too_few_words" and "tq_strict.words" in out.scores


# ---- pii --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "kinds"),
    [
        ("write to jane.doe+shop@example.co.uk today", ["email"]),
        ("my card 4111 1111 1111 1111 was charged twice", ["card"]),
        ("call me on +44 20 7946 0958 after six", ["phone"]),
        ("my number is (415) 555-0100", ["phone"]),
        ("the router at 192.168.1.254 keeps dropping", ["ip"]),
        ("server 2001:db8:85a3:0:0:8a2e:370:7334 is down", ["ip"]),
        ("email a@b.io, card 5555-5555-5555-4444", ["email", "card"]),
    ],
)
def test_find_pii(text, kinds):
    assert [k for k, _, _ in find_pii(text)] == kinds


@pytest.mark.parametrize(
    "text",
    [
        "my card 4111 1111 1111 1112 was charged twice",  # fails Luhn
        "where is order 12984? The number is 77341.",
        "version 1.2.3.4000 and 999.1.1.1",
        "I paid 1,299.99 on 2024-05-03 for two chairs",
        "tracking code 1Z999AA10123456784",
    ],
)
def test_no_false_positive(text):
    assert find_pii(text) == []


def test_pii_reject(ctx):
    out = run(PiiFilter(), [synth("reach me at bob@example.com", 0), synth("4111111111111111 is my card", 1), synth(GOOD, 2)], ctx)
    assert [s.reject_reason for s in out] == ["filter:pii.email", "filter:pii.card", None]
    assert out[0].scores["pii.email"] == 1 and out[2].scores == {"pii.email": 0, "pii.phone": 0, "pii.card": 0, "pii.ip": 0}


def test_pii_redact_changes_text_and_hash(ctx):
    s = synth("mail bob@example.com or call +1 415 555 0100 about card 4111-1111-1111-1111", 0)
    old_hash = s.content_sha256
    [out] = run(PiiFilter(action="redact"), [s], ctx)
    assert out.kept
    assert out.text == "mail [EMAIL] or call [PHONE] about card [CARD]"
    assert out.content_sha256 == sha256_text(out.text) != old_hash
    assert out.params["pii.redacted"] == {"email": 1, "phone": 1, "card": 1}
    assert out.scores["pii.email"] == 1  # what was found, before redaction
    assert ctx.counters["pii"]["redacted"] == 1


def test_pii_kinds_subset(ctx):
    [out] = run(PiiFilter(kinds=["card"]), [synth("reach me at bob@example.com")], ctx)
    assert out.kept and set(out.scores) == {"pii.card"}


def test_redact_helper():
    text = "a@b.co and 10.0.0.1"
    assert redact(text, find_pii(text)) == "[EMAIL] and [IP]"
