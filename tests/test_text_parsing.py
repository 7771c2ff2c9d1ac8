"""The pure helpers of the text generators: templates, few-shot and parent draws, output parsing."""

from __future__ import annotations

import numpy as np
import pytest

from synth.generators._text_common import (
    DEFAULT_TEMPLATES,
    TEMPLATE_FIELDS,
    Item,
    ParseConfig,
    assign_items,
    check_template,
    clean_item,
    cut_at_stop,
    draw_shots,
    parse_completion,
    render_prompt,
    select_parents,
    strip_prompt,
    strip_quotes,
)


def texts(items):
    return [i.text for i in items]


# ---- parsing --------------------------------------------------------------------------------


def test_numbered_list_splits_into_items():
    raw = "1. where is my parcel\n2) has my order shipped?\n(3) track order 55\n#4 any news on my delivery"
    assert texts(parse_completion(raw, ParseConfig())) == [
        "where is my parcel",
        "has my order shipped?",
        "track order 55",
        "any news on my delivery",
    ]


def test_bullets_quotes_and_header_line():
    raw = "Sure! Here are 3 examples:\n\n- \"I want a refund\"\n* “money back please”\n• 'refund the lamp'\n"
    assert texts(parse_completion(raw, ParseConfig())) == ["I want a refund", "money back please", "refund the lamp"]
    kept_header = parse_completion(raw, ParseConfig(skip_header_lines=False))
    assert texts(kept_header)[0] == "Sure! Here are 3 examples:"


def test_numbers_inside_text_are_kept():
    assert clean_item("2.5 kg of rice never arrived") == "2.5 kg of rice never arrived"
    assert clean_item("-5% coupon did not apply") == "-5% coupon did not apply"
    assert clean_item('1. Example: "track 12"', ["Example:"]) == "track 12"


def test_strip_quotes_only_matching_pairs():
    assert strip_quotes('"hello"') == "hello"
    assert strip_quotes("«bonjour»") == "bonjour"
    assert strip_quotes('"unbalanced') == '"unbalanced'
    assert strip_quotes("it's fine") == "it's fine"


def test_prompt_echo_is_stripped_and_stop_strings_cut():
    prompt = "Intent: refund\nExample:"
    assert strip_prompt(prompt + " give me back my money", prompt) == " give me back my money"
    assert strip_prompt("no echo here", prompt) == "no echo here"
    assert cut_at_stop("first line\nExample: second", ["\n"]) == "first line"
    assert cut_at_stop("abc END def STOP", ["STOP", "END"]) == "abc "
    items = parse_completion(prompt + " give me back my money\nExample: other", ParseConfig(stop=("\n",)), prompt=prompt)
    assert texts(items) == ["give me back my money"]


def test_first_line_when_one_item_is_asked_for():
    items = parse_completion(" cancel my order please\nExample: another one\n", ParseConfig())
    assert assign_items(items, 1) == [Item("cancel my order please")]


def test_empty_output_is_a_rejection_not_an_error():
    for raw in ("", "   \n\n", '""', "- \n1. \n"):
        items = parse_completion(raw, ParseConfig())
        assert items == []
        assert assign_items(items, 2) == [Item("", "generate:empty_output")] * 2


def test_too_few_items_and_extra_items():
    items = parse_completion("one\ntwo", ParseConfig())
    assert assign_items(items, 3) == [Item("one"), Item("two"), Item("", "generate:too_few_items")]
    assert assign_items(items, 1) == [Item("one")]


def test_over_long_output_truncated_then_rejected_if_still_too_long():
    cfg = ParseConfig(max_chars=20)
    # cut at the first newline: the first line fits
    assert assign_items(parse_completion("short message\n" + "x" * 100, cfg), 1) == [Item("short message")]
    # one long line: rejected, the text kept for inspection
    (item,) = parse_completion("y" * 50, cfg)
    assert item.reject_reason == "generate:too_long" and item.text == "y" * 50
    # split none: newlines stay inside the one item
    assert texts(parse_completion("a\nb", ParseConfig(split="none"))) == ["a\nb"]


# ---- templates ------------------------------------------------------------------------------


def test_render_shipped_model_formats():
    label = render_prompt(
        "Intent: {label}\n{shots}Example:", label="track_order", n=1, shots=["where is it", "any news"], shot_template="Example: {text}\n"
    )
    assert label == "Intent: track_order\nExample: where is it\nExample: any news\nExample:"
    assert (
        render_prompt("Intent: {label}\n{shots}Example:", label="x", n=1, shots=[], shot_template="Example: {text}\n")
        == "Intent: x\nExample:"
    )
    para = render_prompt("Paraphrase: {source_text}\nIntent: {label}\nExample:", label="x", n=1, source_text="I forgot my password")
    assert para == "Paraphrase: I forgot my password\nIntent: x\nExample:"


def test_default_templates_are_valid_and_numbered_shots():
    for mode, template in DEFAULT_TEMPLATES.items():
        check_template(template, TEMPLATE_FIELDS[mode], "template")
    out = render_prompt(DEFAULT_TEMPLATES["label"], label="refund", n=4, shots=["a", "b"], shot_template="{i}. {text}\n")
    assert "4 short" in out and out.endswith("1. a\n2. b\n")


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("Intent: {intent}", "uses {intent}"),
        ("Intent: {label", "not a valid format string"),
        ("x {}", "uses {}"),
        ("Rewrite: {label}", "must contain {source_text}"),
    ],
)
def test_bad_templates_name_the_key_and_valid_fields(template, message):
    with pytest.raises(ValueError, match="template") as e:
        check_template(template, TEMPLATE_FIELDS["paraphrase"], "template", required=("source_text",))
    assert message in str(e.value)


# ---- seeded draws ---------------------------------------------------------------------------


def test_draw_shots_is_seeded_distinct_and_excludes_parent(real_texts):
    pool = [s for s in real_texts if s.label == "refund_request"]
    a = draw_shots(pool, 2, np.random.default_rng(1), exclude_id=pool[0].id)
    b = draw_shots(list(reversed(pool)), 2, np.random.default_rng(1), exclude_id=pool[0].id)
    assert [s.id for s in a] == [s.id for s in b]  # input order does not matter
    assert len({s.id for s in a}) == 2 and pool[0].id not in {s.id for s in a}
    assert len(draw_shots(pool, 10, np.random.default_rng(0))) == 3
    assert draw_shots(pool, 0, np.random.default_rng(0)) == []


def test_select_parents_per_label(real_texts):
    picked = select_parents(real_texts, 2, np.random.default_rng(0))
    assert [s.label for s in picked] == ["account_login"] * 2 + ["refund_request"] * 2 + ["track_order"] * 2
    again = select_parents(list(reversed(real_texts)), 2, np.random.default_rng(0))
    assert [s.id for s in picked] == [s.id for s in again]
    assert len(select_parents(real_texts, None, np.random.default_rng(0))) == len(real_texts)
