"""Config files (`path.py[:arg]` with `get_config(arg)`) and `--config.a.b=value` overrides."""

from __future__ import annotations

import ast
import importlib.util
import pathlib

import ml_collections

from kgax.options import ConfigError


def _load_module(path: str):
  file = pathlib.Path(path)
  if not file.is_file():
    raise ConfigError(f"config file {path}: not found")
  module_spec = importlib.util.spec_from_file_location(f"kgax_config_{file.stem}", file)
  module = importlib.util.module_from_spec(module_spec)
  try:
    module_spec.loader.exec_module(module)
  except Exception as e:  # a config file is user code: report it on one line
    raise ConfigError(f"config file {path}: {type(e).__name__}: {e}") from None
  return module


def sibling(file: str, name: str):
  """The config module `name` beside config file `file` (configs load without sys.path edits)."""
  return _load_module(str(pathlib.Path(file).resolve().parent / name))


def load_file(spec: str) -> ml_collections.ConfigDict:
  """Loads `configs/x.py` or `configs/x.py:arg` and returns `get_config(arg)`."""
  path, _, arg = spec.partition(":")
  module = _load_module(path)
  if not hasattr(module, "get_config"):
    raise ConfigError(f"config file {path}: defines no get_config()")
  try:
    return module.get_config(arg or None)
  except ValueError as e:
    raise ConfigError(f"config file {spec}: {e}") from None


def load_module(spec: str):
  """The module of config file `spec` (`path.py[:arg]`), e.g. for a recipe's STARTS_FROM."""
  return _load_module(spec.partition(":")[0])


def load_sweep(spec: str) -> list[dict]:
  """The grid of a config file's `sweep(add)`: one {dotted field: value} dict per point."""
  path = spec.partition(":")[0]
  module = _load_module(path)
  if not hasattr(module, "sweep"):
    raise ConfigError(f"config file {path}: defines no sweep(add)")
  points = []
  module.sweep(lambda **fields: points.append(dict(fields)))
  return points


def _parse_value(text: str):
  lowered = text.lower()
  if lowered in ("true", "false"):
    return lowered == "true"
  if lowered in ("none", "null"):
    return None
  try:
    return ast.literal_eval(text)
  except (ValueError, SyntaxError):
    return text


def apply_overrides(config: ml_collections.ConfigDict, overrides: dict[str, str]):
  """Sets dotted fields from strings, checking that each field exists and the type fits."""
  for key, text in overrides.items():
    *parents, leaf = key.split(".")
    node = config
    for p in parents:
      if p not in node or not isinstance(node[p], ml_collections.ConfigDict):
        raise ConfigError(f"--config.{key}: no such field")
      node = node[p]
    if leaf not in node:
      raise ConfigError(f"--config.{key}: no such field")
    value = _parse_value(text)
    if isinstance(value, list):
      value = tuple(value)
    old = node[leaf]
    if isinstance(old, str) and not isinstance(value, str):
      value = text
    if isinstance(old, tuple) and not isinstance(value, tuple):
      value = (value,)
    try:
      node[leaf] = value
    except (TypeError, ValueError) as e:
      raise ConfigError(f"--config.{key}={text}: {e}") from None
  return config


def split_overrides(argv: list[str]) -> tuple[dict[str, str], list[str]]:
  """Separates `--config.a.b=v` / `--config.a.b v` arguments from the rest."""
  overrides, rest, i = {}, [], 0
  while i < len(argv):
    arg = argv[i]
    if arg.startswith("--config."):
      key, eq, value = arg[len("--config."):].partition("=")
      if not eq:
        if i + 1 >= len(argv):
          raise ConfigError(f"{arg}: missing value")
        value, i = argv[i + 1], i + 1
      overrides[key] = value
    else:
      rest.append(arg)
    i += 1
  return overrides, rest
