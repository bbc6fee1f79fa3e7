"""Shared fixtures. Real datasets are found through KGAX_DATA (default: ../shared/data beside the
repository); tests that need them skip cleanly when the folder is absent."""

import os
import pathlib

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]


def _data_root() -> pathlib.Path:
  return pathlib.Path(os.environ.get("KGAX_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def data_root() -> pathlib.Path:
  root = _data_root()
  if not root.is_dir():
    pytest.skip(f"real data not found at KGAX_DATA={root}")
  return root


@pytest.fixture(scope="session")
def raw_dir(data_root):
  def get(name: str) -> pathlib.Path:
    path = data_root / "raw" / name
    if not path.is_dir():
      pytest.skip(f"{path} not present")
    return path
  return get


@pytest.fixture(scope="session")
def bench_dir(data_root):
  def get(name: str) -> pathlib.Path:
    path = data_root / "bench" / name
    if not path.is_dir():
      pytest.skip(f"{path} not present")
    return path
  return get
