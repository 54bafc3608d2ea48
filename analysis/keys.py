"""Repeated keys among tens of millions of rows, found fast; and order-free fingerprints."""

from __future__ import annotations

import polars as pl

__all__ = ["ROW_HASH", "fingerprint_sums", "maybe_repeated", "row_hash"]

#: The column :func:`row_hash` names.
ROW_HASH = "__row_hash"
_MIX_1, _MIX_2 = 0xBF58476D1CE4E5B9, 0x94D049BB133111EB


def maybe_repeated(values: pl.Series) -> pl.Series:
    """A mask that is True for every row whose value occurs more than once.

    A superset: a row whose 64-bit hash collides with another value's is True
    too, so callers finish with an exact check on the rows it selects (few).
    Sorting the hashes finds the repeated ones: on 34M event ids (2 cores)
    ``is_duplicated`` on the strings takes about 23 s and on their hashes 7 s,
    a sort of the hashes under 1 s. Nulls hash to one value: repeated nulls
    are repeated, as ``is_duplicated`` has them.
    """
    hashes = values.hash(seed=11)
    ordered = hashes.sort()
    twice = ordered.filter(ordered == ordered.shift(1)).unique()
    return hashes.is_in(twice.implode())


def row_hash(*columns: str | pl.Expr) -> pl.Expr:
    """One 64-bit polars hash of each row's ``columns`` (stable within a polars version),
    as the column ``ROW_HASH`` that :func:`fingerprint_sums` reads."""
    return pl.struct(*columns).hash(seed=0).alias(ROW_HASH)


def fingerprint_sums(count: str = "rows") -> list[pl.Expr]:
    """A group's fingerprint: its number of rows (``count``), and two wrapping sums of
    its rows' :func:`row_hash`: of the hash (``h0``) and of its splitmix64 mix (``h1``).

    Independent of row order, changed by any added, removed or edited row. The
    mix is a bijection that is not linear in the hash, so a change that keeps
    one sum keeps the other only by a second chance of 2^-64; hashing every row
    once and mixing is a third cheaper than hashing it twice with two seeds
    (fingerprints of 10.7M events: 1.1 s to 0.75 s).
    """
    h = pl.col(ROW_HASH)
    return [pl.len().cast(pl.Int64).alias(count), h.sum().alias("h0"), _mixed(h).sum().alias("h1")]


def _mixed(h: pl.Expr) -> pl.Expr:
    """splitmix64's finalizer (wrapping arithmetic on UInt64; ``//`` by 2^k shifts right)."""
    x = h ^ (h // (1 << 30))
    x = x * pl.lit(_MIX_1, dtype=pl.UInt64)
    x = x ^ (x // (1 << 27))
    x = x * pl.lit(_MIX_2, dtype=pl.UInt64)
    return x ^ (x // (1 << 31))
