"""Text normalisation, word shingles and vectorised MinHash signatures.

The signatures are bit-identical to datasketch 2.x ``MinHash(num_perm, seed, scheme="affine32",
hashfunc=xxh32_hash)`` updated with :func:`shingles` of the same text, so any row can be loaded
with ``datasketch.LeanMinHash(seed=seed, hashvalues=row, scheme="affine32")``.

The datasketch ``affine32`` scheme (since 2.0.0), reproduced here:

* permutations: ``gen = np.random.RandomState(seed)``;
  ``a = gen.randint(0, 2**31, num_perm, dtype=uint32) * 2 + 1`` (odd, so a bijection), then
  ``b = gen.randint(0, 2**32, num_perm, dtype=uint32)``;
* each input hash ``h = hashfunc(shingle_bytes)`` (a uint32) is pre-mixed once with the
  MurmurHash3 32-bit finaliser ``fmix32``, then ``phv_k = a_k * fmix32(h) + b_k mod 2**32``;
* the signature is the element-wise minimum over the set (``0xFFFFFFFF`` for an empty set),
  stored as ``uint32``.

The hash function is xxHash32 with seed 0 over the UTF-8 bytes of a shingle: in Python it is the
C function ``xxhash.xxh32_intdigest`` (plain callable, usable as datasketch's ``hashfunc``); the
batch path computes the same function in a numba kernel over one byte buffer per batch, with no
Python call per document, token or shingle.

Shingles: after :func:`normalize_text`, tokens are the whitespace-separated words; the shingles
are the word n-grams joined by one space. A document with fewer than ``ngram`` tokens gives one
shingle (all its tokens); a document with no tokens gives the empty set.
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any

import numpy as np
from numba import njit

from synth.errors import ConfigError

SCHEME = "affine32"
DATASKETCH_VERSION = "2.0.0"  # the datasketch release whose affine32 scheme is reproduced and tested
HASH_NAME = "xxh32(seed=0) of UTF-8 shingle bytes"
EMPTY_VALUE = np.uint32(0xFFFFFFFF)
_SEP = "\x00"  # document separator inside a batch buffer; NUL inside a document counts as a space


def xxh32_hash(data: bytes) -> int:
    """The shingle hash, usable as datasketch's ``hashfunc``.

    Reads: bytes. Returns: xxHash32 (seed 0) as an int in [0, 2**32).
    """
    import xxhash

    return xxhash.xxh32_intdigest(data)


@dataclass(frozen=True)
class TextNorm:
    """How text is normalised before shingling.

    Whitespace is always collapsed (tokens are whitespace-separated words). ``scaffold`` lists
    prompt-template strings or prefixes; each is normalised the same way and every occurrence of
    it as a whole word sequence is removed, so templated generations are compared on what they
    add rather than on the shared template.
    """

    lowercase: bool = True
    nfkc: bool = True
    strip_punctuation: bool = True
    scaffold: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Returns: a JSON-able dict of the settings (for the manifest / stats)."""
        return {**asdict(self), "scaffold": list(self.scaffold)}


DEFAULT_NORM = TextNorm()


class _Table(dict):
    """A lazily filled ``str.translate`` table: punctuation -> deleted, whitespace -> ' '."""

    def __init__(self, strip_punctuation: bool, nul_is_space: bool) -> None:
        super().__init__()
        self.strip = strip_punctuation
        self.nul = nul_is_space
        for cp in range(128):
            self[cp]  # prefill ASCII so CPython's ASCII fast path sees plain dict hits

    def __missing__(self, cp: int) -> str | None:
        ch = chr(cp)
        if cp == 0:
            out: str | None = " " if self.nul else ch
        elif ch.isspace():
            out = " "
        elif self.strip and (ch in string.punctuation or unicodedata.category(ch)[0] == "P"):
            out = None
        else:
            out = ch
        self[cp] = out
        return out


@lru_cache(maxsize=8)
def _table(strip_punctuation: bool, nul_is_space: bool) -> _Table:
    return _Table(strip_punctuation, nul_is_space)


def _normalize_chars(text: str, norm: TextNorm, nul_is_space: bool) -> str:
    if norm.nfkc:
        text = unicodedata.normalize("NFKC", text)
    if norm.lowercase:
        text = text.lower()
    return text.translate(_table(norm.strip_punctuation, nul_is_space))


@lru_cache(maxsize=64)
def _scaffold_patterns(norm: TextNorm) -> tuple[str, ...]:
    plain = TextNorm(norm.lowercase, norm.nfkc, norm.strip_punctuation)
    pats = {" " + normalize_text(s, plain) + " " for s in norm.scaffold}
    pats.discard("  ")
    return tuple(sorted(pats, key=lambda p: (-len(p), p)))  # longest first, deterministic


def _remove_scaffold(padded: str, patterns: tuple[str, ...]) -> str:
    for pat in patterns:
        while pat in padded:
            padded = padded.replace(pat, " ")
    return padded


def normalize_text(text: str, norm: TextNorm = DEFAULT_NORM) -> str:
    """Normalise one document (the reference; the batch path gives the same tokens).

    Reads: a string. Returns: NFKC-normalised, lower-cased text without punctuation (Unicode
    category P* and ASCII ``string.punctuation``), scaffold removed, words joined by single spaces.
    """
    text = _normalize_chars(text, norm, nul_is_space=True)
    if norm.scaffold:
        text = _remove_scaffold(" " + " ".join(text.split()) + " ", _scaffold_patterns(norm))
    return " ".join(text.split())


def shingles(text: str, ngram: int = 5, norm: TextNorm = DEFAULT_NORM) -> list[bytes]:
    """Word n-gram shingles of one document, as UTF-8 bytes (the datasketch-facing reference).

    Reads: a string. Returns: the list of shingles (may repeat; the set is what counts); one
    shingle if the document has fewer than ``ngram`` words, ``[]`` if it has none.
    """
    tokens = normalize_text(text, norm).split(" ")
    if tokens == [""]:
        return []
    if len(tokens) <= ngram:
        return [" ".join(tokens).encode("utf-8", "surrogatepass")]
    return [
        " ".join(tokens[i : i + ngram]).encode("utf-8", "surrogatepass")
        for i in range(len(tokens) - ngram + 1)
    ]


def permutations(num_perm: int = 128, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """The affine32 permutation parameters, exactly as datasketch 2.x draws them.

    Returns: ``(a, b)``, two uint32 arrays of length ``num_perm`` (``a`` odd).
    """
    if num_perm < 1:
        raise ConfigError(f"num_perm must be a positive integer, got {num_perm!r}.")
    gen = np.random.RandomState(seed)
    a = gen.randint(0, 1 << 31, num_perm, dtype=np.uint32) * np.uint32(2) + np.uint32(1)
    b = gen.randint(0, 1 << 32, num_perm, dtype=np.uint32)
    return a, b


def fmix32(h: np.ndarray) -> np.ndarray:
    """MurmurHash3's 32-bit finaliser (datasketch's pre-mix), element-wise on a uint32 array."""
    h = np.asarray(h, dtype=np.uint32)
    h = h ^ (h >> np.uint32(16))
    h = h * np.uint32(0x85EBCA6B)
    h = h ^ (h >> np.uint32(13))
    h = h * np.uint32(0xC2B2AE35)
    return h ^ (h >> np.uint32(16))


def scheme_info(
    num_perm: int = 128, seed: int = 1, ngram: int = 5, norm: TextNorm = DEFAULT_NORM
) -> dict[str, Any]:
    """Returns: what produced a signature matrix, for the manifest / stats.json."""
    return {
        "scheme": SCHEME,
        "datasketch_version": DATASKETCH_VERSION,
        "num_perm": num_perm,
        "seed": seed,
        "hash": HASH_NAME,
        "ngram": ngram,
        "normalization": norm.to_dict(),
    }


def _batch_buffer(texts: Sequence[str], norm: TextNorm) -> bytes:
    """Normalise a batch as one string (same result as per document) and encode it."""
    big = _SEP.join(texts)
    if big.count(_SEP) != len(texts) - 1:  # rare: documents containing NUL, which counts as space
        big = _SEP.join(t.replace(_SEP, " ") for t in texts)
    big = _normalize_chars(big, norm, nul_is_space=False)
    if norm.scaffold:
        big = " " + re.sub(" {2,}", " ", big.replace(_SEP, " \x00 ")) + " "
        big = _remove_scaffold(big, _scaffold_patterns(norm))
    return big.encode("utf-8", "surrogatepass")


def text_signatures(
    texts: Sequence[str],
    num_perm: int = 128,
    seed: int = 1,
    ngram: int = 5,
    norm: TextNorm = DEFAULT_NORM,
    batch_size: int = 8192,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """MinHash signatures of many documents: raw text in, one uint32 row per document out.

    Reads: a sequence of strings (processed ``batch_size`` at a time: one normalisation pass per
    batch, then one numba kernel that tokenises, shingles, hashes and permutes).
    Returns: uint32 array ``[len(texts), num_perm]``; row i equals
    ``datasketch.MinHash(num_perm, seed, scheme="affine32", hashfunc=xxh32_hash)`` updated with
    ``shingles(texts[i], ngram, norm)``. Empty documents get the all-``0xFFFFFFFF`` row.
    """
    if ngram < 1:
        raise ConfigError(f"ngram must be a positive integer, got {ngram!r}.")
    a, b = permutations(num_perm, seed)
    n = len(texts)
    if out is None:
        out = np.empty((n, num_perm), dtype=np.uint32)
    elif out.shape != (n, num_perm) or out.dtype != np.uint32:
        raise ConfigError(f"out must be a uint32 array of shape {(n, num_perm)}, got {out.dtype} {out.shape}.")
    for lo in range(0, n, batch_size):
        chunk = texts[lo : lo + batch_size]
        buf = np.frombuffer(_batch_buffer(chunk, norm), dtype=np.uint8)
        _text_kernel(buf, len(chunk), ngram, a, b, out[lo : lo + len(chunk)])
    return out


def hash_signatures(
    hashes: np.ndarray, offsets: np.ndarray, num_perm: int = 128, seed: int = 1
) -> np.ndarray:
    """MinHash signatures of sets given as already-hashed members (e.g. image hash tokens).

    Reads: ``hashes`` uint32 (``hashfunc`` of each member's bytes), concatenated set after set;
    ``offsets`` int64 of length n+1 (set i is ``hashes[offsets[i]:offsets[i+1]]``).
    Returns: uint32 ``[n, num_perm]``, equal to datasketch's ``update_batch`` of those members.
    """
    a, b = permutations(num_perm, seed)
    offsets = np.ascontiguousarray(offsets, dtype=np.int64)
    out = np.empty((len(offsets) - 1, num_perm), dtype=np.uint32)
    _hash_kernel(np.ascontiguousarray(hashes, dtype=np.uint32), offsets, a, b, out)
    return out


def is_empty(signatures: np.ndarray) -> np.ndarray:
    """Returns: bool per row, True where the signature is that of the empty set."""
    return np.all(signatures == EMPTY_VALUE, axis=1)


def to_lean_minhash(row: np.ndarray, seed: int = 1) -> Any:
    """Returns: a ``datasketch.LeanMinHash`` built from one stored signature row."""
    try:
        from datasketch import LeanMinHash
    except ImportError as err:  # pragma: no cover - exercised only without datasketch
        raise ConfigError("to_lean_minhash needs datasketch: pip install 'datasketch>=2,<3'.") from err
    return LeanMinHash(seed=seed, hashvalues=np.asarray(row, dtype=np.uint32), scheme=SCHEME)


# ---------------------------------------------------------------- numba kernels (one core each)
# Arithmetic runs in uint64 holding uint32 values, masked back to 32 bits (numba promotes small
# unsigned ints to 64 bits); the permutation loop stays in uint32 and vectorises (vpmulld/vpminud).

_M32 = np.uint64(0xFFFFFFFF)
_P1 = np.uint64(2654435761)
_P2 = np.uint64(2246822519)
_P3 = np.uint64(3266489917)
_P4 = np.uint64(668265263)
_P5 = np.uint64(374761393)


@njit(cache=True, inline="always")
def _rotl(x, r):
    return ((x << np.uint64(r)) | (x >> np.uint64(32 - r))) & _M32


@njit(cache=True, inline="always")
def _read32(buf, p):
    return (
        np.uint64(buf[p])
        | (np.uint64(buf[p + 1]) << np.uint64(8))
        | (np.uint64(buf[p + 2]) << np.uint64(16))
        | (np.uint64(buf[p + 3]) << np.uint64(24))
    )


@njit(cache=True, inline="always")
def _round(acc, lane):
    return (_rotl((acc + lane * _P2) & _M32, 13) * _P1) & _M32


@njit(cache=True)
def _xxh32(buf, s, e):
    """xxHash32 with seed 0 of ``buf[s:e]`` (same value as ``xxhash.xxh32_intdigest``)."""
    p = s
    if e - s >= 16:
        v1 = (_P1 + _P2) & _M32
        v2 = _P2
        v3 = np.uint64(0)
        v4 = (np.uint64(1 << 32) - _P1) & _M32
        while p + 16 <= e:
            v1 = _round(v1, _read32(buf, p))
            v2 = _round(v2, _read32(buf, p + 4))
            v3 = _round(v3, _read32(buf, p + 8))
            v4 = _round(v4, _read32(buf, p + 12))
            p += 16
        h = (_rotl(v1, 1) + _rotl(v2, 7) + _rotl(v3, 12) + _rotl(v4, 18)) & _M32
    else:
        h = _P5
    h = (h + np.uint64(e - s)) & _M32
    while p + 4 <= e:
        h = (_rotl((h + _read32(buf, p) * _P3) & _M32, 17) * _P4) & _M32
        p += 4
    while p < e:
        h = (_rotl((h + np.uint64(buf[p]) * _P5) & _M32, 11) * _P1) & _M32
        p += 1
    h ^= h >> np.uint64(15)
    h = (h * _P2) & _M32
    h ^= h >> np.uint64(13)
    h = (h * _P3) & _M32
    h ^= h >> np.uint64(16)
    return h


@njit(cache=True, inline="always")
def _permute_min(h, a, b, row):
    """datasketch affine32 update of ``row`` with one input hash ``h`` (uint64 holding a uint32)."""
    h ^= h >> np.uint64(16)
    h = (h * np.uint64(0x85EBCA6B)) & _M32
    h ^= h >> np.uint64(13)
    h = (h * np.uint64(0xC2B2AE35)) & _M32
    h ^= h >> np.uint64(16)
    hv = np.uint32(h)
    for k in range(a.shape[0]):
        v = np.uint32(a[k] * hv + b[k])
        if v < row[k]:
            row[k] = v


@njit(cache=True, nogil=True)
def _text_kernel(buf, n_docs, ngram, a, b, out):
    """Tokenise (split on b' ', documents split on b'\\0'), shingle, hash and permute a batch."""
    out[:] = np.uint32(0xFFFFFFFF)
    scratch = np.empty(buf.shape[0] + 1, dtype=np.uint8)
    tok_s = np.empty(buf.shape[0] // 2 + 1, dtype=np.int64)
    tok_e = np.empty(buf.shape[0] // 2 + 1, dtype=np.int64)
    p = 0
    for d in range(n_docs):
        # copy the document's words into scratch, separated by exactly one space
        m = 0
        q = 0
        while p < buf.shape[0] and buf[p] != 0:
            if buf[p] == 32:
                p += 1
                continue
            if m > 0:
                scratch[q] = 32
                q += 1
            tok_s[m] = q
            while p < buf.shape[0] and buf[p] != 32 and buf[p] != 0:
                scratch[q] = buf[p]
                q += 1
                p += 1
            tok_e[m] = q
            m += 1
        p += 1  # skip the separator
        row = out[d]
        if m == 0:
            continue
        if m <= ngram:
            _permute_min(_xxh32(scratch, 0, q), a, b, row)
            continue
        for i in range(m - ngram + 1):
            _permute_min(_xxh32(scratch, tok_s[i], tok_e[i + ngram - 1]), a, b, row)


@njit(cache=True, nogil=True)
def _hash_kernel(hashes, offsets, a, b, out):
    """Permute-and-min each set ``hashes[offsets[i]:offsets[i+1]]`` into ``out[i]``."""
    out[:] = np.uint32(0xFFFFFFFF)
    for i in range(offsets.shape[0] - 1):
        row = out[i]
        for j in range(offsets[i], offsets[i + 1]):
            _permute_min(np.uint64(hashes[j]), a, b, row)
