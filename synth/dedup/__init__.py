"""Near-duplicate detection core: pure functions on strings and arrays.

- :mod:`synth.dedup.minhash`: text normalisation, word shingles, MinHash signatures (bit-identical
  to datasketch 2.x ``affine32`` with ``hashfunc=xxh32_hash``), exact shingle Jaccard.
- :mod:`synth.dedup.lsh`: bands x rows with a stated recall, banding, verification, union-find,
  the order-independent keep policy.
- :mod:`synth.dedup.phash`: 64-bit pHash/dHash as token sets for the same MinHash/LSH, and
  Hamming utilities.

Nothing is imported here: the submodules load numba, so import them where they are used.
"""
