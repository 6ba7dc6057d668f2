"""Why a two-tower epoch slows down with the track vocabulary: one Adam step on an embedding table.

    python -m benchmarks.embedding_optimizer_step --rows 85000 443000 2262000 --optimizer adam lazy_adam

The gradient of a gathered embedding is sparse (the rows a batch touched), but Keras' Adam decays its two moment
estimates over the whole table at every step, so the step costs in proportion to the table's rows; the two-tower's
``optimizer="lazy_adam"`` (modules/two_tower/lazy_adam.py) updates only the touched rows. Times one
``apply_gradients`` on a ``[rows, 64]`` table with 15,360 gathered rows (30 ids for each of 512 examples), the
median of 50 steps after one warm-up, for each optimizer on the same table and ids.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, nargs="+", default=[85000, 443000])
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--optimizer", nargs="+", default=["adam"], choices=["adam", "lazy_adam"])
    args = ap.parse_args()
    import numpy as np
    import tensorflow as tf

    from modules.two_tower import TwoTowerConfig, make_optimizer

    tf.keras.utils.set_random_seed(0)
    for n, name in ((n, name) for n in args.rows for name in args.optimizer):
        table = tf.Variable(tf.random.normal((n, args.dim), seed=n))
        opt = make_optimizer(TwoTowerConfig(optimizer=name, learning_rate=1e-3))
        ids = tf.random.uniform((512 * 30,), 0, n, dtype=tf.int32, seed=n)

        @tf.function
        def step(table=table, opt=opt, ids=ids):
            with tf.GradientTape() as tape:
                loss = tf.reduce_sum(tf.gather(table, ids) ** 2)
            opt.apply_gradients(zip(tape.gradient(loss, [table]), [table]))

        step()
        times = []
        for _ in range(50):
            t0 = time.perf_counter()
            step()
            times.append(time.perf_counter() - t0)
        print(f"{n:>9,} rows x {args.dim}: {1000 * float(np.median(times)):.1f} ms per step ({name})")


if __name__ == "__main__":
    main()
