"""Reliability tallies, measured through the real `kgax` command.

Kills: `kgax train --config configs/test.py` is run once uninterrupted, then SIGKILLed at every
deterministic kill point (kgax/faults.py; the first three times each is reached) and after seeded
random delays; each killed workdir is rerun with the same command until it exits 0 (at most 5
reruns) and must end with the uninterrupted run's results.json (best epoch, validation and test
metrics, exactly) and metrics.jsonl rows (without wall times).

Bad inputs: user-level cases (config values, data files, damaged workdirs, arguments, a second
writer, a read-only workdir), each with its expected outcome: "ok" (exit 0) or "clean" (non-zero
exit, at most 3 stderr lines, no traceback, the message names the field or file, and nothing
already in the watched workdir changed: paths, sizes and mtimes, .lock aside). A read-only
workdir is chmod -R a-w, or chattr -R +i when running as root (permission bits do not bind root).

    python experiments/diagnostics/reliability.py --random 20   # writes docs/reliability/tally.json
    python experiments/diagnostics/reliability.py --quick --out /tmp/tally.json

One progress line per case; exit status 1 when any case fails (each is listed with its output).
Each run works in a fresh temporary folder (a compilation cache in it makes the reruns cheap; it
does not change what is computed) and removes it at the end; a folder left by a killed run of
this script is removed by the next one. --inputs-only skips the kills.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import pathlib
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from typing import Callable

REPO = pathlib.Path(__file__).resolve().parents[2]
CONFIG = "configs/test.py"
ARGS = ["--config.train.epochs=4", "--config.train.eval_every=1", "--config.train.patience=100",
        "--config.train.eval_start=true"]
POINTS = ["after_epoch_log", "after_validation_log", "before_best_save", "after_best_save",
          "before_best_rename", "before_latest_rename", "after_latest_save", "before_results"]
ONCE = {"before_results"}   # reached once per run
OCCURRENCES = (1, 2, 3)
MAX_RERUNS = 5
PREFIX = "kgax-reliability-"
QUICK_KILLS = [("after_validation_log", 2)]
QUICK_CASES = ["config optim.lr=-1", "cli evaluate --step abc", "data train.txt id 2**40",
               "workdir evaluate: truncated best array files", "workdir evaluate writes nothing"]
QUICK_WARM_FRACTION = 0.4   # --quick: random delays within this fraction of the first run


# Running kgax ---------------------------------------------------------------------------------

class Runner:
  """Runs `python -m kgax.cli` in subprocesses under one temporary root."""

  def __init__(self, root: pathlib.Path):
    self.root = root
    self.env = dict(os.environ, JAX_PLATFORMS="cpu",
                    JAX_COMPILATION_CACHE_DIR=str(root / "jax-cache"),
                    JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
                    JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0")
    self.env.pop("KGAX_KILL_AT", None)

  def argv(self, *args: str) -> list[str]:
    return [sys.executable, "-m", "kgax.cli", *args]

  def run(self, *args: str, kill_at: str | None = None, timeout: float = 600):
    env = dict(self.env, **({"KGAX_KILL_AT": kill_at} if kill_at else {}))
    t0 = time.time()
    try:
      p = subprocess.run(self.argv(*args), capture_output=True, text=True, env=env, cwd=REPO,
                         timeout=timeout)
      rc, out, err = p.returncode, p.stdout, p.stderr
    except subprocess.TimeoutExpired as e:
      rc, out, err = "timeout", _text(e.stdout), _text(e.stderr)
    return rc, out, err, time.time() - t0

  def popen(self, *args: str):
    return subprocess.Popen(self.argv(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=self.env, cwd=REPO)

  def hide(self, text: str) -> str:
    """`text` with the temporary root and the repository written as $TMP and $REPO."""
    return text.replace(str(self.root), "$TMP").replace(str(REPO), "$REPO")


def _text(b) -> str:
  return b.decode(errors="replace") if isinstance(b, bytes) else (b or "")


def _tail(text: str, n: int = 1500) -> str:
  return text if len(text) <= n else "..." + text[-n:]


def train_args(workdir, *extra: str) -> list[str]:
  return ["train", "--config", CONFIG, "--workdir", str(workdir), *ARGS, *extra]


def outcome(workdir: pathlib.Path) -> tuple[dict, list[dict]] | None:
  """(results.json's best epoch and metrics, metrics.jsonl rows without timings) or None."""
  try:
    r = json.loads((workdir / "results.json").read_text())
    rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
  except (OSError, ValueError):
    return None
  keep = {"best_epoch": r.get("best_epoch"), "valid": r.get("valid"), "test": r.get("test")}
  return keep, [{k: v for k, v in row.items() if k not in ("wall", "epoch_seconds")}
                for row in rows]


def difference(got, want) -> str | None:
  if got is None:
    return "no readable results.json / metrics.jsonl"
  if got[0] != want[0]:
    return f"results differ: {got[0]} != {want[0]}"
  if got[1] != want[1]:
    return f"metrics.jsonl rows differ ({len(got[1])} rows, {len(want[1])} expected)"
  return None


# Kills ----------------------------------------------------------------------------------------

def left(workdir: pathlib.Path) -> dict:
  """What a killed run left: metrics rows, checkpoint steps, results.json."""
  def steps(sub):
    d = workdir / "checkpoints" / sub
    return sorted(int(p.name) for p in d.iterdir() if p.name.isdigit()) if d.is_dir() else []
  rows = (workdir / "metrics.jsonl").read_text().count("\n") if (
      workdir / "metrics.jsonl").exists() else None
  return {"config": (workdir / "config.json").exists(), "metrics_rows": rows,
          "latest": steps("latest"), "best": steps("best"),
          "results": (workdir / "results.json").exists()}


def rerun_until_done(runner: Runner, workdir) -> tuple[int, str | None]:
  """Reruns the unarmed command until it exits 0 -> (reruns, last failure output or None)."""
  last = None
  for n in range(1, MAX_RERUNS + 1):
    rc, out, err, _ = runner.run(*train_args(workdir))
    if rc == 0:
      return n, None
    last = f"rerun {n}: rc {rc}\n{_tail(err or out)}"
  return MAX_RERUNS, last


def kill_case(runner: Runner, workdir, want, *, point=None, delay=None) -> dict:
  """Kills one run (at a kill point, or after `delay` seconds), then reruns and compares."""
  t0 = time.time()
  if point is not None:
    rc, out, err, _ = runner.run(*train_args(workdir), kill_at=point)
  else:
    p = runner.popen(*train_args(workdir))
    try:
      p.wait(timeout=delay)
    except subprocess.TimeoutExpired:
      p.send_signal(signal.SIGKILL)
    out, err = p.communicate()
    rc = p.returncode
  killed = rc == -signal.SIGKILL
  case = {"kill": point or f"random {delay:.2f}s", "killed": killed, "left": left(workdir)}
  if not killed and rc != 0:
    case.update(identical=False, error=runner.hide(f"rc {rc}\n{_tail(err or out)}"))
  elif not killed:
    case.update(identical=None, note="not reached, or finished before the kill")
  else:
    reruns, failure = rerun_until_done(runner, workdir)
    why = failure or difference(outcome(workdir), want)
    case.update(reruns=reruns, identical=why is None)
    if why:
      case["error"] = runner.hide(why)
  case["seconds"] = round(time.time() - t0, 1)
  return case


def kill_plan(quick: bool, n_random: int, seed: int, warm: float) -> list[tuple[str, object]]:
  if quick:
    points = [f"{p}:{k}" for p, k in QUICK_KILLS]
  else:
    points = [f"{p}:{k}" for p in POINTS for k in (OCCURRENCES[:1] if p in ONCE else OCCURRENCES)]
  rng = random.Random(seed)
  return ([("point", p) for p in points] +
          [("delay", rng.uniform(0.0, warm)) for _ in range(n_random)])


def run_kills(runner: Runner, n_random: int, seed: int, quick: bool, none: bool = False):
  """The uninterrupted run, then every kill of the plan -> the kills' tally."""
  ref = runner.root / "kills" / "reference"
  rc, out, err, wall = runner.run(*train_args(ref))
  if rc != 0:
    raise SystemExit(f"the uninterrupted run failed (rc {rc}):\n{_tail(err)}")
  want = outcome(ref)
  print(f"uninterrupted run: {wall:.1f}s, best epoch {want[0]['best_epoch']}", flush=True)
  if none:
    return {"uninterrupted_seconds": round(wall, 1), "tried": 0, "identical": 0,
            "not_killed": 0, "landed_after_first_log": 0, "failing": [], "cases": []}
  if quick:   # the kill runs find the programs compiled: most of the first run's time
    warm = QUICK_WARM_FRACTION * wall
  else:   # a second uninterrupted run times the command as the kill runs find it (compiled)
    again = runner.root / "kills" / "again"   # for the random delays, and must agree
    rc, out, err, warm = runner.run(*train_args(again))
    same = rc == 0 and difference(outcome(again), want) is None
    print(f"second uninterrupted run: {warm:.1f}s, identical: {same}", flush=True)
    if not same:
      raise SystemExit(f"two uninterrupted runs differ (rc {rc}):\n{_tail(err)}")
  plan = kill_plan(quick, n_random, seed, warm)
  cases = []
  for i, (kind, arg) in enumerate(plan):
    workdir = runner.root / "kills" / f"k{i}"
    c = kill_case(runner, workdir, want, **({"point": arg} if kind == "point" else
                                              {"delay": arg}))
    cases.append(c)
    if c["identical"] is None:
      state = "not reached, or finished before the kill"
    else:
      state = f"{'identical' if c['identical'] else 'DIFFERENT'} after {c.get('reruns', 0)} " \
              "rerun(s)"
    print(f"[kill {i + 1}/{len(plan)}] {c['kill']}: {state} ({c['seconds']}s)", flush=True)
    shutil.rmtree(workdir, ignore_errors=True)
  tried = [c for c in cases if c["killed"] or c["identical"] is False]
  return {"uninterrupted_seconds": round(wall, 1), "warm_seconds": round(warm, 1),
          "tried": len(tried), "identical": sum(bool(c["identical"]) for c in tried),
          "not_killed": len(cases) - len(tried),
          "landed_after_first_log": sum((c["left"]["metrics_rows"] or 0) > 0 for c in tried),
          "failing": [c for c in tried if not c["identical"]], "cases": cases}


# Bad inputs -----------------------------------------------------------------------------------

@dataclasses.dataclass
class Case:
  """One user-level input. argv and watch may hold {dir} {wd} {data} {config}; setup(dir)
  prepares the case's folder."""
  name: str
  kind: str
  argv: list[str]
  expect: str                                     # ok | clean
  names: tuple[str, ...] = ()                      # in stderr (clean) or stdout (ok)
  watch: str | None = "{wd}"                       # must not change (clean; ok with unchanged)
  unchanged: bool = False                          # ok cases: the watched folder must not change
  setup: Callable[[pathlib.Path], None] | None = None
  hold: bool = False                               # another kgax train holds {wd} meanwhile
  read_only: bool = False                          # {wd} made read-only first


def snapshot(path: pathlib.Path) -> dict:
  """{relative path: (kind, size, mtime_ns)} of everything under `path` but .lock."""
  if not path.exists():
    return {}
  out = {".": ("dir", 0, path.stat().st_mtime_ns)}
  for p in sorted(path.rglob("*")):
    if p.name == ".lock":
      continue
    st = p.lstat()
    out[str(p.relative_to(path))] = ("dir" if p.is_dir() else "file", st.st_size,
                                     st.st_mtime_ns)
  return out


def changes(before: dict, after: dict) -> list[str]:
  return ([f"removed {k}" for k in before if k not in after] +
          [f"added {k}" for k in after if k not in before] +
          [f"changed {k}" for k in before if k in after and before[k] != after[k]])


def read_only_method() -> tuple[str | None, str]:
  """How this process can make a folder read-only, and why (chattr +i when root)."""
  if os.geteuid() != 0:
    return "chmod", "chmod -R a-w"
  probe = pathlib.Path(tempfile.mkdtemp(prefix=PREFIX + "probe-"))
  try:
    if subprocess.run(["chattr", "+i", str(probe)], capture_output=True).returncode != 0:
      return None, "running as root (permission bits do not apply) and chattr +i is unavailable"
    try:
      (probe / "x").touch()
      return None, "running as root and chattr +i does not stop writes here"
    except OSError:
      return "chattr", "running as root: chattr -R +i (the immutable flag binds root too)"
  except FileNotFoundError:
    return None, "running as root (permission bits do not apply) and there is no chattr"
  finally:
    subprocess.run(["chattr", "-i", str(probe)], capture_output=True)
    shutil.rmtree(probe, ignore_errors=True)


def set_read_only(path: pathlib.Path, method: str, on: bool) -> None:
  if method == "chattr":
    subprocess.run(["chattr", "-R", "+i" if on else "-i", str(path)], check=True,
                   capture_output=True)
  else:
    subprocess.run(["chmod", "-R", "a-w" if on else "u+w", str(path)], check=True)


def unfreeze_all(root: pathlib.Path) -> None:
  if os.geteuid() == 0 and shutil.which("chattr") and root.exists():
    subprocess.run(["chattr", "-R", "-i", str(root)], capture_output=True)
  elif root.exists():
    subprocess.run(["chmod", "-R", "u+w", str(root)], capture_output=True)


def write(path: pathlib.Path, data: str | bytes) -> None:
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_bytes(data.encode() if isinstance(data, str) else data)


def build_cases(base_data: pathlib.Path, finished: pathlib.Path) -> list[Case]:
  """The bad inputs (and the inputs that look bad but must work)."""
  cases: list[Case] = []
  train = ["train", "--config", "{config}", "--workdir", "{wd}", "--config.train.epochs=2"]

  # Config values: refused before the workdir exists.
  for override, names in [
      ("optim.lr=-1", ("config.optim.lr",)), ("optim.lr=-1e-5", ("config.optim.lr",)),
      ("optim.lr=0", ("config.optim.lr",)), ("optim.lr=nan", ("config.optim.lr",)),
      ("optim.kg_lr=-0.001", ("config.optim.kg_lr",)), ("optim.l2=-0.1", ("config.optim.l2",)),
      ("optim.schedule=both", ("config.optim.schedule",)),
      ("train.epochs=-3", ("config.train.epochs",)), ("train.epochs=0", ("config.train.epochs",)),
      ("train.batch_size=0", ("config.train.batch_size",)),
      ("train.eval_every=0", ("config.train.eval_every",)),
      ("train.kg_batch_size=-8", ("config.train.kg_batch_size",)),
      ("train.patience=0", ("config.train.patience",)),
      ("train.select_metric=recal@20", ("config.train.select_metric",)),
      ("train.select_metric=recall@7", ("config.train.select_metric",)),
      ("model.embed_dim=0", ("config.model.embed_dim",)),
      ("model.relation_dim=-4", ("config.model.relation_dim",)),
      ("model.layers=(16,0)", ("config.model.layers",)),
      ("data.kg=random", ("config.data.kg",)),
      ("data.test_fraction=1.5", ("config.data.test_fraction",)),
      ("eval.ks=()", ("config.eval.ks",)), ("eval.ks=(20,0)", ("config.eval.ks",)),
      ("eval.ks=(a,b)", ("eval.ks",)),
      ("train.epoch=3", ("train.epoch",)), ("trian.epochs=3", ("trian.epochs",)),
      ("train.epochs=abc", ("train.epochs",)), ("train.epochs=2.5", ("train.epochs",)),
      ("optim.lr=fast", ("optim.lr",)), ("train.eval_start=maybe", ("train.eval_start",)),
      ("data.name=no-such-dataset", ("no-such-dataset",)),
      ("start.pretrained={dir}/no-such-workdir", ("no-such-workdir",)),
  ]:
    label = override.replace("{dir}/", "")
    cases.append(Case(f"config {label}", "config", train + [f"--config.{override}"], "clean",
                      names))
  cases.append(Case("config file missing", "config",
                    ["train", "--config", "configs/no_such.py", "--workdir", "{wd}"], "clean",
                    ("configs/no_such.py",)))
  cases.append(Case("config file argument unknown", "config",
                    ["train", "--config", "{config}:colour=red", "--workdir", "{wd}"], "clean",
                    ("colour",)))
  cases.append(Case("config override without a value", "config",
                    ["train", "--config", "{config}", "--workdir", "{wd}", "--config.optim.lr"],
                    "clean", ("--config.optim.lr",)))

  # Data files: KGAT folders, each a variant of a valid split of synthetic-tiny.
  def data(**files: str | bytes | None):
    def setup(d: pathlib.Path):
      folder = d / "data"
      folder.mkdir(parents=True)
      for f in ("train.txt", "test.txt", "kg_final.txt"):
        shutil.copy2(base_data / f, folder / f)
      for name, content in files.items():
        name = name.replace("_txt", ".txt")
        if content is None:
          (folder / name).unlink()
        else:
          write(folder / name, content(folder / name) if callable(content) else content)
    return setup

  def append(text: bytes):
    return lambda p: p.read_bytes() + text

  def first_line(fn):
    def edit(p):
      lines = p.read_bytes().split(b"\n")
      return b"\n".join([fn(lines[0])] + lines[1:])
    return edit

  on_data = train + ["--config.data.name={data}"]
  stats = ["data", "stats", "{data}"]
  for name, files, argv, expect, names in [
      ("test ids beyond train", dict(test_txt=append(b"999999 3\n7 888888\n")), stats, "ok",
       ("test.txt: dropped 2 pairs",)),
      ("test.txt id 2**40", dict(test_txt=append(f"3 {2**40}\n".encode())), stats, "ok",
       ("test.txt: dropped 1 pairs",)),
      ("train.txt id 2**40", dict(train_txt=append(f"3 {2**40}\n".encode())), on_data, "clean",
       ("train.txt",)),
      ("train.txt user 2**40", dict(train_txt=append(f"{2**40} 3\n".encode())), on_data, "clean",
       ("train.txt",)),
      ("kg_final.txt entity 2**40", dict(kg_final_txt=append(f"1 0 {2**40}\n".encode())),
       on_data, "clean", ("kg_final.txt",)),
      ("kg_final.txt relation 2**40", dict(kg_final_txt=append(f"1 {2**40} 2\n".encode())),
       on_data, "clean", ("kg_final.txt",)),
      ("CR-only line endings", dict(
          train_txt=lambda p: p.read_bytes().replace(b"\n", b"\r"),
          test_txt=lambda p: p.read_bytes().replace(b"\n", b"\r"),
          kg_final_txt=lambda p: p.read_bytes().replace(b"\n", b"\r")),
       on_data[:-2] + ["--config.train.epochs=1", "--config.data.name={data}"], "ok",
       ("test metrics",)),
      ("CRLF line endings", dict(
          train_txt=lambda p: p.read_bytes().replace(b"\n", b"\r\n"),
          test_txt=lambda p: p.read_bytes().replace(b"\n", b"\r\n")), stats, "ok", ("users",)),
      ("empty train.txt", dict(train_txt=b""), on_data, "clean", ("train.txt",)),
      ("empty test.txt", dict(test_txt=b""), on_data, "clean", ("test",)),
      ("empty kg_final.txt", dict(kg_final_txt=b""), on_data, "clean",
       ("kg",)),
      ("missing train.txt and test.txt", dict(train_txt=None, test_txt=None), on_data, "clean",
       ("train.txt",)),
      ("missing kg_final.txt (optional: no KG triples)", dict(kg_final_txt=None),
       on_data[:-2] + ["--config.train.epochs=1", "--config.data.name={data}"], "ok",
       ("test metrics",)),
      ("non-integer token", dict(train_txt=first_line(lambda l: l + b" x7")), on_data, "clean",
       ("train.txt",)),
      ("float token", dict(train_txt=first_line(lambda l: l + b" 3.5")), on_data, "clean",
       ("train.txt",)),
      ("negative id in train.txt", dict(train_txt=first_line(lambda l: l + b" -4")), on_data,
       "clean", ("train.txt",)),
      ("negative id in test.txt", dict(test_txt=first_line(lambda l: b"-1 2")), on_data,
       "clean", ("test.txt",)),
      ("negative id in kg_final.txt", dict(kg_final_txt=first_line(lambda l: b"-1 0 3")),
       on_data, "clean", ("kg_final.txt",)),
      ("kg_final.txt with two columns", dict(kg_final_txt=first_line(lambda l: b"1 0")),
       on_data, "clean", ("kg_final.txt",)),
      ("garbage bytes in train.txt", dict(train_txt=append(bytes(range(256)) + b"\n")),
       on_data, "clean", ("train.txt",)),
      ("garbage bytes in kg_final.txt", dict(kg_final_txt=lambda p: b"\xff\xfe\x00\x81" * 64),
       on_data, "clean", ("kg_final.txt",)),
      ("NUL byte in test.txt", dict(test_txt=first_line(lambda l: l + b"\x00")), on_data,
       "clean", ("test.txt",)),
      ("user_list.txt shorter than train.txt",
       dict(user_list_txt=b"org_id remap_id\nu0 0\nu1 1\n"), on_data, "clean",
       ("user_list.txt",)),
  ]:
    cases.append(Case(f"data {name}", "data", list(argv), expect, names, setup=data(**files)))
  cases.append(Case("data folder missing", "data", on_data, "clean", ("{data}",)))
  cases.append(Case("data train.txt is a folder", "data", on_data, "clean", ("train.txt",),
                    setup=lambda d: (data(train_txt=None)(d), (d / "data" / "train.txt").mkdir())))

  # Damaged workdirs: a copy of the finished uninterrupted run, damaged.
  best_step = next((finished / "checkpoints" / "best").iterdir()).name
  latest_steps = sorted((p.name for p in (finished / "checkpoints" / "latest").iterdir()),
                        key=int)

  def array_files(step_dir: pathlib.Path) -> list[pathlib.Path]:
    # every data file of the step: OCDBT may leave files that no array refers to, so damaging
    # one file (say the largest) may damage nothing that a restore reads
    return sorted(p for p in step_dir.rglob("*") if p.is_file() and p.parent.name == "d")

  def damaged(*edits):
    def setup(d: pathlib.Path):
      shutil.copytree(finished, d / "wd")
      for where, how in edits:
        target = d / "wd" / where
        if how == "array-truncate":
          for f in array_files(target):
            f.write_bytes(f.read_bytes()[:f.stat().st_size // 2])
        elif how == "array-garble":
          for f in array_files(target):
            b = bytearray(f.read_bytes())
            mid = len(b) // 2
            b[mid:mid + 64] = bytes(x ^ 0xA5 for x in b[mid:mid + 64])
            f.write_bytes(bytes(b))
        elif how == "empty":
          target.write_bytes(b"")
        elif how == "truncate":
          target.write_bytes(target.read_bytes()[:target.stat().st_size // 2])
        elif how == "garble-last-line":
          target.write_bytes(target.read_bytes()[:-1] + b"\x00{\"epoch\": 9, \"spl")
        elif how == "remove":
          if target.is_dir():
            shutil.rmtree(target)
          else:
            target.unlink()
        elif how == "not-an-object":
          target.write_text("[1, 2, 3]")
    return setup

  best = f"checkpoints/best/{best_step}"
  latest = f"checkpoints/latest/{latest_steps[-1]}"
  evaluate = ["evaluate", "--workdir", "{wd}"]
  resume = ["train", "--config", "{config}", "--workdir", "{wd}", *ARGS]
  for name, edits, argv, expect, names in [
      ("evaluate: truncated best array files", [(best, "array-truncate")], evaluate, "clean",
       (best,)),
      ("evaluate: garbled best array files", [(best, "array-garble")], evaluate, "clean",
       (best,)),
      ("evaluate: 0-byte best _METADATA", [(f"{best}/default/_METADATA", "empty")], evaluate,
       "clean", (best,)),
      ("evaluate --step latest: truncated latest array files", [(latest, "array-truncate")],
       evaluate + ["--step", "latest"], "clean", (latest,)),
      ("evaluate: truncated config.json", [("config.json", "truncate")], evaluate, "clean",
       ("config.json",)),
      ("evaluate: config.json not an object", [("config.json", "not-an-object")], evaluate,
       "clean", ("config.json",)),
      ("evaluate: config.json missing", [("config.json", "remove")], evaluate, "clean",
       ("config.json",)),
      ("evaluate: checkpoints/ missing", [("checkpoints", "remove")], evaluate, "clean",
       ("checkpoint",)),
      ("evaluate: damaged results.json (not read)", [("results.json", "truncate")], evaluate,
       "ok", ("test metrics",)),
      ("evaluate: garbled metrics.jsonl last line (not read)",
       [("metrics.jsonl", "garble-last-line")], evaluate, "ok", ("test metrics",)),
      ("evaluate --step 99: no such step", [], evaluate + ["--step", "99"], "clean",
       ("step 99",)),
      ("resume: truncated latest array files (falls back)", [(latest, "array-truncate")],
       resume, "ok", ("skipping unusable",)),
      ("resume: 0-byte latest _METADATA (falls back)",
       [(f"{latest}/default/_METADATA", "empty")], resume, "ok", ("test metrics",)),
      ("resume: every latest array file truncated",
       [(f"checkpoints/latest/{s}", "array-truncate") for s in latest_steps], resume, "clean",
       ("checkpoints/latest",)),
      ("resume: garbled best array files", [(best, "array-garble")], resume, "clean", (best,)),
      ("resume: truncated config.json", [("config.json", "truncate")], resume, "clean",
       ("config.json",)),
      ("resume: config.json not an object", [("config.json", "not-an-object")], resume,
       "clean", ("config.json",)),
      ("resume: config.json missing, checkpoints kept", [("config.json", "remove")], resume,
       "clean", ("config.json",)),
      ("resume: garbled metrics.jsonl last line", [("metrics.jsonl", "garble-last-line")],
       resume, "ok", ("test metrics",)),
      ("resume: damaged results.json (rewritten)", [("results.json", "truncate")], resume,
       "ok", ("test metrics",)),
      ("resume: another config", [], resume + ["--config.optim.lr=0.01"], "clean",
       ("config.json", "optim.lr")),
      ("resume: fewer epochs", [], resume + ["--config.train.epochs=2"], "clean",
       ("train.epochs",)),
  ]:
    cases.append(Case(f"workdir {name}", "workdir", list(argv), expect, names,
                      setup=damaged(*edits)))
  cases.append(Case("workdir evaluate writes nothing", "workdir",
                    evaluate + ["--split", "valid"], "ok", ("valid metrics",), unchanged=True,
                    setup=damaged()))
  cases.append(Case("workdir evaluate of a folder that is no workdir", "workdir", evaluate,
                    "clean", ("config.json",), setup=lambda d: (d / "wd").mkdir()))

  # Command-line arguments.
  for name, argv, names in [
      ("evaluate --step abc", evaluate + ["--step", "abc"], ("--step", "abc")),
      ("evaluate --step -1", evaluate + ["--step=-1"], ("--step",)),
      ("evaluate --split train", evaluate + ["--split", "train"], ("--split",)),
      ("recommend --k 0", ["recommend", "--workdir", "{wd}", "--user", "0", "--k", "0"],
       ("--k",)),
      ("recommend --paths -2",
       ["recommend", "--workdir", "{wd}", "--user", "0", "--paths=-2"], ("--paths",)),
      ("recommend without --user", ["recommend", "--workdir", "{wd}"], ("--user",)),
      ("recommend --users all without --output",
       ["recommend", "--workdir", "{wd}", "--users", "all"], ("--output",)),
      ("train without --workdir", ["train", "--config", "{config}"], ("--workdir",)),
      ("evaluate without --workdir", ["evaluate"], ("--workdir",)),
      ("unknown command", ["fly", "--workdir", "{wd}"], ("fly",)),
      ("no command", [], ("command",)),
      ("override on evaluate", evaluate + ["--config.train.epochs=3"], ("--config",)),
      ("data stats of a missing folder", ["data", "stats", "{dir}/nothing-here"],
       ("nothing-here",)),
  ]:
    cases.append(Case(f"cli {name}", "cli", argv, "clean", names,
                      setup=lambda d: shutil.copytree(finished, d / "wd")))
  cases.append(Case("cli recommend an unknown user", "cli",
                    ["recommend", "--workdir", "{wd}", "--user", "no-such-user"], "clean",
                    ("no-such-user",), setup=lambda d: shutil.copytree(finished, d / "wd")))
  cases.append(Case("cli recommend a known user", "cli",
                    ["recommend", "--workdir", "{wd}", "--user", "0", "--k", "3"], "ok", (),
                    unchanged=True, setup=lambda d: shutil.copytree(finished, d / "wd")))

  # One writer; workdirs that cannot be written.
  cases.append(Case("access second writer on a held workdir", "access",
                    ["train", "--config", "{config}", "--workdir", "{wd}", *ARGS,
                     "--config.train.epochs=400", "--config.train.eval_every=100"], "clean",
                    ("another kgax process", "{wd}"), watch=None, hold=True))
  cases.append(Case("access evaluate on a read-only workdir", "access", evaluate, "ok",
                    ("test metrics",), unchanged=True, read_only=True,
                    setup=lambda d: shutil.copytree(finished, d / "wd")))
  cases.append(Case("access resume on a read-only workdir", "access", resume, "clean",
                    ("{wd}",), read_only=True,
                    setup=lambda d: shutil.copytree(finished, d / "wd")))
  cases.append(Case("access evaluate --output into a read-only workdir", "access",
                    evaluate + ["--output", "{wd}/metrics-out.json"], "clean",
                    ("metrics-out.json",), read_only=True,
                    setup=lambda d: shutil.copytree(finished, d / "wd")))
  cases.append(Case("access train where the workdir's parent is a file", "access",
                    ["train", "--config", "{config}", "--workdir", "{dir}/file/wd"], "clean",
                    ("{dir}/file",), watch="{dir}", setup=lambda d: write(d / "file", "x")))
  cases.append(Case("access evaluate --output where the parent is a file", "access",
                    evaluate + ["--output", "{dir}/file/out.json"], "clean",
                    ("{dir}/file",),
                    setup=lambda d: (shutil.copytree(finished, d / "wd"), write(d / "file", "x"))))
  return cases


def hold_workdir(runner: Runner, wd: pathlib.Path, argv: list[str]):
  """A `kgax train` holding `wd` (started, and waited for until it writes metrics.jsonl)."""
  p = runner.popen(*argv)
  deadline = time.time() + 300
  while not (wd / "metrics.jsonl").exists() and p.poll() is None and time.time() < deadline:
    time.sleep(0.2)
  return p


def run_case(runner: Runner, case: Case, d: pathlib.Path, ro_method: str | None) -> dict:
  d.mkdir(parents=True)
  fmt = dict(dir=str(d), wd=str(d / "wd"), data=str(d / "data"), config=CONFIG)
  argv = [a.format(**fmt) for a in case.argv]
  names = [n.format(**fmt) for n in case.names]
  record = {"name": case.name, "kind": case.kind, "expect": case.expect,
            "command": runner.hide("kgax " + " ".join(argv))}
  if case.read_only and ro_method is None:
    return {**record, "skipped": True}
  if case.setup:
    case.setup(d)
  holder = hold_workdir(runner, d / "wd", argv) if case.hold else None
  watch = pathlib.Path(case.watch.format(**fmt)) if case.watch else None
  frozen = False
  try:
    if case.read_only:
      set_read_only(d / "wd", ro_method, True)
      frozen = True
    before = snapshot(watch) if watch else None
    rc, out, err, secs = runner.run(*argv, timeout=300)
    after = snapshot(watch) if watch else None
  finally:
    if frozen:
      set_read_only(d / "wd", ro_method, False)
    if holder is not None:
      holder.kill()
      holder.communicate()
  problems = []
  if holder is not None and holder.returncode not in (-signal.SIGKILL, None):
    problems.append(f"the holding run ended by itself (rc {holder.returncode})")
  if "Traceback" in out + err:
    problems.append("a traceback")
  if case.expect == "ok":
    if rc != 0:
      problems.append(f"rc {rc}, expected 0")
    missing = [n for n in names if n not in out]
    if missing:
      problems.append(f"stdout lacks {missing}")
    if case.unchanged and watch is not None and changes(before, after):
      problems.append(f"changed the workdir: {changes(before, after)[:5]}")
  else:
    lines = [line for line in err.split("\n") if line.strip()]
    if not isinstance(rc, int) or rc <= 0:
      problems.append(f"rc {rc}, expected an error exit")
    if len(lines) > 3:
      problems.append(f"{len(lines)} stderr lines")
    missing = [n for n in names if n not in err]
    if missing:
      problems.append(f"the message lacks {missing}")
    if watch is not None and changes(before, after):
      problems.append(f"changed {changes(before, after)[:5]}")
  record.update(passed=not problems, rc=rc, seconds=round(secs, 1))
  if problems:
    record.update(problems=[runner.hide(p) for p in problems], stdout=runner.hide(_tail(out)),
                  stderr=runner.hide(_tail(err)))
  else:
    record["message"] = runner.hide(_tail(err.strip() if case.expect == "clean" else "", 400))
  return record


def run_inputs(runner: Runner, finished: pathlib.Path, quick: bool) -> dict:
  base = runner.root / "base-data"
  rc, out, err, _ = runner.run("data", "split", "synthetic-tiny", "--out", str(base))
  if rc != 0:
    raise SystemExit(f"kgax data split failed:\n{_tail(err)}")
  cases = build_cases(base, finished)
  if quick:
    cases = [c for c in cases if c.name in QUICK_CASES]
  ro_method, ro_reason = read_only_method()
  records = []
  for i, case in enumerate(cases):
    d = runner.root / "inputs" / f"c{i}"
    r = run_case(runner, case, d, ro_method)
    if r.get("skipped"):
      r["reason"] = ro_reason
      state = f"skipped ({ro_reason})"
    else:
      state = ("as expected" if r["passed"] else "FAILED: " + "; ".join(r["problems"]))
      state = f"{case.expect} {state} (rc {r['rc']}, {r['seconds']}s)"
    print(f"[input {i + 1}/{len(cases)}] {case.name}: {state}", flush=True)
    records.append(r)
    unfreeze_all(d)
    shutil.rmtree(d, ignore_errors=True)
  tried = [r for r in records if not r.get("skipped")]
  return {"tried": len(tried), "passed": sum(r["passed"] for r in tried),
          "clean": sum(r["passed"] for r in tried if r["expect"] == "clean"),
          "clean_expected": sum(r["expect"] == "clean" for r in tried),
          "ok": sum(r["passed"] for r in tried if r["expect"] == "ok"),
          "ok_expected": sum(r["expect"] == "ok" for r in tried),
          "read_only": ro_reason,
          "skipped": [{"name": r["name"], "reason": r["reason"]} for r in records
                      if r.get("skipped")],
          "failing": [r for r in tried if not r["passed"]], "cases": records}


# Main -----------------------------------------------------------------------------------------

def remove_stale() -> None:
  """Removes the temporary folders of runs of this script that were killed."""
  for p in pathlib.Path(tempfile.gettempdir()).glob(PREFIX + "*"):
    try:
      pid = int((p / "pid").read_text())
      os.kill(pid, 0)
      continue   # still running
    except (OSError, ValueError):
      pass
    unfreeze_all(p)
    shutil.rmtree(p, ignore_errors=True)


def write_atomic(path: pathlib.Path, text: str) -> None:
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
  tmp.write_text(text)
  os.replace(tmp, path)


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--random", type=int, default=None, help="random kill times (default 20; "
                 "1 with --quick)")
  p.add_argument("--seed", type=int, default=0, help="seed of the random kill times")
  p.add_argument("--quick", action="store_true", help="a handful of cases (for a test)")
  p.add_argument("--out", default=str(REPO / "docs" / "reliability" / "tally.json"))
  p.add_argument("--inputs-only", action="store_true", help="only the uninterrupted run and "
                 "the bad inputs (no kills)")
  args = p.parse_args(argv)
  n_random = args.random if args.random is not None else (1 if args.quick else 20)
  remove_stale()
  root = pathlib.Path(tempfile.mkdtemp(prefix=PREFIX))
  (root / "pid").write_text(str(os.getpid()))
  runner = Runner(root)
  t0 = time.time()
  try:
    kills = run_kills(runner, n_random, args.seed, args.quick, args.inputs_only)
    inputs = run_inputs(runner, root / "kills" / "reference", args.quick)
  finally:
    unfreeze_all(root)
    shutil.rmtree(root, ignore_errors=True)
  command = "python experiments/diagnostics/reliability.py " + " ".join(
      (["--quick"] if args.quick else []) + [f"--random {n_random}"] +
      ([f"--seed {args.seed}"] if args.seed else []))
  import jax
  tally = {"command": command, "seconds": round(time.time() - t0, 1),
           "environment": {"python": sys.version.split()[0], "jax": jax.__version__,
                           "cpus": os.cpu_count(), "root": os.geteuid() == 0},
           "kills": kills, "inputs": inputs}
  write_atomic(pathlib.Path(args.out), json.dumps(tally, indent=1) + "\n")
  print(f"\nkills: {kills['tried']} tried, {kills['identical']} identical "
        f"({kills['not_killed']} not reached or finished before the kill)")
  print(f"bad inputs: {inputs['tried']} tried, {inputs['passed']} as expected "
        f"({inputs['clean']}/{inputs['clean_expected']} clean, "
        f"{inputs['ok']}/{inputs['ok_expected']} ok), {len(inputs['skipped'])} skipped")
  for r in inputs["failing"]:
    print(f"  FAILED {r['name']}: {'; '.join(r['problems'])}\n    {r['command']}\n"
          + "".join(f"    | {line}\n" for line in (r['stderr'] or r['stdout']).splitlines()[-8:]))
  for c in kills["failing"]:
    print(f"  DIFFERENT {c['kill']}: {c.get('error')}")
  shown = pathlib.Path(args.out).resolve()
  shown = shown.relative_to(REPO) if shown.is_relative_to(REPO) else shown
  print(f"wrote {shown} ({tally['seconds']}s)")
  return 0 if not inputs["failing"] and not kills["failing"] else 1


if __name__ == "__main__":
  sys.exit(main())
