"""Pipeline files: validation errors name the key, overrides, YAML round trip, run ids."""

from __future__ import annotations

import pytest
import yaml

from synth.config import Pipeline, apply_overrides, load_pipeline
from synth.errors import ConfigError
from synth.sources.digits import DigitsSource
from synth.sources.tabular import TextFileSource

BASE = {"name": "t", "seed": 1, "sources": [{"type": "digits", "max_per_label": 2}], "steps": [{"type": "min_words", "min_words": 2}]}


def _write(tmp_path, data) -> str:
    p = tmp_path / "p.yaml"
    p.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return str(p)


def test_unknown_top_level_key_is_named(tmp_path):
    with pytest.raises(ConfigError, match="bogus_key") as e:
        load_pipeline(_write(tmp_path, {**BASE, "bogus_key": 1}))
    assert "Valid options" in str(e.value) and "sources" in str(e.value)


def test_unknown_step_param_names_the_path_and_valid_keys(tmp_path):
    bad = {**BASE, "steps": [{"type": "min_words", "min_wordz": 2}]}
    with pytest.raises(ConfigError) as e:
        load_pipeline(_write(tmp_path, bad))
    msg = str(e.value)
    assert "steps[0].min_wordz" in msg and "min_words" in msg and "Did you mean" in msg


def test_wrong_type_and_unknown_step_type(tmp_path):
    with pytest.raises(ConfigError, match=r"sources\[0\]\.max_per_label"):
        load_pipeline(_write(tmp_path, {**BASE, "sources": [{"type": "digits", "max_per_label": "many"}]}))
    with pytest.raises(ConfigError, match="unknown step type 'digitz'.*digits"):
        load_pipeline(_write(tmp_path, {**BASE, "sources": [{"type": "digitz"}]}))
    with pytest.raises(ConfigError, match="cannot stand in 'steps'"):
        load_pipeline(_write(tmp_path, {**BASE, "steps": [{"type": "digits"}]}))


def test_yaml_syntax_error_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="not valid YAML at line 2, column 10"):
        load_pipeline(_write(tmp_path, "name: x\nsources: : [\n"))
    with pytest.raises(ConfigError, match="not found"):
        load_pipeline(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="must hold a mapping"):
        load_pipeline(_write(tmp_path, "- 1\n- 2\n"))


def test_overrides_by_index_and_name():
    raw = apply_overrides(BASE, ["seed=5", "steps.min_words.min_words=7", "sources.0.max_per_label=3", "description=hello world"])
    assert raw["seed"] == 5 and raw["steps"][0]["min_words"] == 7 and raw["sources"][0]["max_per_label"] == 3
    assert BASE["seed"] == 1, "overrides must not mutate the input"
    with pytest.raises(ConfigError, match="no item named 'nope'"):
        apply_overrides(BASE, ["steps.nope.x=1"])
    with pytest.raises(ConfigError, match="key.path=value"):
        apply_overrides(BASE, ["seed"])
    with pytest.raises(ConfigError, match="out of range"):
        apply_overrides(BASE, ["steps.4.x=1"])


def test_yaml_is_a_lossless_view_and_run_id_is_stable(tmp_path):
    p = Pipeline(name="py", seed=3, sources=[DigitsSource(max_per_label=2), TextFileSource(name="t", path="x.jsonl")])
    again = Pipeline.from_config(yaml.safe_load(p.to_yaml()))
    assert again.to_config() == p.to_config()
    assert again.run_id == p.run_id
    assert Pipeline.from_config({**p.to_config(), "seed": 4}).run_id != p.run_id
    assert Pipeline.from_config({**p.to_config(), "shards": 9}).run_id == p.run_id  # shards are checked separately


def test_duplicate_step_names_are_an_error():
    with pytest.raises(ConfigError, match="unique"):
        Pipeline(name="x", sources=[DigitsSource(), DigitsSource()])


def test_shipped_pipelines_validate():
    from pathlib import Path

    for path in sorted(Path("pipelines").glob("*.yaml")):
        load_pipeline(path)


def test_readme_example_pipeline_validates(tmp_path):
    from pathlib import Path

    readme = Path("README.md").read_text()
    block = readme.split("```yaml\n", 1)[1].split("```", 1)[0]
    p = tmp_path / "readme.yaml"
    p.write_text(block)
    pipe = load_pipeline(p)
    assert [s.type_name for s in pipe.steps][:2] == ["diffusion", "albumentations"]
