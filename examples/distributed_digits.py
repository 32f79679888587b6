"""Train the digits MLP data-parallel on a Dask cluster of worker processes.

    pip install ".[examples,distributed]" && python examples/distributed_digits.py --workers 2

The objective is the mean over the training set of the per-example softmax
cross-entropy: a sum over examples, so a sum over shards of per-shard sums, and
its gradient is the sum of the per-shard gradients. The training data is split
into shards that are scattered to the workers once (they stay there). Each step
the client sends the parameters (plain ndarrays) to the workers; every worker
computes its shard's loss sum and gradients with tapegrad; the client adds them
up, divides by the number of examples and takes a gradient-descent step.

The cluster is dask.distributed's LocalCluster of worker processes (a real
scheduler and real workers): pointed at a remote scheduler instead, through
``Client("tcp://host:8786")``, the same code trains on a cluster. The model and
data are examples/mlp_digits.py's: 64 inputs, two tanh layers of 128, 10 classes.
"""

from __future__ import annotations

import argparse
import time
from typing import TYPE_CHECKING

import numpy as np
from mlp_digits import accuracy, forward, init_params, load_digits

import tapegrad as tg

if TYPE_CHECKING:
    from distributed import Client, LocalCluster

Shard = tuple[np.ndarray, np.ndarray]  # (inputs, integer labels)


def shard_loss(params: list[tg.Tensor], x: np.ndarray, labels: np.ndarray) -> tg.Tensor:
    """The sum (not the mean) of the per-example cross-entropies over one shard."""
    log_p = tg.log_softmax(forward(params, x), axis=1)
    return -log_p[np.arange(len(labels)), labels].sum()


def shard_loss_and_grads(params: list[np.ndarray], shard: Shard
                         ) -> tuple[float, list[np.ndarray]]:
    """What a worker computes: its shard's loss sum and its gradient, as plain values.

    Example:
        >>> x, labels = np.ones((3, 64)), np.array([0, 1, 2])
        >>> params = [p.data for p in init_params([64, 8, 10], np.random.default_rng(0))]
        >>> loss, grads = shard_loss_and_grads(params, (x, labels))
        >>> [g.shape for g in grads] == [p.shape for p in params]
        True
    """
    x, labels = shard
    return tg.value_and_grad(shard_loss)(params, x, labels)


def split_into_shards(x: np.ndarray, labels: np.ndarray, count: int) -> list[Shard]:
    """``count`` contiguous shards of nearly equal size.

    Example:
        >>> [len(y) for _, y in split_into_shards(np.zeros((5, 2)), np.arange(5), 2)]
        [3, 2]
    """
    if not 1 <= count <= len(labels):
        raise ValueError(f"split_into_shards: count must be in 1..{len(labels)} (the number "
                         f"of examples), got {count}")
    return list(zip(np.array_split(x, count), np.array_split(labels, count)))


def add_up(results: list[tuple[float, list[np.ndarray]]]) -> tuple[float, list[np.ndarray]]:
    """The loss and gradients of the whole sum from the shards' (in the order given).

    Example:
        >>> add_up([(1.0, [np.ones(2)]), (2.0, [np.ones(2)])])
        (3.0, [array([2., 2.])])
    """
    loss = sum(value for value, _ in results)
    grads = [np.sum(parts, axis=0) for parts in zip(*(g for _, g in results))]
    return loss, grads


def descend(params: list[np.ndarray], grads: list[np.ndarray], lr: float
            ) -> list[np.ndarray]:
    """One gradient-descent step: new arrays, the old ones unchanged."""
    return [p - lr * g for p, g in zip(params, grads)]


def train_distributed(client: Client, shards: list[Shard], params: list[np.ndarray],
                      steps: int, lr: float) -> tuple[list[np.ndarray], list[float]]:
    """Full-batch gradient descent on the mean loss, one task per shard per step.

    Returns the parameters after ``steps`` steps and the mean loss before each.
    The shards are scattered once (each stays on the worker it landed on, and
    its tasks run there); the parameters are broadcast each step.

    Example: ``with local_cluster(2) as cluster, Client(cluster) as client:
    params, losses = train_distributed(client, shards, params, 100, 0.5)``.
    """
    count = sum(len(labels) for _, labels in shards)
    on_workers = client.scatter(shards)
    losses = []
    for _ in range(steps):
        sent = client.scatter(params, broadcast=True)
        tasks = [client.submit(shard_loss_and_grads, sent, shard) for shard in on_workers]
        loss, grads = add_up(client.gather(tasks))
        losses.append(loss / count)
        params = descend(params, [g / count for g in grads], lr)
    return params, losses


def train_single(shards: list[Shard], params: list[np.ndarray], steps: int, lr: float
                 ) -> tuple[list[np.ndarray], list[float]]:
    """The same training in this process, with one tape over all the data at once.

    Example:
        >>> x, labels = np.ones((4, 64)), np.array([0, 1, 2, 3])
        >>> params = [p.data for p in init_params([64, 8, 10], np.random.default_rng(0))]
        >>> _, losses = train_single(split_into_shards(x, labels, 2), params, 3, 0.5)
        >>> losses[0] > losses[-1]
        True
    """
    x = np.concatenate([x for x, _ in shards])
    labels = np.concatenate([labels for _, labels in shards])
    losses = []
    for _ in range(steps):
        loss, grads = shard_loss_and_grads(params, (x, labels))
        losses.append(loss / len(labels))
        params = descend(params, [g / len(labels) for g in grads], lr)
    return params, losses


def local_cluster(workers: int) -> LocalCluster:
    """A LocalCluster of ``workers`` processes with one thread each, no dashboard.

    Use it as a context manager, so that the workers stop with it.

    Example: ``with local_cluster(2) as cluster, Client(cluster) as client: ...``.
    """
    from distributed import LocalCluster

    return LocalCluster(n_workers=workers, processes=True, threads_per_worker=1,
                        dashboard_address=None)


def main() -> None:
    from distributed import Client

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, default=2, help="worker processes")
    parser.add_argument("--shards", type=int, default=None,
                        help="data shards (default: one per worker)")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--lr", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    x_train, x_test, y_train, y_test = load_digits(args.seed)
    shards = split_into_shards(x_train, y_train, args.shards or args.workers)
    params = [p.data for p in init_params([64, 128, 128, 10], np.random.default_rng(args.seed))]
    start = time.perf_counter()
    with local_cluster(args.workers) as cluster, Client(cluster) as client:
        print(f"{args.workers} workers, {len(shards)} shards of about {len(shards[0][1])} "
              f"examples; cluster up in {time.perf_counter() - start:.1f} s")
        start = time.perf_counter()
        params, losses = train_distributed(client, shards, params, args.steps, args.lr)
    for step in range(0, args.steps, max(1, args.steps // 10)):
        print(f"step {step:4d}  mean loss {losses[step]:.4f}")
    test = accuracy([tg.Tensor(p) for p in params], x_test, y_test)
    print(f"{args.steps} steps in {time.perf_counter() - start:.1f} s; "
          f"final test accuracy: {test:.3f}")


if __name__ == "__main__":
    main()
