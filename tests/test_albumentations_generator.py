"""The albumentations generator: seeded, order-independent variants with recorded applied
parameters; transform dicts validated at build time."""

from __future__ import annotations

import json

import pytest
from examples.image_generators import TRANSFORMS

from synth.config import build_step
from synth.errors import ConfigError
from synth.generators import albumentations_gen
from synth.generators.albumentations_gen import AlbumentationsGenerator
from synth.steps import Context

pytest.importorskip("albumentations")


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """20 real digit images (2 per class), absolute payload paths, made once for the module."""
    from conftest import real_image_samples

    ctx = Context(run_dir=tmp_path_factory.mktemp("real"))
    return [s.copy(path=str(s.resolve(ctx.run_dir))) for s in real_image_samples(ctx, per_label=2)]


def run(params, real, run_dir, seed=7, reverse=False):
    ctx = Context(run_dir=run_dir, run_seed=seed, run_id="t")
    g = AlbumentationsGenerator(**params)
    g.setup(ctx)
    tasks = g.plan(g.inputs(real), ctx)
    return list(g.generate(tasks[::-1] if reverse else tasks, ctx)), ctx


def by_id(samples):
    return {s.id: s.content_sha256 for s in samples}


def test_variants_reproduce_under_a_seed_in_any_order(digits, tmp_path):
    params = {"transforms": TRANSFORMS, "num_per_parent": 2}
    a, _ = run(params, digits, tmp_path / "a")
    b, _ = run(params, digits, tmp_path / "b", reverse=True)  # another processing order (another shard layout)
    c, _ = run(params, digits, tmp_path / "c", seed=8)
    assert len(a) == 40 and by_id(a) == by_id(b)
    assert [s.seed for s in a] != [s.seed for s in c] and by_id(a) != by_id(c)
    assert len(set(by_id(a).values())) > 30  # variants differ from each other


def test_applied_parameters_parent_and_payload_are_recorded(digits, tmp_path):
    out, ctx = run({"transforms": TRANSFORMS, "num_per_parent": 1, "labels": ["3"]}, digits, tmp_path)
    parents = {s.id: s for s in digits if s.label == "3"}
    assert len(out) == 2 and {s.parent_id for s in out} == set(parents)
    for s in out:
        img, parent = s.load_image(ctx.run_dir), parents[s.parent_id].load_image()
        assert img.size == parent.size and img.mode == parent.mode == "L"
        assert s.label == "3" and s.origin == "synthetic" and s.uri == s.path == f"data/albumentations/{s.id}.png"
        applied = s.params["applied"]
        assert applied and {a["transform"] for a in applied} <= {"HorizontalFlip", "Affine", "RandomBrightnessContrast"}
        affine = next(a["params"] for a in applied if a["transform"] == "Affine")  # p=1: always applied
        assert -20 <= affine["rotate"] <= 20 and len(affine["matrix"]) == 3
        assert s.params["albumentations_version"].startswith("2.0.") and s.model == "albumentations"
        json.dumps(s.params, allow_nan=False)  # plain JSON, no numpy types


def test_full_to_dict_output_is_accepted_and_equivalent(digits, tmp_path):
    import albumentations as A

    compose = A.Compose([albumentations_gen._build(t, "t", A) for t in TRANSFORMS])
    full = A.to_dict(compose)  # {"__version__": ..., "transform": {"__class_fullname__": "Compose", ...}}
    a, _ = run({"transforms": TRANSFORMS}, digits, tmp_path / "a")
    b, _ = run({"transforms": full}, digits, tmp_path / "b")
    c, _ = run({"transforms": full["transform"]}, digits, tmp_path / "c")
    assert by_id(a) == by_id(b) == by_id(c)


def test_subset_of_parents(digits, tmp_path):
    ctx = Context(run_dir=tmp_path)
    g = AlbumentationsGenerator(transforms=TRANSFORMS, num_per_parent=2, labels=["0", "1"], max_parents_per_label=1)
    g.setup(ctx)
    tasks = g.plan(g.inputs(digits), ctx)
    first = sorted(min(s.id for s in digits if s.label == lab) for lab in ("0", "1"))  # the first real image by id, per label
    assert [(t.index, t.parent.id) for t in tasks] == [(0, first[0]), (1, first[0]), (2, first[1]), (3, first[1])]
    assert g.plan([], ctx) == [] and list(g.generate([], ctx)) == []


@pytest.mark.parametrize(
    ("transforms", "match"),
    [
        (
            [{"__class_fullname__": "HorizontalFlipp", "p": 1}],
            r"transforms\[0\].__class_fullname__: unknown albumentations transform 'HorizontalFlipp'. Did you mean 'HorizontalFlip'",
        ),
        (
            [{"__class_fullname__": "Blur", "p": 1}, {"__class_fullname__": "Affine", "rotat": 10}],
            r"transforms\[1\].rotat: not an argument of Affine. Valid: .*rotate",
        ),
        ([{"__class_fullname__": "Affine", "rotate": "a lot"}], r"transforms\[0\] \(Affine\): invalid arguments"),
        ([{"p": 1}], r"transforms\[0\]: missing '__class_fullname__'"),
        (
            {
                "__class_fullname__": "Compose",
                "transforms": [{"__class_fullname__": "OneOf", "transforms": [{"__class_fullname__": "Nope"}]}],
            },
            r"transforms.transforms\[0\].transforms\[0\].__class_fullname__: unknown",
        ),
        ([{"__class_fullname__": "Blur", "seed": 3}], r"transforms\[0\].seed: set by synth per sample"),
        (["HorizontalFlip"], r"transforms\[0\]: expected a mapping"),
    ],
)
def test_invalid_transform_dicts_fail_at_build_time_naming_the_key(transforms, match):
    with pytest.raises(ConfigError, match=match):
        build_step({"type": "albumentations", "transforms": transforms}, "steps", 0)


def test_non_image_output_is_a_config_error(digits, tmp_path):
    with pytest.raises(ConfigError, match="must be uint8"):
        run({"transforms": [{"__class_fullname__": "Normalize", "p": 1.0}], "labels": ["0"]}, digits, tmp_path)


def test_only_the_mit_2_0_line_is_accepted(monkeypatch):
    monkeypatch.setattr(albumentations_gen.metadata, "version", lambda name: "2.1.0")
    with pytest.raises(ConfigError, match="MIT 2.0.x line only"):
        albumentations_gen.import_albumentations()

    def missing(name):
        raise albumentations_gen.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(albumentations_gen.metadata, "version", missing)
    with pytest.raises(ConfigError, match="AlbumentationsX is not supported"):
        albumentations_gen.import_albumentations()


def test_transforms_draw_independently(digits, tmp_path):
    """Compose.set_random_seed (and Compose(seed=...)) in albumentations 2.0 gives every transform
    its own rng seeded alike, so two p=0.5 flips always fire together; the step shares one seeded
    stream between them instead."""
    flips = [{"__class_fullname__": "HorizontalFlip", "p": 0.5}, {"__class_fullname__": "VerticalFlip", "p": 0.5}]
    out, _ = run({"transforms": flips, "num_per_parent": 3}, digits, tmp_path)
    together = sum(len(s.params["applied"]) in (0, 2) for s in out) / len(out)
    assert len(out) == 60 and 0.25 < together < 0.75
