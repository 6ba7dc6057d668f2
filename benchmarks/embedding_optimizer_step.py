"""Why a two-tower epoch slows down with the track vocabulary: one Adam step on an embedding table.

    python benchmarks/embedding_optimizer_step.py --rows 85000 443000

The gradient of a gathered embedding is sparse (the rows a batch touched), but Keras' Adam decays its two moment
estimates over the whole table at every step, so the step costs in proportion to the table's rows. Times one
``apply_gradients`` on a ``[rows, 64]`` table with 15,360 gathered rows (30 ids for each of 512 examples), the
median of 50 steps after one warm-up.
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
    args = ap.parse_args()
    import numpy as np
    import tensorflow as tf

    tf.keras.utils.set_random_seed(0)
    for n in args.rows:
        table = tf.Variable(tf.random.normal((n, args.dim)))
        opt = tf.keras.optimizers.Adam(1e-3)
        ids = tf.random.uniform((512 * 30,), 0, n, dtype=tf.int32)

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
        print(f"{n:>9,} rows x {args.dim}: {1000 * float(np.median(times)):.1f} ms per Adam step "
              f"({type(opt).__module__}.{type(opt).__name__})")


if __name__ == "__main__":
    main()
