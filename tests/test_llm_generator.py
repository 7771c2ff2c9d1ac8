"""The LLM generator on tiny GPT-2 / Llama models built in code, saved and loaded back like any model."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import pytest
from examples.text_generators import (
    CHAT_TEMPLATE,
    GPT2_LABEL,
    GPT2_PARAPHRASE,
    SHIPPED_MODEL,
    build_tiny_lm,
    tiny_lm_dir,
)

from synth.config import build_step
from synth.errors import ConfigError, InputError
from synth.generators.llm import LLMGenerator
from synth.util import derive_seed, file_tree_hash

FAST = {"max_new_tokens": 8, "batch_size": 4}


def run(ctx, real, **params):
    g = LLMGenerator(**{"model": str(tiny_lm_dir()), **FAST, **GPT2_LABEL, **params})
    g.setup(ctx)
    try:
        tasks = g.plan(g.inputs(real), ctx)
        return g, tasks, list(g.generate(tasks, ctx))
    finally:
        g.teardown()


def count_generate_calls(g, monkeypatch):
    calls = []
    model = g.backend.model
    original = model.generate

    def counting(*args, **kwargs):
        calls.append(kwargs["input_ids"].shape)
        return original(*args, **kwargs)

    monkeypatch.setattr(model, "generate", counting)
    return calls


def test_requested_count_per_label_and_one_generate_call_per_batch(ctx, real_texts, monkeypatch):
    g = LLMGenerator(model=str(tiny_lm_dir()), **{**FAST, **GPT2_LABEL, "n_per_prompt": 2, "stop": []}, num_per_label=5)
    g.setup(ctx)
    calls = count_generate_calls(g, monkeypatch)
    tasks = g.plan(g.inputs(real_texts), ctx)
    assert [t.extra["n"] for t in tasks] == [2, 2, 1] * 3  # 5 per label asked 2 at a time
    out = list(g.generate(tasks, ctx))
    assert Counter(s.label for s in out) == {"account_login": 5, "refund_request": 5, "track_order": 5}
    assert len(calls) == 3 and [c[0] for c in calls] == [4, 4, 1]  # 9 prompts in batches of 4
    assert len({s.id for s in out}) == 15 and sorted(s.id for s in out) == [f"llm-s0-{i:06d}" for i in range(15)]
    assert ctx.counters["llm"]["generate_calls"] == 3 and ctx.counters["llm"]["prompts"] == 9
    assert g.backend.tokenizer.padding_side == "left"


def test_torch_threads_follow_resources_cpus_and_are_restored(ctx, real_texts, monkeypatch):
    import torch

    before = torch.get_num_threads()
    g = LLMGenerator(model=str(tiny_lm_dir()), resources={"cpus": 2}, num_per_label=1, **{**FAST, **GPT2_LABEL})
    g.setup(ctx)
    seen = []
    original = g.backend.model.generate
    monkeypatch.setattr(g.backend.model, "generate", lambda *a, **kw: seen.append(torch.get_num_threads()) or original(*a, **kw))
    out = list(g.generate(g.plan(real_texts, ctx), ctx))
    assert seen == [2] and out[0].params["threads"] == 2 and torch.get_num_threads() == before


def test_left_padding_does_not_change_greedy_output(ctx, real_texts):
    """A short prompt gives the same greedy text alone and left-padded next to a longer one."""
    solo = run(ctx, real_texts[:1], mode="paraphrase", do_sample=False, batch_size=1, **GPT2_PARAPHRASE)[2]
    pair = run(ctx, [real_texts[0], real_texts[5]], mode="paraphrase", do_sample=False, batch_size=2, **GPT2_PARAPHRASE)[2]
    assert len(pair[0].prompt) != len(pair[1].prompt)
    assert solo[0].text == next(s.text for s in pair if s.parent_id == real_texts[0].id)


def test_same_seed_same_texts_other_seed_other_texts(ctx, real_texts):
    a = [s.text for s in run(ctx, real_texts, num_per_label=3)[2]]
    b = [s.text for s in run(ctx, real_texts, num_per_label=3)[2]]
    ctx.run_seed = 1
    c = [s.text for s in run(ctx, real_texts, num_per_label=3)[2]]
    assert a == b and a != c


def test_provenance(ctx, real_texts):
    g, tasks, out = run(ctx, real_texts, num_per_label=2, shots=2, temperature=0.7)
    s = out[0]
    assert s.model == str(tiny_lm_dir()) and s.model_revision == file_tree_hash(tiny_lm_dir())
    assert s.prompt.startswith(f"Intent: {s.label}\nExample: ") and s.prompt.endswith("\nExample:") and s.prompt.count("Example:") == 3
    assert s.seed == derive_seed(0, "llm", "batch", 0) & 0xFFFF_FFFF
    assert s.params["sampling"] == {
        "do_sample": True,
        "temperature": 0.7,
        "top_p": 0.95,
        "top_k": 50,
        "max_new_tokens": 8,
        "repetition_penalty": 1.0,
        "stop": ["\n"],
    }
    assert s.params["chat_template"] is False and len(s.params["shot_ids"]) == 2
    real_by_id = {r.id: r for r in real_texts}
    assert all(real_by_id[i].label == s.label and real_by_id[i].text in s.prompt for i in s.params["shot_ids"])
    assert json.loads(json.dumps(s.params)) == s.params
    assert all(x.origin == "synthetic" and x.split == "train" and x.modality == "text" for x in out)


def test_paraphrase_rows_carry_parent_id(ctx, real_texts):
    g, tasks, out = run(ctx, real_texts, mode="paraphrase", parents_per_label=2, num_per_parent=2, **GPT2_PARAPHRASE)
    assert len(out) == 3 * 2 * 2
    by_id = {r.id: r for r in real_texts}
    for s in out:
        parent = by_id[s.parent_id]
        assert s.label == parent.label and s.prompt == f"Paraphrase: {parent.text}\nIntent: {parent.label}\nExample:"
    assert Counter(s.parent_id for s in out) == dict.fromkeys({s.parent_id for s in out}, 2)


def test_paraphrase_shots_never_include_the_parent(ctx, real_texts):
    g = LLMGenerator(model="unused", mode="paraphrase", template="{shots}Rewrite: {source_text}\n", shots=2)
    tasks = g.plan(real_texts, ctx)  # planning needs no model
    assert len(tasks) == len(real_texts)
    for t in tasks:
        assert t.parent.id not in t.extra["shot_ids"] and len(t.extra["shot_ids"]) == 2
    assert g.plan([], ctx) == []


def test_empty_output_is_a_recorded_rejection(ctx, real_texts, tmp_path):
    model = build_tiny_lm(tmp_path / "eos-only", suppress_all_but_eos=True)
    g = LLMGenerator(model=str(model), num_per_label=2, **{**FAST, **GPT2_LABEL})
    g.setup(ctx)
    out = list(g.generate(g.plan(real_texts, ctx), ctx))
    assert len(out) == 6 and {s.reject_reason for s in out} == {"generate:empty_output"}
    assert all(s.status == "rejected" and s.text is None and s.params["raw_output"] == "" for s in out)
    assert ctx.counters["llm"]["rejected_empty_output"] == 6


def test_over_long_output_is_rejected(ctx, real_texts):
    out = run(ctx, real_texts, num_per_label=2, max_chars=2, max_new_tokens=12)[2]
    too_long = [s for s in out if s.reject_reason == "generate:too_long"]
    assert too_long and all(len(s.text) > 2 for s in too_long)
    assert all(s.status == "kept" and len(s.text) <= 2 for s in out if s.reject_reason is None)


def test_prompt_beyond_the_context_is_a_recorded_rejection(ctx, real_texts, monkeypatch):
    long = real_texts[0].copy(id="long", text="please check " * 150)  # > 256 positions of the tiny model
    g = LLMGenerator(model=str(tiny_lm_dir()), mode="paraphrase", **{**FAST, **GPT2_PARAPHRASE})
    g.setup(ctx)
    calls = count_generate_calls(g, monkeypatch)
    out = list(g.generate(g.plan([long, real_texts[1]], ctx), ctx))
    by_parent = {s.parent_id: s for s in out}
    assert by_parent["long"].reject_reason == "generate:prompt_too_long" and by_parent["long"].params["batch"]["position"] is None
    assert by_parent[real_texts[1].id].reject_reason != "generate:prompt_too_long"
    assert [c[0] for c in calls] == [1]  # the prompt that fits still went in one call


def test_chat_template_used_when_present(ctx, real_texts):
    chat = str(tiny_lm_dir("gpt2", chat=True))
    params = {"num_per_label": 2, "n_per_prompt": 2, "shots": 1, "template": None, "shot_template": "- {text}\n"}  # the defaults
    g, _, out = run(ctx, real_texts, model=chat, system_prompt="You write customer messages.", **params)
    assert all(s.params["chat_template"] for s in out)
    assert out[0].prompt.startswith("<|system|>\nYou write customer messages.\n<|user|>\nWrite 2 short") and out[0].prompt.endswith(
        "<|assistant|>\n"
    )
    never = run(ctx, real_texts, model=chat, chat_template="never", **params)[2]
    assert never[0].prompt.startswith("Write 2 short") and not never[0].params["chat_template"]
    with pytest.raises(ConfigError, match="no chat template"):
        run(ctx, real_texts, chat_template="always", **params)


def test_llama_style_model(ctx, real_texts, tmp_path):
    model = build_tiny_lm(tmp_path / "llama", arch="llama", chat_template=CHAT_TEMPLATE)
    out = run(
        ctx,
        real_texts,
        model=str(model),
        num_per_label=2,
        **{"n_per_prompt": 2, "shots": 1, "stop": [], "template": None, "shot_template": "- {text}\n"},
    )[2]
    assert len(out) == 6 and out[0].prompt.startswith("<|user|>\n") and out[0].model_revision == file_tree_hash(model)


def test_hub_id_resolves_to_the_commit_hash(ctx, real_texts):
    from huggingface_hub import constants

    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = Path(constants.HF_HUB_CACHE) / "models--synth-test--tiny-gpt2"  # the session's temporary HF_HOME
    shutil.copytree(tiny_lm_dir(), repo / "snapshots" / commit, dirs_exist_ok=True)
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    out = run(ctx, real_texts, model="synth-test/tiny-gpt2", num_per_label=1)[2]
    assert out[0].model == "synth-test/tiny-gpt2" and out[0].model_revision == commit


def test_bad_models_are_input_errors(ctx, tmp_path):
    import torch
    from safetensors.torch import load_file

    with pytest.raises(InputError, match="neither a local folder"):
        LLMGenerator(model="./models/missing").setup(ctx)
    with pytest.raises(InputError, match="not-a-model"):
        LLMGenerator(model="synth-test/not-a-model").setup(ctx)
    pickled = shutil.copytree(tiny_lm_dir(), tmp_path / "pickled")
    torch.save(load_file(pickled / "model.safetensors"), pickled / "pytorch_model.bin")
    (pickled / "model.safetensors").unlink()
    with pytest.raises(InputError, match="safetensors"):
        LLMGenerator(model=str(pickled)).setup(ctx)
    with pytest.raises(ConfigError, match="Hub ids only"):
        LLMGenerator(model=str(tiny_lm_dir()), revision="main").setup(ctx)
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA is not available"):
            LLMGenerator(model=str(tiny_lm_dir()), device="cuda").setup(ctx)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"engine": "vllm"}, "vllm' is not implemented yet"),
        ({"engine": "tgi"}, "unknown engine 'tgi'"),
        ({"template": "Intent: {intent}"}, "template uses {intent}"),
        ({"mode": "paraphrase", "template": "Intent: {label}"}, "must contain {source_text}"),
        ({"template": "Intent: {label}", "shots": 2}, "no {shots} field"),
        ({"shot_template": "Example:"}, "shot_template must contain {text}"),
        ({"split": "none", "n_per_prompt": 3}, "n_per_prompt must be 1"),
        ({"device": "tpu"}, "device"),
        ({"dtype": "int8"}, "dtype"),
        ({"temperature": 0}, "temperature"),
        ({"system_prompt": "hi", "chat_template": "never"}, "system_prompt needs a chat template"),
        ({"num_per_labl": 3}, "unknown key 'num_per_labl'"),
    ],
)
def test_bad_params_are_config_errors_naming_the_key(params, message):
    with pytest.raises(ConfigError) as e:
        build_step({"type": "llm", "model": "m", **params}, "steps", 0)
    assert message in str(e.value)


def test_unknown_label_is_an_input_error(ctx, real_texts):
    g = LLMGenerator(model="unused", labels=["track_order", "nope"])
    with pytest.raises(InputError, match=r"\['nope'\] have no real train text"):
        g.plan(real_texts, ctx)
    assert [
        t.label for t in LLMGenerator(model="unused", labels=["track_order"], num_per_label=2, n_per_prompt=1).plan(real_texts, ctx)
    ] == ["track_order"] * 2


@pytest.mark.skipif(
    not (SHIPPED_MODEL / "config.json").exists(), reason="models/intents-gpt2 not trained yet (scripts/train_intents_lm.py)"
)
def test_shipped_model_loads_and_generates(ctx):
    from synth.sources.tabular import TextFileSource

    src = TextFileSource(path={"train": "data/intents/train.jsonl"}, id_column="id", max_per_label=4)
    real = list(src.read(ctx))
    label = run(ctx, real, model=str(SHIPPED_MODEL), num_per_label=2, shots=2, max_new_tokens=32, batch_size=8)[2]
    para = run(ctx, real, model=str(SHIPPED_MODEL), mode="paraphrase", parents_per_label=1, max_new_tokens=32, **GPT2_PARAPHRASE)[2]
    assert len(label) == 16 and len(para) == 8
    kept = [s for s in label + para if s.kept]
    assert len(kept) >= 12, [(s.text, s.reject_reason) for s in label + para]
    assert all(s.model_revision.startswith("sha256:") for s in kept)
    assert sum(len(s.text.split()) >= 3 for s in kept) >= len(kept) // 2  # a trained model writes sentences, not noise
