"""Readers, splits, synthetic data and downloads; every reader returns a `Dataset`."""

from kgax.data.kgat import read_kgat, write_kgat
from kgax.data.movielens import read_movielens
from kgax.data.recbole import read_recbole
from kgax.data.split import holdout, split_dataset
from kgax.data.types import AuxFacts, DataError, Dataset, Split
