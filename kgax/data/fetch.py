"""Downloads of public datasets into a checked cache: the back end of `kgax data fetch NAME`.

The cache is `~/.cache/kgax`, or $KGAX_CACHE, or the `cache_dir` argument. A dataset becomes the
folder `<cache>/<name>/`, ready for a reader; the downloaded files stay in
`<cache>/downloads/<name>/`. Every download goes to a temporary file in that folder, is checked
and only then renamed into place, and the dataset folder is assembled in a temporary folder that
is renamed when complete, so an interrupted, failed or corrupt download never leaves a cache entry.

Checksums: an entry's pinned sha256 is checked on every download and before every unpacking.
Entries without one (the hosts were unreachable when they were registered) record the sha256 of
the first download beside the file (`<file>.sha256`) and print it; later downloads and unpackings
of that file must match the record. Once `<cache>/<name>/` exists, `fetch` returns it as it is.

`ml-100k-kg` (RecBole's MovieLens-100K with a Freebase KG) needs only the Python package index:
its files are taken out of the `recbole==1.2.1` wheel, which `pip download` fetches (with the
machine's pip configuration) but nothing installs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
import zipfile

from tqdm import tqdm

from kgax.data.types import DataError

_BLOCK = 1 << 20
_QUIET_BELOW = 10 << 20   # no progress bar for downloads of known size below 10 MiB


class FetchError(DataError):
  """A download or unpacking failed; the message names the URL or file and the problem."""


class _NotFound(FetchError):
  """The URL does not exist (HTTP 404, or a missing file:// file)."""


@dataclasses.dataclass(frozen=True)
class Entry:
  """A registered dataset.

  `url` is a zip archive (https:// or file://), a wheel on the package index (pip:SPEC), or, for
  entries with `files`, the folder URL of those files. `sha256` is that of the archive or wheel
  (None: recorded on first download). `unpack` is the folder inside the archive whose files make
  up the dataset. `files` lists plain files below `url`; a tuple lists alternatives tried in
  order while the host answers "not found"; a .zip among them is unpacked.
  """

  url: str
  sha256: str | None
  unpack: str = ""
  files: tuple[str | tuple[str, ...], ...] = ()

  @property
  def filename(self) -> str:
    """Name of the downloaded archive in the cache (also when `source_url` replaces `url`)."""
    return self.url[4:] + ".whl" if self.url.startswith("pip:") else self.url.rsplit("/", 1)[-1]


_GROUPLENS = "https://files.grouplens.org/datasets/movielens"
_KGAT = ("https://raw.githubusercontent.com/xiangwang1223/knowledge_graph_attention_network/"
         "master/Data")
# KGAT keeps some KGs zipped (kg_final.txt.zip); the plain name is the fallback.
_KGAT_FILES = ("train.txt", "test.txt", ("kg_final.txt.zip", "kg_final.txt"), "user_list.txt",
               "item_list.txt", "entity_list.txt", "relation_list.txt")

REGISTRY = {
    "ml-100k-kg": Entry("pip:recbole==1.2.1",
                        "9c9948202011f37eb0a7c6768129313f00d6403ad221ec940d5e2d5d5f33a407",
                        unpack="recbole/dataset_example/ml-100k"),
    "ml-100k": Entry(f"{_GROUPLENS}/ml-100k.zip", None, unpack="ml-100k"),
    "ml-1m": Entry(f"{_GROUPLENS}/ml-1m.zip", None, unpack="ml-1m"),
    "ml-20m": Entry(f"{_GROUPLENS}/ml-20m.zip", None, unpack="ml-20m"),
    "ml-latest-small": Entry(f"{_GROUPLENS}/ml-latest-small.zip", None, unpack="ml-latest-small"),
    "last-fm": Entry(f"{_KGAT}/last-fm", None, files=_KGAT_FILES),
    "amazon-book": Entry(f"{_KGAT}/amazon-book", None, files=_KGAT_FILES),
    "yelp2018": Entry(f"{_KGAT}/yelp2018", None, files=_KGAT_FILES),
}


def cache_root(cache_dir: str | os.PathLike | None = None) -> pathlib.Path:
  """`cache_dir`, else $KGAX_CACHE, else ~/.cache/kgax."""
  return pathlib.Path(cache_dir or os.environ.get("KGAX_CACHE")
                      or pathlib.Path.home() / ".cache" / "kgax").expanduser()


def fetch(name: str, cache_dir: str | os.PathLike | None = None, *, source_url: str | None = None,
          sha256: str | None = None) -> pathlib.Path:
  """The folder of dataset `name` in the cache, downloaded, checked and unpacked if not there.

  `source_url` replaces the entry's URL (a mirror, or a local file:// copy) and `sha256` its
  checksum; without `sha256` the pinned or recorded checksum applies to the replacement too.
  """
  if name not in REGISTRY:
    raise FetchError(f"unknown dataset {name!r} (known: {', '.join(sorted(REGISTRY))})")
  entry = REGISTRY[name]
  root = cache_root(cache_dir)
  folder = root / name
  if folder.is_dir():
    return folder
  downloads = root / "downloads" / name
  downloads.mkdir(parents=True, exist_ok=True)
  url = source_url or entry.url
  staging = pathlib.Path(tempfile.mkdtemp(dir=root, prefix=f".{name}."))
  try:
    if entry.files:
      for names in entry.files:
        _add_file(url, (names,) if isinstance(names, str) else names, downloads, staging)
    else:
      archive = _obtain(url, downloads / entry.filename, sha256 or entry.sha256)
      _extract(archive, entry.unpack, staging)
    try:
      staging.rename(folder)
    except OSError:
      if not folder.is_dir():   # else another process finished first: use its folder
        raise
  finally:
    shutil.rmtree(staging, ignore_errors=True)
  return folder


def _add_file(base: str, names: tuple[str, ...], downloads: pathlib.Path,
              staging: pathlib.Path) -> None:
  """Downloads the first of `names` that exists below `base` into the staging folder."""
  for name in names:
    try:
      path = _obtain(f"{base}/{name}", downloads / name, None)
    except _NotFound:
      continue
    if name.endswith(".zip"):
      _extract(path, "", staging)
    else:
      shutil.copyfile(path, staging / name)
    return
  raise FetchError(f"{base}/{' or '.join(names)}: not found")


def _obtain(url: str, dest: pathlib.Path, expected: str | None) -> pathlib.Path:
  """`dest`, downloaded from `url` unless a copy that passes the check is already there."""
  record = dest.with_name(dest.name + ".sha256")
  if expected is None and record.is_file():
    expected = record.read_text().split()[0]
  if dest.is_file():
    if expected is None or _sha256(dest) == expected:
      return dest
    dest.unlink()                       # a stale or damaged copy: download again
  tmp = _download(url, dest.parent)
  digest = _sha256(tmp)
  if expected is not None and digest != expected:
    tmp.unlink()
    raise FetchError(f"{url}: sha256 mismatch (got {digest}, expected {expected}); "
                     "the download was discarded")
  if expected is None:
    _write_atomic(record, f"{digest}  {url}\n")
    print(f"{dest.name}: sha256 {digest} (first download from {url}; recorded in {record})",
          file=sys.stderr)
  tmp.replace(dest)
  return dest


def _download(url: str, directory: pathlib.Path) -> pathlib.Path:
  """A new temporary file in `directory` holding the bytes at `url` (removed on any failure)."""
  fd, tmp = tempfile.mkstemp(dir=directory, prefix=".", suffix=".part")
  tmp = pathlib.Path(tmp)
  try:
    with os.fdopen(fd, "wb") as out:
      if url.startswith("pip:"):
        _pip_download(url[4:], directory, out)
      else:
        _urlopen_into(url, out)
    return tmp
  except BaseException as e:
    tmp.unlink(missing_ok=True)
    if isinstance(e, (FetchError, KeyboardInterrupt)):
      raise
    if isinstance(e, urllib.error.HTTPError) and e.code == 404 or (
        isinstance(e, urllib.error.URLError) and isinstance(e.reason, FileNotFoundError)):
      raise _NotFound(f"{url}: not found") from None
    reason = getattr(e, "reason", None) or e
    raise FetchError(f"{url}: download failed: {' '.join(str(reason).split())}") from None


def _urlopen_into(url: str, out) -> None:
  with urllib.request.urlopen(url, timeout=60) as resp:
    total = int(resp.headers.get("Content-Length") or 0) or None
    got = 0
    with tqdm(total=total, unit="B", unit_scale=True, desc=url.rsplit("/", 1)[-1], leave=False,
              disable=total is not None and total < _QUIET_BELOW) as bar:
      for block in iter(lambda: resp.read(_BLOCK), b""):
        out.write(block)
        got += len(block)
        bar.update(len(block))
  if total is not None and got != total:
    raise FetchError(f"{url}: download incomplete ({got} of {total} bytes)")


def _pip_download(spec: str, directory: pathlib.Path, out) -> None:
  """Writes the wheel of `spec` (e.g. "recbole==1.2.1", no dependencies) to `out`."""
  with tempfile.TemporaryDirectory(dir=directory, prefix=".pip.") as d:
    cmd = [sys.executable, "-m", "pip", "download", spec, "--no-deps", "--only-binary=:all:",
           "--disable-pip-version-check", "-d", d]
    try:
      proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    except subprocess.TimeoutExpired:
      raise FetchError(f"pip download {spec}: timed out") from None
    wheels = sorted(pathlib.Path(d).glob("*.whl"))
    if proc.returncode or len(wheels) != 1:
      last = (proc.stderr.strip().splitlines() or [f"{len(wheels)} wheels"])[-1]
      raise FetchError(f"pip download {spec} failed: {last.strip()}")
    with wheels[0].open("rb") as f:
      shutil.copyfileobj(f, out, _BLOCK)


def _extract(archive: pathlib.Path, folder: str, dest: pathlib.Path) -> None:
  """Writes the files below `folder` of zip `archive` ("": all of them) into `dest`."""
  prefix = folder.strip("/") + "/" if folder else ""
  try:
    with zipfile.ZipFile(archive) as z:
      names = [n for n in z.namelist() if n.startswith(prefix) and not n.endswith("/")]
      if not names:
        raise FetchError(f"{archive}: no files under {prefix or '/'!r} in the archive")
      for n in names:
        rel = pathlib.PurePosixPath(n[len(prefix):])
        if rel.is_absolute() or ".." in rel.parts:
          raise FetchError(f"{archive}: unsafe path {n!r} in the archive")
        target = dest.joinpath(*rel.parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        with z.open(n) as src, target.open("wb") as dst:
          shutil.copyfileobj(src, dst, _BLOCK)
  except (zipfile.BadZipFile, EOFError) as e:
    raise FetchError(f"{archive}: not a valid zip archive ({e})") from None


def _sha256(path: pathlib.Path) -> str:
  h = hashlib.sha256()
  with path.open("rb") as f:
    for block in iter(lambda: f.read(_BLOCK), b""):
      h.update(block)
  return h.hexdigest()


def _write_atomic(path: pathlib.Path, text: str) -> None:
  tmp = path.with_name(f".{path.name}.part")
  tmp.write_text(text)
  tmp.replace(path)
