"""Dataset downloads: checksums, cache reuse, atomic cache entries, the wheel path. No network."""

import dataclasses
import hashlib
import io
import pathlib
import re
import subprocess
import zipfile

import pytest

from kgax import cli
from kgax.data import fetch, kgat

RECBOLE = "recbole/dataset_example/ml-100k"
ML100K = {
    "ml-100k.inter": "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
                     "196\t242\t3\t881250949\n186\t302\t3\t891717742\n",
    "ml-100k.item": "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
                    "242\tKolya\t1996\tComedy\n",
    "ml-100k.user": "user_id:token\tage:token\tgender:token\toccupation:token\tzip_code:token\n"
                    "196\t49\tM\twriter\t55105\n",
    "ml-100k.kg": "head_id:token\trelation_id:token\ttail_id:token\n"
                  "m.0a\tfilm.film.genre\tm.0b\n",
    "ml-100k.link": "item_id:token\tentity_id:token\n242\tm.0a\n",
}


def _zip(path: pathlib.Path, members: dict[str, str]) -> pathlib.Path:
  with zipfile.ZipFile(path, "w") as z:
    for name, text in members.items():
      z.writestr(name, text)
  return path


def _sha(path: pathlib.Path) -> str:
  return hashlib.sha256(path.read_bytes()).hexdigest()


def _files(root: pathlib.Path) -> list[pathlib.Path]:
  return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


@pytest.fixture
def archive(tmp_path):
  (tmp_path / "src").mkdir()
  return _zip(tmp_path / "src" / "data.zip",
              {"data/a.txt": "alpha\n", "data/sub/b.txt": "beta\n", "other/c.txt": "x\n"})


@pytest.fixture
def downloads(monkeypatch):
  """Counts the downloads that really happen."""
  urls = []
  real = fetch._download
  monkeypatch.setattr(fetch, "_download", lambda url, d: urls.append(url) or real(url, d))
  return urls


@pytest.fixture
def fake_wheel(tmp_path):
  members = {f"{RECBOLE}/{k}": v for k, v in ML100K.items()}
  members |= {"recbole/__init__.py": "", "recbole-1.2.1.dist-info/METADATA": "Name: recbole\n"}
  return _zip(tmp_path / "recbole-1.2.1-py3-none-any.whl", members)


def test_download_verify_and_reuse(tmp_path, archive, downloads, monkeypatch):
  monkeypatch.setitem(fetch.REGISTRY, "toy", fetch.Entry(archive.as_uri(), _sha(archive),
                                                         unpack="data"))
  cache = tmp_path / "cache"
  folder = fetch.fetch("toy", cache)
  assert folder == cache / "toy" and len(downloads) == 1
  assert (folder / "a.txt").read_text() == "alpha\n"
  assert (folder / "sub" / "b.txt").read_text() == "beta\n" and not (folder / "c.txt").exists()
  mtime = (folder / "a.txt").stat().st_mtime_ns
  assert fetch.fetch("toy", cache) == folder and len(downloads) == 1     # cached: no download
  assert (folder / "a.txt").stat().st_mtime_ns == mtime
  # Without the unpacked folder the kept (and re-verified) archive is unpacked again.
  archive.unlink()
  for p in sorted(folder.rglob("*"), reverse=True):
    p.unlink() if p.is_file() else p.rmdir()
  folder.rmdir()
  assert fetch.fetch("toy", cache) == folder and len(downloads) == 1
  assert (folder / "a.txt").read_text() == "alpha\n"
  assert not [p for p in cache.rglob(".*")]                               # no temporaries


def test_cache_location(tmp_path, monkeypatch):
  monkeypatch.setenv("KGAX_CACHE", str(tmp_path / "env"))
  assert fetch.cache_root() == tmp_path / "env"
  assert fetch.cache_root(tmp_path / "arg") == tmp_path / "arg"
  monkeypatch.delenv("KGAX_CACHE")
  monkeypatch.setenv("HOME", str(tmp_path / "home"))
  assert fetch.cache_root() == tmp_path / "home" / ".cache" / "kgax"


def test_checksum_mismatch_leaves_no_entry(tmp_path, archive, monkeypatch):
  monkeypatch.setitem(fetch.REGISTRY, "toy", fetch.Entry(archive.as_uri(), "0" * 64,
                                                         unpack="data"))
  cache = tmp_path / "cache"
  with pytest.raises(fetch.FetchError) as e:
    fetch.fetch("toy", cache)
  message = str(e.value)
  assert "data.zip: sha256 mismatch" in message and _sha(archive) in message
  assert len(message.splitlines()) == 1
  assert not (cache / "toy").exists() and _files(cache) == []


@pytest.mark.parametrize("failure, message", [
    (ConnectionResetError("connection reset by peer"), "download failed: connection reset"),
    (None, "download incomplete (16 of 100 bytes)"),
])
def test_interrupted_download_leaves_no_entry(tmp_path, archive, monkeypatch, failure, message):
  class Response(io.BytesIO):
    headers = {"Content-Length": "100"}
    def read(self, n=-1):
      block = super().read(16)
      if not block and failure:
        raise failure
      return block
  monkeypatch.setattr(fetch.urllib.request, "urlopen", lambda *a, **k: Response(b"x" * 16))
  monkeypatch.setitem(fetch.REGISTRY, "toy", fetch.Entry(archive.as_uri(), None, unpack="data"))
  cache = tmp_path / "cache"
  with pytest.raises(fetch.FetchError, match=re.escape(f"data.zip: {message}")):
    fetch.fetch("toy", cache)
  assert not (cache / "toy").exists() and _files(cache) == []


def test_interrupt_by_user_leaves_no_entry(tmp_path, archive, monkeypatch):
  def interrupted(*a, **k):
    raise KeyboardInterrupt
  monkeypatch.setattr(fetch.urllib.request, "urlopen", interrupted)
  monkeypatch.setitem(fetch.REGISTRY, "toy", fetch.Entry(archive.as_uri(), None, unpack="data"))
  with pytest.raises(KeyboardInterrupt):
    fetch.fetch("toy", tmp_path / "cache")
  assert _files(tmp_path / "cache") == []


def test_unpinned_checksum_is_recorded_then_enforced(tmp_path, archive, monkeypatch, capsys):
  monkeypatch.setitem(fetch.REGISTRY, "toy", fetch.Entry(archive.as_uri(), None, unpack="data"))
  cache = tmp_path / "cache"
  fetch.fetch("toy", cache)
  record = cache / "downloads" / "toy" / "data.zip.sha256"
  assert record.read_text().split()[0] == _sha(archive)
  assert f"sha256 {_sha(archive)}" in capsys.readouterr().err
  # The source changes: a fresh download must match the recorded checksum.
  _zip(archive, {"data/a.txt": "changed\n"})
  (cache / "downloads" / "toy" / "data.zip").unlink()
  (cache / "toy" / "a.txt").unlink()
  (cache / "toy" / "sub" / "b.txt").unlink()
  (cache / "toy" / "sub").rmdir()
  (cache / "toy").rmdir()
  with pytest.raises(fetch.FetchError, match="sha256 mismatch"):
    fetch.fetch("toy", cache)
  assert not (cache / "toy").exists()


def test_wheel_from_a_local_file(tmp_path, fake_wheel, downloads):
  folder = fetch.fetch("ml-100k-kg", tmp_path / "cache", source_url=fake_wheel.as_uri(),
                       sha256=_sha(fake_wheel))
  assert sorted(p.name for p in folder.iterdir()) == sorted(ML100K)
  assert all((folder / k).read_text() == v for k, v in ML100K.items())
  assert downloads == [fake_wheel.as_uri()]
  # The pinned checksum of the real wheel applies to a replacement source given without one.
  with pytest.raises(fetch.FetchError, match="recbole-1.2.1-py3-none-any.whl: sha256 mismatch"):
    fetch.fetch("ml-100k-kg", tmp_path / "other", source_url=fake_wheel.as_uri())
  assert not (tmp_path / "other" / "ml-100k-kg").exists()


def test_wheel_through_pip_download(tmp_path, fake_wheel, monkeypatch):
  calls = []
  def pip(cmd, **kw):
    calls.append(cmd)
    target = pathlib.Path(cmd[cmd.index("-d") + 1])
    (target / fake_wheel.name).write_bytes(fake_wheel.read_bytes())
    return subprocess.CompletedProcess(cmd, 0, "", "")
  monkeypatch.setattr(fetch.subprocess, "run", pip)
  entry = fetch.REGISTRY["ml-100k-kg"]
  monkeypatch.setitem(fetch.REGISTRY, "ml-100k-kg",
                      dataclasses.replace(entry, sha256=_sha(fake_wheel)))
  folder = fetch.fetch("ml-100k-kg", tmp_path / "cache")
  assert calls[0][:3] == [fetch.sys.executable, "-m", "pip"]
  assert {"download", "recbole==1.2.1", "--no-deps", "--only-binary=:all:"} <= set(calls[0])
  assert sorted(p.name for p in folder.iterdir()) == sorted(ML100K)
  assert (tmp_path / "cache" / "downloads" / "ml-100k-kg" / "recbole==1.2.1.whl").is_file()


def test_pip_failure_is_one_line(tmp_path, monkeypatch):
  monkeypatch.setattr(fetch.subprocess, "run", lambda cmd, **kw: subprocess.CompletedProcess(
      cmd, 1, "", "Looking in indexes: x\nERROR: No matching distribution found for "
                  "recbole==1.2.1\n"))
  with pytest.raises(fetch.FetchError) as e:
    fetch.fetch("ml-100k-kg", tmp_path / "cache")
  assert str(e.value) == ("pip download recbole==1.2.1 failed: ERROR: No matching distribution "
                          "found for recbole==1.2.1")
  assert _files(tmp_path / "cache") == []


def test_plain_files_with_zipped_alternative(tmp_path, monkeypatch):
  src = tmp_path / "kgat"
  src.mkdir()
  (src / "train.txt").write_text("0 0 1\n1 1 2\n")
  (src / "test.txt").write_text("0 2\n1 0\n")
  _zip(src / "kg_final.txt.zip", {"kg_final.txt": "0 0 3\n2 1 4\n"})
  files = ("train.txt", "test.txt", ("kg_final.txt.zip", "kg_final.txt"))
  monkeypatch.setitem(fetch.REGISTRY, "toy", fetch.Entry(src.as_uri(), None, files=files))
  ds = kgat.read_kgat(fetch.fetch("toy", tmp_path / "a"))
  assert (ds.n_users, ds.n_items, len(ds.kg)) == (2, 3, 2)
  (src / "kg_final.txt.zip").unlink()
  (src / "kg_final.txt").write_text("0 0 3\n")                          # plain fallback
  assert (fetch.fetch("toy", tmp_path / "b") / "kg_final.txt").read_text() == "0 0 3\n"
  (src / "test.txt").unlink()
  with pytest.raises(fetch.FetchError, match="test.txt: not found"):
    fetch.fetch("toy", tmp_path / "c")
  assert not (tmp_path / "c" / "toy").exists()


def test_unknown_name_and_unreachable_host(tmp_path, capsys):
  with pytest.raises(fetch.FetchError, match=r"unknown dataset 'nope' \(known: .*ml-100k-kg"):
    fetch.fetch("nope", tmp_path)
  assert cli.main(["data", "fetch", "nope", "--dir", str(tmp_path)]) == 2
  err = capsys.readouterr().err.strip()
  assert "unknown dataset 'nope'" in err and len(err.splitlines()) == 1
  with pytest.raises(fetch.FetchError, match=r"http://127\.0\.0\.1:9/x\.zip: download failed"):
    fetch.fetch("ml-20m", tmp_path, source_url="http://127.0.0.1:9/x.zip")


def test_registry():
  assert {"ml-100k-kg", "ml-100k", "ml-1m", "ml-20m", "ml-latest-small", "last-fm",
          "amazon-book", "yelp2018"} <= set(fetch.REGISTRY)
  assert fetch.REGISTRY["ml-100k-kg"].sha256 == (
      "9c9948202011f37eb0a7c6768129313f00d6403ad221ec940d5e2d5d5f33a407")
