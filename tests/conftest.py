"""Shared fixtures. Real datasets are found through KGAX_DATA (default: ../shared/data beside the
repository); tests that need them skip cleanly when the folder is absent."""

import atexit
import os
import pathlib
import shutil
import tempfile

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]

# One persistent compilation cache per test process (an xdist worker runs one test at a time),
# inherited by the subprocesses its tests start: the suite compiles the same small steps many
# times over, and an executable read back from the cache computes exactly what a fresh compile
# does. Set before any test imports JAX; a cache the caller chose is kept.
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
  _cache = tempfile.mkdtemp(prefix="kgax-test-jax-cache-")
  atexit.register(shutil.rmtree, _cache, ignore_errors=True)
  os.environ.update(JAX_COMPILATION_CACHE_DIR=_cache,
                    JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
                    JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0")


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
