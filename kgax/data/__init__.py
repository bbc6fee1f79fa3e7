"""Readers, splits, synthetic data and downloads; every reader returns a `Dataset`."""

from kgax.data.types import AuxFacts, DataError, Dataset, Split
