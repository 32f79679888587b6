"""examples/distributed_digits.py: data-parallel training on a Dask LocalCluster of
worker processes gives the parameters single-process training gives."""

import os
from pathlib import Path

import numpy as np
import pytest

distributed = pytest.importorskip("distributed")
pytest.importorskip("sklearn")
psutil = pytest.importorskip("psutil")  # a dependency of distributed

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.fixture
def example(monkeypatch):
    # The workers find the example's functions by module name: the spawned
    # worker processes start with this process's sys.path.
    monkeypatch.syspath_prepend(str(EXAMPLES))
    import distributed_digits

    return distributed_digits


def test_two_worker_processes_train_as_one_process_does(example):
    x, _, labels, _ = example.load_digits(0)
    shards = example.split_into_shards(x, labels, 4)
    start = [p.data for p in example.init_params([64, 32, 10], np.random.default_rng(0))]
    steps, lr = 5, 0.5

    with example.local_cluster(2) as cluster, distributed.Client(cluster) as client:
        worker_pids = set(client.run(os.getpid).values())
        with distributed.get_task_stream(client) as tasks:
            params, losses = example.train_distributed(client, shards, start, steps, lr)
        # Two worker processes (not this one) computed the shards' gradients.
        assert len(worker_pids - {os.getpid()}) == 2
        ran = [t["worker"] for t in tasks.data if "shard_loss_and_grads" in str(t["key"])]
        assert len(ran) == steps * len(shards) and len(set(ran)) == 2
    # The workers stopped with the cluster: what remains is at most
    # multiprocessing's resource tracker, which lives as long as this process.
    children = psutil.Process().children(recursive=True)
    assert worker_pids.isdisjoint(child.pid for child in children)
    assert all("resource_tracker" in " ".join(child.cmdline()) for child in children)
    single_params, single_losses = example.train_single(shards, start, steps, lr)

    # Equal up to rounding: the distributed gradient adds four shard sums where
    # the single tape sums all examples at once. Parameters are O(0.1-1), so an
    # absolute 1e-12 is about 1e4 ulps.
    for p, q in zip(params, single_params):
        np.testing.assert_allclose(p, q, rtol=0, atol=1e-12)
    np.testing.assert_allclose(losses, single_losses, rtol=1e-13, atol=0)
    # And training did something: the loss fell, the parameters moved.
    assert losses[-1] < 0.8 * losses[0]
    assert min(np.abs(p - s).max() for p, s in zip(params, start)) > 1e-4



def test_the_examples_docstrings_run(example):
    import doctest

    result = doctest.testmod(example, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted >= 4 and result.failed == 0
