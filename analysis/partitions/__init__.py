"""Validate events per day partition, and reuse the results of unchanged partitions.

Validating the whole history every night does not scale. The events are cut
into day partitions (the UTC date of ``ts``; rows without ``ts`` form their own
partition), each partition gets a *fingerprint* of its rows, and the results of
a partition's suite are cached as JSON under
``<cache_dir>/<day>-<key>.json``. The key hashes the fingerprint, the suite
file, the expectations as the partition sees them, and the GX and polars
versions: a partition whose rows, suite or parameters did not change is not
validated again. A cached file is trusted only if it names itself (so a copy
of another day's or another key's file is refused) and its content matches
the SHA-256 written into it; anything else is logged as a warning naming the
file, and the partition is validated again.

*As the partition sees them*: a datetime bound on ``ts`` that no row of the
day can reach is dropped from the partition's expectations (and from its key).
So "not in the future" (``ts <= now``) changes the key of today's partition
only, and yesterday's results stay valid tomorrow.

Results of the batches of a run (partitions, and hash chunks of a large
partition) are merged per expectation. ``event_id`` uniqueness is exact: rows
of one id always fall in the same chunk, and ids repeated across days are
counted here with polars, so the merged count equals GX's count on the whole
table.

This package runs no GX itself: it takes the batch validator as an argument
(:data:`~analysis.partitions.batches.BatchValidator`; :mod:`analysis.validation`
provides the GX one). One job per module:

- :mod:`analysis.partitions.batches`: what a batch found, merged across batches;
- :mod:`analysis.partitions.days`: day partitions, their fingerprints, and the
  expectations as a day sees them;
- :mod:`analysis.partitions.cache`: the cached results of a partition;
- :mod:`analysis.partitions.shares`: a batch's failures shared out among its partitions;
- :mod:`analysis.partitions.validate`: a suite over every day partition.
"""
