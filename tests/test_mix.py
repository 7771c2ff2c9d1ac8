"""Mixing arithmetic (property tests), determinism, shortfalls, files and the CLI."""

from __future__ import annotations

import json
from collections import Counter

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from synth.cli import main
from synth.errors import InputError
from synth.manifest import samples_to_table
from synth.mix import MixSpec, allocate, mix_run, round_half_up, select
from synth.sample import Sample

LABELS = ["a", "b", "c"]


def make_table(real: dict[str, int], syn: dict[str, int], eval_per_label: int = 1, reject_every: int = 4) -> pa.Table:
    rows = []
    for lab, n in real.items():
        rows += [
            Sample(id=f"r-{lab}-{i}", modality="image", origin="real", label=lab, split="train", path=f"data/r/{lab}{i}.png")
            for i in range(n)
        ]
        rows += [Sample(id=f"e-{lab}-{i}", modality="image", origin="real", label=lab, split="eval") for i in range(eval_per_label)]
    for lab, n in syn.items():
        for i in range(n):
            s = Sample(
                id=f"s-{lab}-{i}",
                modality="image",
                origin="synthetic",
                label=lab,
                generator=("g1", "g2")[i % 2],
                parent_id=f"r-{lab}-{i % max(1, real.get(lab, 1))}",
            )
            if i % reject_every == reject_every - 1:
                s.reject("filter:blur" if i % 2 else "dedup:eval_leak")
            rows.append(s)
    return samples_to_table(rows, "t")


def by(mix, origin: str, split: str = "train") -> Counter:
    rows = mix.table.select(["origin", "split", "label", "status"]).to_pylist()
    assert all(r["status"] == "kept" for r in rows if r["origin"] == "synthetic" or r["split"] == "train")
    return Counter(r["label"] for r in rows if r["origin"] == origin and r["split"] == split)


counts = st.dictionaries(st.sampled_from(LABELS), st.integers(1, 12), min_size=1)
ratios = st.sampled_from([0, 0.25, 0.5, 1, 1.5, 2, 3])
FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(real=counts, extra=st.integers(0, 40), ratio=ratios, seed=st.integers(0, 5))
def test_additive_counts_per_label(real, extra, ratio, seed):
    syn = {lab: extra for lab in real}
    table = make_table(real, syn)
    avail = {lab: sum(1 for i in range(extra) if i % 4 != 3) for lab in real}  # kept synthetic
    need = {lab: round_half_up(ratio * n) for lab, n in real.items()}
    spec = MixSpec(ratio=ratio, seed=seed)
    if any(need[lab] > avail[lab] for lab in real):
        with pytest.raises(InputError, match="not enough rows"):
            select(table, spec)
        short = select(table, spec.model_copy(update={"allow_short": True}))
        assert by(short, "synthetic") == +Counter({lab: min(need[lab], avail[lab]) for lab in real})
        assert short.short and all(s["available"] < s["needed"] for s in short.short)
        return
    mix = select(table, spec)
    assert by(mix, "real") == Counter(real)
    assert by(mix, "synthetic") == +Counter(need)
    assert by(mix, "real", "eval") == Counter(dict.fromkeys(real, 1))
    assert mix.n_synthetic == sum(need.values()) and not mix.short


@FAST
@given(real=counts, ratio=ratios, total=st.integers(1, 25), seed=st.integers(0, 3))
def test_fixed_total_sums_and_share(real, ratio, total, seed):
    table = make_table(real, dict.fromkeys(real, 60), reject_every=1000)
    mix = select(table, MixSpec(ratio=ratio, mode="fixed_total", total=total, seed=seed, allow_short=True))
    n_syn = round_half_up(total * ratio / (1 + ratio))
    short_real = sum(s["needed"] - s["available"] for s in mix.short if s["origin"] == "real")
    assert mix.n_synthetic == n_syn
    assert mix.n_real + mix.n_synthetic == total - short_real
    assert all(s["origin"] == "real" for s in mix.short)  # 60 synthetic per label always suffice


@FAST
@given(real=counts, seed=st.integers(0, 9), k=st.integers(1, 4))
def test_paired_real_subset_and_nested_synthetic(real, seed, k):
    table = make_table(real, dict.fromkeys(real, 40))
    mixes = [select(table, MixSpec(ratio=r, seed=seed, real_per_class=k, allow_short=True)) for r in (0, 0.5, 1, 2)]
    reals = [{i for i in m.train_ids if i.startswith("r-")} for m in mixes]
    syns = [{i for i in m.train_ids if i.startswith("s-")} for m in mixes]
    assert all(r == reals[0] for r in reals), "every ratio of a seed uses the same real subset"
    assert all(Counter(i.split("-")[1] for i in reals[0])[lab] == min(k, n) for lab, n in real.items())
    assert all(a <= b for a, b in zip(syns, syns[1:])), "a larger ratio takes a superset of synthetic rows"


@FAST
@given(real=counts, ratio=ratios, seed=st.integers(0, 9), data=st.data())
def test_deterministic_and_order_independent(real, ratio, seed, data):
    table = make_table(real, dict.fromkeys(real, 40))
    spec = MixSpec(ratio=ratio, seed=seed, allow_short=True)
    a, b = select(table, spec), select(table, spec)
    assert a.table.equals(b.table) and a.fingerprint == b.fingerprint
    perm = data.draw(st.permutations(range(table.num_rows)))
    c = select(table.take(pa.array(perm)), spec)
    assert sorted(c.train_ids) == sorted(a.train_ids)


def test_never_rejected_or_eval_leaks():
    table = make_table({"a": 5, "b": 5}, {"a": 40, "b": 40})
    mix = select(table, MixSpec(ratio=4))
    assert set(mix.table.column("status").to_pylist()) == {"kept"}
    unf = select(table, MixSpec(ratio=6, include_rejected=True))
    reasons = Counter(unf.table.column("reject_reason").to_pylist())
    assert reasons["filter:blur"] > 0 and "dedup:eval_leak" not in reasons


def test_filters_caps_and_controls():
    table = make_table({"a": 4, "b": 4}, {"a": 30, "b": 30})
    only_g1 = select(table, MixSpec(ratio=2, generators=["g1"]))
    assert set(only_g1.table.filter(pa.compute.equal(only_g1.table["origin"], "synthetic"))["generator"].to_pylist()) == {"g1"}
    capped = select(table, MixSpec(ratio=2, max_per_parent=2, allow_short=True))
    parents = Counter(p for p, o in zip(capped.table["parent_id"].to_pylist(), capped.table["origin"].to_pylist()) if o == "synthetic")
    assert parents and max(parents.values()) <= 2
    sub = select(table, MixSpec(ratio=1, real_per_class=1, parents_in_real=True, allow_short=True))
    chosen = {i for i in sub.train_ids if i.startswith("r-")}
    assert all(p in chosen for p, o in zip(sub.table["parent_id"].to_pylist(), sub.table["origin"].to_pylist()) if o == "synthetic")
    rep = select(table, MixSpec(ratio=1.5, fill="real_repeat"))
    assert rep.n_synthetic == 0 and len(rep.train_ids) == 8 + 12 and len(set(rep.table["id"].to_pylist())) == rep.table.num_rows
    so = select(table, MixSpec(ratio=1, synthetic_only=True))
    assert so.n_real == 0 and so.n_synthetic == 16


def test_allocate_is_exact_and_proportional():
    assert allocate(10, {("i", "a"): 1, ("i", "b"): 1, ("i", "c"): 2}) == {("i", "a"): 3, ("i", "b"): 2, ("i", "c"): 5}  # tie -> by key
    assert sum(allocate(7, {("i", "a"): 3, ("i", "b"): 5, ("i", "c"): 1}).values()) == 7
    assert allocate(0, {("i", "a"): 3}) == {("i", "a"): 0}


def test_spec_validation():
    with pytest.raises(ValueError, match="needs total"):
        MixSpec(ratio=1, mode="fixed_total")
    with pytest.raises(ValueError, match="one real budget"):
        MixSpec(ratio=1, real_per_class=2, real_fraction=0.5)


def test_mix_files_identical_and_cli(tmp_path, capsys):
    from examples.outputs import build_run

    run = build_run(tmp_path / "run", per_label=3, synth_per_real=2)
    a = mix_run(run, tmp_path / "m1", MixSpec(ratio=1, seed=3))
    b = mix_run(run, tmp_path / "m2", MixSpec(ratio=1, seed=3))
    for name in ("manifest.parquet", "mix.json"):  # same inputs and seed: identical files
        assert (tmp_path / "m1" / name).read_bytes() == (tmp_path / "m2" / name).read_bytes()
    info = json.loads((tmp_path / "m1" / "mix.json").read_text())
    assert a["fingerprint"] == b["fingerprint"] == info["fingerprint"]
    assert info["source"]["run_dir"] == str(run.resolve())
    tr = info["counts"]["image"]["train"]
    assert tr["real"] == tr["synthetic"] == dict.fromkeys([str(i) for i in range(10)], 3)
    assert info["counts"]["image"]["eval"]["real"]
    with pytest.raises(InputError, match="run directory"):
        mix_run(run, run, MixSpec(ratio=1))
    # CLI: not enough synthetic -> exit 2 naming what is available; --allow-short records it
    assert main(["mix", str(run), "--ratio", "9", "--out", str(tmp_path / "m9")]) == 2
    err = capsys.readouterr().err
    assert "available" in err and "--allow-short" in err
    assert main(["mix", str(run), "--ratio", "9", "--out", str(tmp_path / "m9"), "--allow-short"]) == 0
    short = json.loads((tmp_path / "m9" / "mix.json").read_text())
    assert short["short"] and short["spec"]["allow_short"] and short["n_synthetic_train"] < 9 * short["n_real_train"]
    assert main(["mix", str(run), "--ratio", "1", "--mode", "fixed_total", "--out", str(tmp_path / "x")]) == 2
    assert "--total" in capsys.readouterr().err
