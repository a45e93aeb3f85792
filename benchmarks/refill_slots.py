"""Frozen against dropped slots: what a population pays for members that ended early.

A digits population of G = 25 members (float32, CPU) where 20 are decided after their first epoch
trains on with the 5 others, either keeping the 20 slots frozen (LR 0: a population without a queue,
``BatchedTrials(configs)``) or dropping them (a refilling population whose queue is empty shrinks to
``padded_size(5)`` slots, ``BatchedTrials(configs, slots=25)``). Epoch times after the decisions,
medians over --epochs epochs and --repeats rounds, interleaved:

    python -m benchmarks.refill_slots --epochs 3 --repeats 2

The last line is ``dropped vs frozen epoch time: X.XX`` (frozen time / dropped time: > 1 favours
dropping). docs/PACKING.md, "Refilled slots", records the figure and the choice it made.
"""
from __future__ import annotations

import argparse
import time

from benchmarks.common import machine, median, set_threads


def epoch_times(data, configs, slots, epochs: int) -> list[float]:
    from dgl_ray.batched import BatchedTrials
    ended = {c["seed"] for c in configs[5:]}
    b = BatchedTrials(configs, data=data, slots=slots,
                      decider=lambda t: ("H", 1.0) if t.cfg.seed in ended and t.epoch == 1 else None)
    b.run(max_epochs=1)
    out = []
    for _ in range(epochs):
        t0 = time.perf_counter()
        b.run(max_epochs=1)
        out.append(time.perf_counter() - t0)
    assert len(b.active) == 5 and b.pop.G == (26 if slots is None else 6), (b.active, b.pop.G)
    return out


def main(argv=None) -> float:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--epochs", type=int, default=3, help="timed epochs after the decisions")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args(argv)
    set_threads(a.threads)
    from dgl_ray.data import load_digits_data
    data = load_digits_data()
    configs = [{"dataset": "digits", "lambda": 0.3 + 0.01 * i, "seed": i, "epochs": 2 + a.epochs, "device": "cpu"}
               for i in range(25)]
    frozen, dropped = [], []
    for _ in range(a.repeats):
        frozen += epoch_times(data, configs, None, a.epochs)
        dropped += epoch_times(data, configs, 25, a.epochs)
    print(machine())
    print(f"G=25, 5 running after 20 decisions: frozen slots {median(frozen):.3f} s/epoch (26 slots), "
          f"dropped slots {median(dropped):.3f} s/epoch (6 slots)")
    ratio = median(frozen) / median(dropped)
    print(f"dropped vs frozen epoch time: {ratio:.2f}")
    return ratio


if __name__ == "__main__":
    main()
