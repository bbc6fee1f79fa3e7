"""Starting from a trained workdir (KGAT's protocol): pretrained user and item rows, and the
rows the pretrained run had no vector for filled from their neighbours."""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import numpy as np

from kgax import inference
from kgax.data.types import Split
from kgax.graph import Graph, real_edges
from kgax.options import StartOptions
from kgax.sampling import PairSet


class PretrainedError(RuntimeError):
  """The pretrained workdir cannot start this run; the message names it."""


def spread_embeddings(node: np.ndarray, known: np.ndarray, graph: Graph, rounds: int
                      ) -> np.ndarray:
  """Fills rows of `node` [N, d] that `known` [N] marks as unset, `rounds` times: each unset node
  with a set neighbour in the CKG gets the mean of its set neighbours' rows (and becomes set).
  Nodes still unset keep their row."""
  node, known = np.array(node), np.array(known, bool)
  heads, _, tails = real_edges(graph)
  for _ in range(rounds):
    use = known[tails] & ~known[heads]
    count = np.bincount(heads[use], minlength=len(node))
    total = np.zeros_like(node)
    np.add.at(total, heads[use], node[tails[use]])
    fill = count > 0
    if not fill.any():
      break
    node[fill] = total[fill] / count[fill, None]
    known |= fill
  return node


@dataclasses.dataclass(frozen=True)
class Pretrained:
  """The user and item rows of a finished run, checked against the run they will start."""
  workdir: str
  users: np.ndarray   # [n_users, d]
  items: np.ndarray   # [n_items, d]


def split_difference(source: Split, split: Split, n_items: int) -> str | None:
  """Why a run trained on `source` cannot start a run on `split`, or None when both train on
  the same pairs. A start from another split would carry what it learnt from this run's
  validation or test pairs (another data.split_seed), or from pairs this run does not train on
  (another data.train_fraction or data.cold_items), into this run."""
  theirs, ours = (PairSet(s.train[:, 0], s.train[:, 1], n_items) for s in (source, split))
  if np.array_equal(theirs.keys, ours.keys):
    return None
  held_out = np.concatenate([np.reshape(split.valid, (-1, 2)), np.reshape(split.test, (-1, 2))])
  held = PairSet(held_out[:, 0], held_out[:, 1], n_items)
  leaked = int(held.contains(source.train[:, 0], source.train[:, 1]).sum())
  unseen = int((~theirs.contains(split.train[:, 0], split.train[:, 1])).sum())
  return (f"trained on another split ({leaked} of its {len(theirs.keys)} training pairs are this "
          f"run's validation or test pairs, {unseen} of this run's it never trained on): start "
          "from a run with the same data split fields")


def load(start: StartOptions, seed: int, graph: Graph, dim: int, split: Split) -> Pretrained:
  """Opens `start.pretrained` (with "{seed}" filled in) and checks that it trained on the
  training pairs of `split` and that its embeddings fit `graph` and dimension `dim`; a
  PretrainedError (one line naming the workdir) otherwise. Training calls this before it writes
  anything, so a wrong path leaves no workdir behind."""
  workdir = start.pretrained.replace("{seed}", str(seed))
  try:
    run = inference.Run.open(workdir, "best")
  except (OSError, ValueError, RuntimeError) as e:
    raise PretrainedError(f"config.start.pretrained={workdir}: {e}") from None
  users, items = run.lib.user_item_embeddings(run.params, run.graph, run.opts.model)
  if (users.shape[0], items.shape[0]) != (graph.n_users, graph.n_items) or users.shape[1] != dim:
    raise PretrainedError(f"config.start.pretrained={workdir}: embeddings {users.shape}/"
                          f"{items.shape} do not fit {graph.n_users} users, {graph.n_items} "
                          f"items, dimension {dim}")
  why = split_difference(run.exp.split, split, graph.n_items)
  if why:
    raise PretrainedError(f"config.start.pretrained={workdir}: {why}")
  return Pretrained(workdir, np.asarray(users), np.asarray(items))


def with_pretrained(params: dict, start: StartOptions, source: Pretrained, graph: Graph) -> dict:
  """KGAT's initialisation from a trained BPR-MF: user and item rows of the node table.

  `source` (from `load`) is a finished run on the same dataset and split of any model with user
  and item embeddings (BPR-MF, or LightGCN, whose propagated output rows are used); its best
  checkpoint is used.
  With `start.spread` > 0 the other nodes (KG entities, aux nodes, and items without a training
  pair, which MF never trained) start as the mean of their pretrained neighbours, spread that
  many hops (`spread_embeddings`), instead of at random. The pretrained rows are multiplied by
  `start.scale`: MF's ranking does not change, but the L2-normalised layer outputs, whose share
  of the score is fixed in size, weigh 1 / scale^2 as much against it at the start of the
  fine-tune.
  """
  scale, node = start.scale, params["node"]
  node = (node.at[:graph.n_items].set(scale * jnp.asarray(source.items, node.dtype))
          .at[graph.user_start:graph.aux_start].set(scale * jnp.asarray(source.users, node.dtype)))
  if start.spread:   # pretrained rows: users, and items with a training pair
    known = graph.pretrained_rows()
    node = jnp.asarray(spread_embeddings(np.asarray(node), known, graph, start.spread),
                       node.dtype)
  return dict(params, node=node)
