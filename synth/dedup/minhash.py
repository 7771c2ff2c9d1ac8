"""Text normalisation, word shingles and vectorised MinHash signatures.

The signatures are bit-identical to datasketch 2.x ``MinHash(num_perm, seed, scheme="affine32",
hashfunc=xxh32_hash)`` updated with :func:`shingles` of the same text, so any row can be loaded
with ``datasketch.LeanMinHash(seed=seed, hashvalues=row, scheme="affine32")``.

The datasketch ``affine32`` scheme (2.0.0+), reproduced here: ``gen = np.random.RandomState(seed)``,
``a = gen.randint(0, 2**31, num_perm, dtype=uint32) * 2 + 1`` (odd: a bijection), then
``b = gen.randint(0, 2**32, num_perm, dtype=uint32)``; each member hash ``h = hashfunc(bytes)`` is
pre-mixed once with MurmurHash3's ``fmix32``, then ``a_k * fmix32(h) + b_k mod 2**32``; the
signature is the element-wise minimum over the set (all ``0xFFFFFFFF`` for the empty set), uint32.

The hash is xxHash32 (seed 0) of a shingle's UTF-8 bytes: ``xxh32_hash`` is the C function
``xxhash.xxh32_intdigest`` (a plain datasketch ``hashfunc``); the batch path computes the same
function in a numba kernel over one byte buffer per batch, with no Python call per document,
word or shingle.

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
import xxhash
from numba import njit

from synth.errors import ConfigError

SCHEME = "affine32"
DATASKETCH_VERSION = "2.0.0"  # the datasketch release whose affine32 scheme is reproduced and tested
HASH_NAME = "xxh32(seed=0) of UTF-8 shingle bytes"
EMPTY_VALUE = np.uint32(0xFFFFFFFF)
_SEP = "\x00"  # document separator inside a batch buffer; NUL inside a document counts as a space
_MAX_BATCH_CHARS = 1 << 23  # ~8 MiB of text per batch: transient memory about 6x that


# The shingle hash and datasketch ``hashfunc``: bytes -> xxHash32 (seed 0), an int in [0, 2**32).
# The C function itself, so the datasketch side pays no Python call of ours per shingle.
xxh32_hash = xxhash.xxh32_intdigest


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
    return [" ".join(tokens[i : i + ngram]).encode("utf-8", "surrogatepass") for i in range(len(tokens) - ngram + 1)]


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


def scheme_info(num_perm: int = 128, seed: int = 1, ngram: int = 5, norm: TextNorm = DEFAULT_NORM) -> dict[str, Any]:
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


def _batch_buffer(texts: Sequence[str], norm: TextNorm) -> np.ndarray:
    """Normalise a batch as one string (same result as per document), encode it, pad 16 bytes."""
    try:
        big = _SEP.join(texts)
    except TypeError as err:
        raise ConfigError(f"texts must be strings (use '' for a missing text): {err}.") from err
    if big.count(_SEP) != len(texts) - 1:  # rare: documents containing NUL, which counts as space
        big = _SEP.join(t.replace(_SEP, " ") for t in texts)
    big = _normalize_chars(big, norm, nul_is_space=False)
    if norm.scaffold:
        big = " " + re.sub(" {2,}", " ", big.replace(_SEP, " \x00 ")) + " "
        big = _remove_scaffold(big, _scaffold_patterns(norm))
    raw = big.encode("utf-8", "surrogatepass")
    buf = np.zeros(len(raw) + 16, dtype=np.uint8)  # xxh32's tail may read 16 bytes past a shingle
    buf[: len(raw)] = np.frombuffer(raw, dtype=np.uint8)
    return buf


def _batch_bounds(texts: Sequence[str], batch_size: int, max_chars: int) -> list[tuple[int, int]]:
    """Consecutive ``(lo, hi)`` ranges of at most ``batch_size`` documents and about ``max_chars``."""
    if batch_size < 1:
        raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}.")
    try:
        ends = np.cumsum(np.fromiter(map(len, texts), dtype=np.int64, count=len(texts)))
    except TypeError as err:
        raise ConfigError(f"texts must be strings (use '' for a missing text): {err}.") from err
    out, lo = [], 0
    while lo < len(texts):
        base = ends[lo - 1] if lo else 0
        hi = max(lo + 1, min(lo + batch_size, int(np.searchsorted(ends, base + max_chars, side="right"))))
        out.append((lo, hi))
        lo = hi
    return out


def _run_batches(texts, ngram, norm, batch_size, a, b, out, collect):
    """Drive ``_text_kernel`` over batches, reusing work arrays; yields (lo, hashes, offsets)."""
    if ngram < 1:
        raise ConfigError(f"ngram must be a positive integer, got {ngram!r}.")
    bounds, hv = np.empty(0, dtype=np.int32), np.empty(0, dtype=np.uint32)
    for lo, hi in _batch_bounds(texts, batch_size, _MAX_BATCH_CHARS):
        buf = _batch_buffer(texts[lo:hi], norm)
        n_bytes = len(buf) - 16
        if n_bytes >= 1 << 31:
            raise ConfigError(f"documents {lo}..{hi - 1} hold {n_bytes} bytes: at most 2 GiB per batch.")
        if len(bounds) < n_bytes + 2 or len(hv) < n_bytes // 2 + (hi - lo) + 2:
            bounds = np.empty((n_bytes + 2) * 5 // 4, dtype=np.int32)
            hv = np.empty((n_bytes // 2 + (hi - lo) + 2) * 5 // 4, dtype=np.uint32)
        offsets = np.empty(hi - lo + 1, dtype=np.int64)
        _text_kernel(buf, n_bytes, hi - lo, ngram, a, b, out[lo:hi], bounds, hv, offsets)
        if collect:
            yield lo, hv[: offsets[-1]].copy(), offsets


def text_signatures(
    texts: Sequence[str],
    num_perm: int = 128,
    seed: int = 1,
    ngram: int = 5,
    norm: TextNorm = DEFAULT_NORM,
    batch_size: int = 4096,
) -> np.ndarray:
    """MinHash signatures of many documents: raw text in, one uint32 row per document out.

    Reads: a sequence of strings, in batches of at most ``batch_size`` documents and ~8 MiB of text
    (transient memory ~6x that): one normalisation pass per batch, then one numba kernel that
    tokenises, shingles, hashes and permutes, with no Python call per document or shingle.
    Returns: uint32 ``[len(texts), num_perm]``; row i equals ``datasketch.MinHash(num_perm, seed,
    scheme="affine32", hashfunc=xxh32_hash)`` updated with ``shingles(texts[i], ngram, norm)``.
    An empty document gets the empty-set row (all ``0xFFFFFFFF``).
    """
    a, b = permutations(num_perm, seed)
    out = np.empty((len(texts), num_perm), dtype=np.uint32)
    for _ in _run_batches(texts, ngram, norm, batch_size, a, b, out, collect=False):
        pass
    return out


def shingle_hash_sets(
    texts: Sequence[str], ngram: int = 5, norm: TextNorm = DEFAULT_NORM, batch_size: int = 4096
) -> tuple[np.ndarray, np.ndarray]:
    """Each document's set of shingles as sorted unique ``xxh32_hash`` values (for exact Jaccard).

    Returns: ``(hashes, offsets)``: uint32 values, and int64 ``[n + 1]`` with document i's set at
    ``hashes[offsets[i]:offsets[i + 1]]``.
    """
    none = np.empty(0, dtype=np.uint32)
    dummy = np.empty((len(texts), 0), dtype=np.uint32)
    parts, counts = [none], [np.zeros(0, dtype=np.int64)]
    for _, hashes, offsets in _run_batches(texts, ngram, norm, batch_size, none, none, dummy, True):
        doc = np.repeat(np.arange(len(offsets) - 1, dtype=np.uint64), np.diff(offsets))
        code = np.sort((doc << np.uint64(32)) | hashes)  # by document, then hash
        code = code[np.concatenate(([True], code[1:] != code[:-1]))] if len(code) else code
        parts.append((code & np.uint64(0xFFFFFFFF)).astype(np.uint32))
        counts.append(np.bincount((code >> np.uint64(32)).astype(np.int64), minlength=len(offsets) - 1))
    offsets = np.zeros(len(texts) + 1, dtype=np.int64)
    np.cumsum(np.concatenate(counts), out=offsets[1:])
    return np.concatenate(parts), offsets


def exact_jaccard(texts: Sequence[str], pairs: np.ndarray, ngram: int = 5, norm: TextNorm = DEFAULT_NORM) -> np.ndarray:
    """Exact Jaccard of document pairs, on their shingle sets (as 32-bit hashes).

    Reads: the texts and int ``[p, 2]`` row pairs; only the documents named in ``pairs`` are
    re-shingled. Returns: float64 ``[p]`` (0.0 when both sets are empty). Use it as the
    ``similarity`` of :func:`synth.dedup.lsh.near_duplicate_clusters` to verify candidates exactly.
    """
    from synth.dedup.lsh import set_jaccard

    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    involved = np.unique(pairs)
    hashes, offsets = shingle_hash_sets([texts[i] for i in involved.tolist()], ngram, norm)
    return set_jaccard(hashes, offsets, np.searchsorted(involved, pairs))


def hash_signatures(hashes: np.ndarray, offsets: np.ndarray, num_perm: int = 128, seed: int = 1) -> np.ndarray:
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
    out = signatures[:, 0] == EMPTY_VALUE  # checked in full only where the first value says so
    rows = np.flatnonzero(out)
    out[rows] = np.all(signatures[rows] == EMPTY_VALUE, axis=1)
    return out


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


@njit(cache=True)
def _rotl(x, r):
    return ((x << np.uint64(r)) | (x >> np.uint64(32 - r))) & _M32


@njit(cache=True)
def _read32(buf, p):
    q = np.uint64(p)  # unsigned index: no negative-index wraparound, so the loads fuse into one
    return (
        np.uint64(buf[q])
        | (np.uint64(buf[q + np.uint64(1)]) << np.uint64(8))
        | (np.uint64(buf[q + np.uint64(2)]) << np.uint64(16))
        | (np.uint64(buf[q + np.uint64(3)]) << np.uint64(24))
    )


@njit(cache=True)
def _round(acc, lane):
    return (_rotl((acc + lane * _P2) & _M32, 13) * _P1) & _M32


@njit(cache=True)
def _xxh32(buf, s, e):
    """xxHash32 (seed 0) of ``buf[s:e]``, equal to ``xxhash.xxh32_intdigest``.

    ``buf`` must stay readable 16 bytes past ``e``: the tail is computed with selects instead of
    short data-dependent loops, which would mispredict on every shingle.
    """
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
    words = (e - p) >> 2
    for j in range(3):
        g = (_rotl((h + _read32(buf, p + 4 * j) * _P3) & _M32, 17) * _P4) & _M32
        h = g if j < words else h
    p += 4 * words
    for j in range(3):
        g = (_rotl((h + np.uint64(buf[np.uint64(p + j)]) * _P5) & _M32, 11) * _P1) & _M32
        h = g if p + j < e else h
    h ^= h >> np.uint64(15)
    h = (h * _P2) & _M32
    h ^= h >> np.uint64(13)
    h = (h * _P3) & _M32
    h ^= h >> np.uint64(16)
    return h


@njit(cache=True)
def _fmix32(h):
    h ^= h >> np.uint64(16)
    h = (h * np.uint64(0x85EBCA6B)) & _M32
    h ^= h >> np.uint64(13)
    h = (h * np.uint64(0xC2B2AE35)) & _M32
    return np.uint32(h ^ (h >> np.uint64(16)))


@njit(cache=True)
def _permute_min(hv, n, a, b, row):
    """datasketch affine32 update of ``row`` with the pre-mixed hashes ``hv[:n]``."""
    for i in range(n):
        h = hv[i]
        for k in range(a.shape[0]):
            row[k] = min(row[k], np.uint32(a[k] * h + b[k]))


@njit(cache=True, nogil=True)
def _tokenize(buf, n_bytes, bounds, seps):
    """One branch-light pass that squeezes runs of spaces in place and finds words and documents.

    Words are split by b' ', documents end at b'\\0'. Afterwards the words of one document are
    exactly one space apart in ``buf``, so every shingle is a contiguous byte range.
    Returns: the number of words; word i is ``buf[bounds[2*i]:bounds[2*i + 1]]`` and document d
    ends at ``seps[d]``.
    """
    nb = 0
    nd = 0
    q = 0
    prev_sep = 1
    last = seps.shape[0] - 1  # more NULs than documents would be a caller bug: never overrun
    for p in range(n_bytes):
        c = buf[p]
        if c == 0:
            seps[nd] = q
            nd = min(nd + 1, last)
        space = np.int64(c == 32)
        sep = space | np.int64(c == 0)
        buf[q] = c
        bounds[nb] = q
        nb += prev_sep ^ sep  # a word starts or ends here
        q += 1 - (space & prev_sep)  # drop a space that follows a separator
        prev_sep = sep
    bounds[nb] = q
    nb += 1 - prev_sep
    seps[nd] = q
    return nb // 2


@njit(cache=True, nogil=True)
def _doc_shingles(buf, bounds, t0, t1, ngram, hv, at):
    """Raw xxh32 of each shingle of the words ``t0:t1`` into ``hv[at:]``; returns the count.

    Fewer than ``ngram`` words make one shingle of all of them; no words make none.
    """
    k = max(t1 - t0 - ngram + 1, 1) if t1 > t0 else 0
    for i in range(k):
        hv[at + i] = np.uint32(_xxh32(buf, bounds[2 * (t0 + i)], bounds[2 * min(t0 + i + ngram, t1) - 1]))
    return k


@njit(cache=True, nogil=True)
def _text_kernel(buf, n_bytes, n_docs, ngram, a, b, out, bounds, hv, offsets):
    """Shingle and hash a batch buffer (words split by b' ', documents by b'\\0').

    With ``a`` non-empty, each document's MinHash goes to ``out[d]``; otherwise its raw shingle
    hashes go to ``hv[offsets[d]:offsets[d + 1]]`` (``offsets`` is filled here).
    ``buf`` is modified in place; ``bounds`` (int32, ``n_bytes + 2``) and ``hv`` (uint32,
    ``n_bytes // 2 + n_docs + 2``) are work arrays, reused across batches.
    """
    seps = np.empty(n_docs + 1, dtype=np.int64)
    n_tok = _tokenize(buf, n_bytes, bounds, seps)
    sign = a.shape[0] > 0
    t1 = 0
    offsets[0] = 0
    for d in range(n_docs):
        t0 = t1
        while t1 < n_tok and bounds[2 * t1] < seps[d]:
            t1 += 1
        if sign:
            for j in range(out.shape[1]):
                out[d, j] = np.uint32(0xFFFFFFFF)
            k = _doc_shingles(buf, bounds, t0, t1, ngram, hv, 0)
            for i in range(k):
                hv[i] = _fmix32(np.uint64(hv[i]))
            _permute_min(hv, k, a, b, out[d])
        else:
            k = _doc_shingles(buf, bounds, t0, t1, ngram, hv, offsets[d])
            offsets[d + 1] = offsets[d] + k


@njit(cache=True, nogil=True)
def _hash_kernel(hashes, offsets, a, b, out):
    """Permute-and-min each set ``hashes[offsets[i]:offsets[i+1]]`` into ``out[i]``."""
    out[:] = np.uint32(0xFFFFFFFF)
    hv = np.empty(max(hashes.shape[0], 1), dtype=np.uint32)
    for i in range(offsets.shape[0] - 1):
        lo, hi = offsets[i], offsets[i + 1]
        for j in range(lo, hi):
            hv[j - lo] = _fmix32(np.uint64(hashes[j]))
        _permute_min(hv, hi - lo, a, b, out[i])
