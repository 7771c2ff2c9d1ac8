"""MinHash signatures: bit-identical to datasketch 2.x affine32, normalisation, shingles."""

from __future__ import annotations

import random

import numpy as np
import pytest

datasketch = pytest.importorskip("datasketch")

from synth.dedup import minhash as mh  # noqa: E402
from synth.errors import ConfigError  # noqa: E402

WORDS = [
    "the",
    "Cat",
    "sat",
    "on",
    "mat,",
    "naïve",
    "café",
    "ÅNGSTRÖM",
    "ﬁne",
    "Straße",
    "日本語",
    "😀",
    "x" * 17,
    "y" * 33,
    "dash-word",
    "(paren)",
    "end.",
    "ΣΟΦΟΣ",
    "don't",
    "a\u00a0b",
    "tab\tsep",
]


def _random_docs(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    seps = [" ", "  ", "\n", "\t", " - ", ", ", "\u3000", "\u2028"]
    docs = ["", "   ", "!!! ??", "one", "a b c d", "a b c d e", "a b c d e f", "zero\x00byte in it"]
    for _ in range(n):
        k = rng.choice([0, 1, 3, 4, 5, 6, 12, 40, 120])
        docs.append("".join(rng.choice(WORDS) + rng.choice(seps) for _ in range(k)))
    return docs


def _datasketch_row(text: str, num_perm: int, seed: int, ngram: int = 5, norm=mh.DEFAULT_NORM) -> np.ndarray:
    m = datasketch.MinHash(num_perm=num_perm, seed=seed, scheme="affine32", hashfunc=mh.xxh32_hash)
    m.update_batch(mh.shingles(text, ngram, norm))
    return m.hashvalues


@pytest.mark.parametrize(("num_perm", "seed", "ngram"), [(16, 1, 5), (128, 1, 5), (64, 42, 3), (256, 7, 1)])
def test_signatures_bit_identical_to_datasketch(num_perm: int, seed: int, ngram: int) -> None:
    docs = _random_docs(60, seed)
    sig = mh.text_signatures(docs, num_perm=num_perm, seed=seed, ngram=ngram, batch_size=17)
    assert sig.dtype == np.uint32 and sig.shape == (len(docs), num_perm)
    for text, row in zip(docs, sig):
        ref = _datasketch_row(text, num_perm, seed, ngram)
        assert ref.dtype == np.uint32
        np.testing.assert_array_equal(row, ref, err_msg=repr(text))


def test_every_hash_tail_length_matches() -> None:
    """Single-word documents of 1..40 bytes walk every branch of the vectorised xxh32."""
    docs = ["".join(chr(97 + (i * 7 + k) % 26) for k in range(i)) for i in range(1, 41)]
    sig = mh.text_signatures(docs, num_perm=8)
    for text, row in zip(docs, sig):
        np.testing.assert_array_equal(row, _datasketch_row(text, 8, 1))


def test_permutations_match_datasketch() -> None:
    for num_perm, seed in [(1, 0), (128, 1), (200, 12345)]:
        a, b = mh.permutations(num_perm, seed)
        ref = datasketch.MinHash(num_perm=num_perm, seed=seed, scheme="affine32").permutations
        np.testing.assert_array_equal(a, ref[0])
        np.testing.assert_array_equal(b, ref[1])


def test_empty_and_short_documents() -> None:
    assert mh.shingles("", 5) == []
    assert mh.shingles(" ,;!? ", 5) == []
    assert mh.shingles("Three, short words!", 5) == [b"three short words"]
    assert mh.shingles("a b c d e f", 5) == [b"a b c d e", b"b c d e f"]
    sig = mh.text_signatures(["", "!!!", "hello"], num_perm=32)
    np.testing.assert_array_equal(mh.is_empty(sig), [True, True, False])
    assert (sig[0] == np.uint32(0xFFFFFFFF)).all()


def test_batching_does_not_change_signatures(monkeypatch: pytest.MonkeyPatch) -> None:
    docs = _random_docs(40, 3)
    ref = mh.text_signatures(docs, batch_size=1000)
    np.testing.assert_array_equal(mh.text_signatures(docs, batch_size=1), ref)
    monkeypatch.setattr(mh, "_MAX_BATCH_CHARS", 50)  # batches cut by text size, not by count
    np.testing.assert_array_equal(mh.text_signatures(docs, batch_size=1000), ref)
    with pytest.raises(ConfigError, match="strings"):
        mh.text_signatures(["fine", None])


def test_normalization_steps_and_flags() -> None:
    text = "Hello,   WORLD!! ﬁne\tcafé — “quoted”"
    assert mh.normalize_text(text) == "hello world fine café quoted"
    assert mh.normalize_text(text, mh.TextNorm(lowercase=False)) == "Hello WORLD fine café quoted"
    assert mh.normalize_text(text, mh.TextNorm(nfkc=False)) == "hello world ﬁne café quoted"
    kept = mh.normalize_text(text, mh.TextNorm(strip_punctuation=False))
    assert kept == "hello, world!! fine café — “quoted”"


def test_normalization_flags_match_datasketch() -> None:
    docs = _random_docs(30, 9)
    for norm in [mh.TextNorm(lowercase=False), mh.TextNorm(nfkc=False, strip_punctuation=False)]:
        sig = mh.text_signatures(docs, num_perm=16, norm=norm)
        for text, row in zip(docs, sig):
            np.testing.assert_array_equal(row, _datasketch_row(text, 16, 1, norm=norm))


def test_scaffold_is_removed_so_templates_do_not_merge() -> None:
    template = "You are a helpful assistant. Write a short, polite reply to the customer about the order."
    body_a = "thanks for waiting your parcel ships monday"
    body_b = "sorry the blue mug is out of stock until june"
    docs = [f"{template} {body_a}", f"{template.upper()} {body_b}"]
    plain = mh.text_signatures(docs, num_perm=128)
    norm = mh.TextNorm(scaffold=(template,))
    assert mh.normalize_text(docs[0], norm) == body_a
    scaffolded = mh.text_signatures(docs, num_perm=128, norm=norm)
    assert (plain[0] == plain[1]).mean() > 0.3
    assert (scaffolded[0] == scaffolded[1]).mean() < 0.1
    for text, row in zip(docs, scaffolded):
        np.testing.assert_array_equal(row, _datasketch_row(text, 128, 1, norm=norm))


def test_lean_minhash_round_trip() -> None:
    docs = ["the quick brown fox jumps over the lazy dog again", "the quick brown fox jumps over the lazy cat"]
    sig = mh.text_signatures(docs, num_perm=64, seed=5)
    lean = [mh.to_lean_minhash(row, seed=5) for row in sig]
    full = [datasketch.MinHash(64, 5, scheme="affine32", hashfunc=mh.xxh32_hash) for _ in docs]
    for m, text in zip(full, docs):
        m.update_batch(mh.shingles(text))
    assert lean[0] == datasketch.LeanMinHash(full[0])
    assert lean[0].jaccard(lean[1]) == full[0].jaccard(full[1])
    buf = bytearray(lean[1].bytesize())
    lean[1].serialize(buf)
    np.testing.assert_array_equal(datasketch.LeanMinHash.deserialize(buf).hashvalues, sig[1])


def test_shingle_hash_sets_and_exact_jaccard() -> None:
    docs = _random_docs(30, 11)
    values, offsets = mh.shingle_hash_sets(docs, batch_size=7)
    for i, text in enumerate(docs):
        ref = sorted({mh.xxh32_hash(s) for s in mh.shingles(text)})
        assert values[offsets[i] : offsets[i + 1]].tolist() == ref
    pairs = np.array([(i, j) for i in range(len(docs)) for j in range(i + 1, len(docs))])
    got = mh.exact_jaccard(docs, pairs)
    for (i, j), x in zip(pairs.tolist(), got):
        a, b = set(mh.shingles(docs[i])), set(mh.shingles(docs[j]))
        assert x == pytest.approx(len(a & b) / len(a | b) if a | b else 0.0)


def test_scheme_info_and_bad_parameters() -> None:
    info = mh.scheme_info(num_perm=64, seed=3)
    assert info["scheme"] == "affine32" and info["num_perm"] == 64 and info["seed"] == 3
    assert info["datasketch_version"].split(".")[0] == datasketch.__version__.split(".")[0] == "2"
    assert "xxh32" in info["hash"]
    with pytest.raises(ConfigError, match="num_perm"):
        mh.text_signatures(["a"], num_perm=0)
    with pytest.raises(ConfigError, match="ngram"):
        mh.text_signatures(["a"], ngram=0)
