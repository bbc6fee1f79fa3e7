"""Deterministic kill points, for tests of what a crash at a given instant leaves behind.

`point(name)` sends SIGKILL to this process when the environment variable KGAX_KILL_AT is
`name` (the first time the point is reached) or `name:K` (the K-th time in this process,
1-based). Otherwise it returns at once.
"""

from __future__ import annotations

import os
import signal

ENV = "KGAX_KILL_AT"
_reached: dict[str, int] = {}


def armed() -> bool:
  """Whether KGAX_KILL_AT names a point (code may then add points it otherwise skips)."""
  return bool(os.environ.get(ENV))


def point(name: str) -> None:
  """Kills this process if KGAX_KILL_AT asks for this point now; see the module docstring."""
  spec = os.environ.get(ENV)
  if not spec:
    return
  target, sep, k = spec.rpartition(":")
  if not sep:
    target, k = spec, "1"
  if target != name:
    return
  if not k.isdigit() or int(k) < 1:
    raise ValueError(f"{ENV}={spec!r}: expected NAME or NAME:K with K a positive integer")
  _reached[name] = _reached.get(name, 0) + 1
  if _reached[name] == int(k):
    os.kill(os.getpid(), signal.SIGKILL)
