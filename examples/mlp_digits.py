"""Train a small MLP on scikit-learn's digits with tapegrad.

    pip install ".[examples]" && python examples/mlp_digits.py

64 inputs (8x8 pixels), two tanh layers of 128, 10 classes, softmax
cross-entropy, plain SGD with momentum. The digits ship with scikit-learn, so
nothing is downloaded. Reaches about 97% test accuracy in a few seconds.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import tapegrad as tg


def load_digits(seed: int) -> tuple[np.ndarray, ...]:
    from sklearn.datasets import load_digits as sklearn_digits
    from sklearn.model_selection import train_test_split

    digits = sklearn_digits()
    x = (digits.data / 16.0).astype(np.float64)
    return train_test_split(x, digits.target, test_size=0.25, random_state=seed,
                            stratify=digits.target)


def init_params(sizes: list[int], rng: np.random.Generator) -> list[tg.Tensor]:
    params = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        bound = np.sqrt(6.0 / (fan_in + fan_out))  # Glorot uniform
        params.append(tg.Tensor(rng.uniform(-bound, bound, size=(fan_in, fan_out)), "W"))
        params.append(tg.Tensor(np.zeros(fan_out), "b"))
    return params


def forward(params: list[tg.Tensor], x: np.ndarray) -> tg.Tensor:
    h = x
    for i in range(0, len(params) - 2, 2):
        h = tg.tanh(h @ params[i] + params[i + 1])
    return h @ params[-2] + params[-1]


def cross_entropy(logits: tg.Tensor, labels: np.ndarray) -> tg.Tensor:
    """Mean softmax cross-entropy of integer labels."""
    log_p = tg.log_softmax(logits, axis=1)
    return -log_p[np.arange(len(labels)), labels].mean()


def accuracy(params: list[tg.Tensor], x: np.ndarray, labels: np.ndarray) -> float:
    logits = forward(params, x)
    tg.clear_history()
    return float(np.mean(np.argmax(logits.data, axis=1) == labels))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    x_train, x_test, y_train, y_test = load_digits(args.seed)
    params = init_params([64, 128, 128, 10], rng)
    velocity = [np.zeros_like(p.data) for p in params]
    start = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        order = rng.permutation(len(x_train))
        losses = []
        for lo in range(0, len(order), args.batch):
            batch = order[lo:lo + args.batch]
            loss = cross_entropy(forward(params, x_train[batch]), y_train[batch])
            grads = tg.compute_gradients(loss, params)
            losses.append(loss.item())
            tg.clear_history()  # the step is done: drop its records
            for p, v, g in zip(params, velocity, grads):
                v *= 0.9
                v -= args.lr * g
                p.data = p.data + v  # a new value: records made earlier keep theirs
        test = accuracy(params, x_test, y_test)
        print(f"epoch {epoch:2d}  loss {np.mean(losses):.4f}  test accuracy {test:.3f}  "
              f"({time.perf_counter() - start:.1f} s)")
    print(f"final test accuracy: {test:.3f}")


if __name__ == "__main__":
    main()
