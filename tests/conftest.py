"""Hermetic test set-up: offline, temporary HF caches, no progress bars, no albumentations ping."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

_TMP_HOME = tempfile.mkdtemp(prefix="synth-test-hf-")
os.environ.update(
    HF_HUB_OFFLINE="1",
    TRANSFORMERS_OFFLINE="1",
    HF_DATASETS_OFFLINE="1",
    HF_HOME=_TMP_HOME,
    HF_DATASETS_CACHE=os.path.join(_TMP_HOME, "datasets"),
    NO_ALBUMENTATIONS_UPDATE="1",
    SYNTH_PROGRESS="0",
    TOKENIZERS_PARALLELISM="false",
    HF_DATASETS_DISABLE_PROGRESS_BARS="1",
    HF_HUB_DISABLE_PROGRESS_BARS="1",
    DISABLE_TQDM="1",
    MPLBACKEND="Agg",
)

import pytest  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import plugins.slow_steps  # noqa: E402,F401  (test-only steps: slow_text, min_words)


def pytest_collection_modifyitems(config, items):
    try:
        import torch

        has_gpu = torch.cuda.is_available()
    except ImportError:
        has_gpu = False
    skip_gpu = pytest.mark.skip(reason="needs a CUDA GPU")
    skip_net = pytest.mark.skip(reason="needs the Hugging Face Hub: set SYNTH_TEST_NETWORK=1 on a machine with network")
    for item in items:
        if "gpu" in item.keywords and not has_gpu:
            item.add_marker(skip_gpu)
        if "network" in item.keywords and os.environ.get("SYNTH_TEST_NETWORK") != "1":
            item.add_marker(skip_net)


@pytest.fixture(autouse=True)
def _no_progress_and_cwd(monkeypatch):
    monkeypatch.setenv("SYNTH_PROGRESS", "0")
    monkeypatch.chdir(ROOT)  # pipelines reference repo-relative paths (models/, data/)


@pytest.fixture
def ctx(tmp_path):
    from synth.steps import Context

    return Context(run_dir=tmp_path / "run", run_seed=0, run_id="test")


@pytest.fixture
def real_images(ctx):
    """20 real digit images (2 per class, train split), payloads in ctx.run_dir."""
    return real_image_samples(ctx, per_label=2)


@pytest.fixture
def real_texts():
    return real_text_samples()


def real_image_samples(ctx, per_label: int = 2):
    from synth.sources.digits import DigitsSource

    return [s for s in DigitsSource(max_per_label=per_label).read(ctx) if s.split == "train"]


TEXTS = {
    "track_order": ["where is my package right now", "my order has not arrived yet, can you check", "track parcel 1234 please"],
    "refund_request": ["i want my money back for the broken lamp", "please refund the jacket i returned", "how do i get a refund"],
    "account_login": ["i cannot log in to my account", "password reset link never came", "my account is locked after three tries"],
}


def real_text_samples():
    from synth.sample import Sample
    from synth.util import sha256_text

    out = []
    for label, texts in TEXTS.items():
        for i, t in enumerate(texts):
            out.append(
                Sample(
                    id=f"txt-{label}-{i}",
                    modality="text",
                    origin="real",
                    label=label,
                    split="train",
                    text=t,
                    content_sha256=sha256_text(t),
                    uri=f"test://{label}/{i}",
                )
            )
    return out
