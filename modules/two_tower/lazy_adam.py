"""Keras' Adam, computed lazily: a step touches only the embedding rows in its gradient.

Adam moves every row at every step: a row a batch did not touch still gets ``alpha * m / (sqrt(v) + eps)`` with
its moments decayed (``m *= beta_1``, ``v *= beta_2``), so a step costs in proportion to the table, not the batch.
Those missed updates form a geometric series in ``r = beta_1 / sqrt(beta_2)``, so they are applied in one step
when the row is next touched (and for every row by ``catch_up``, called before the weights are read), from a
per-row ``last`` step slot. The sum is Adam's up to two approximations: the bias-corrected step size of the first
missed step stands for all of them (it is constant after the first few hundred steps) and ``eps`` is not decayed
with ``sqrt(v)``; and a row's gradient is taken where the row was left, not where Adam's pending momentum would
have moved it. Dense gradients (the MLP) get Adam's own update. Measured against Keras' Adam in
docs/two_tower.md ("The optimizer and the track vocabulary").
"""

from __future__ import annotations

import tensorflow as tf  # (the package's __init__, run first, sets TF_USE_LEGACY_KERAS)


class LazyAdam(tf.keras.optimizers.Adam):
    """``tf.keras.optimizers.Adam`` with lazy sparse updates (module docstring); call ``catch_up`` before reading
    the weights. Same arguments as Adam; amsgrad and adaptive_epsilon fall back to Adam's dense update."""

    def build(self, var_list):
        super().build(var_list)
        if getattr(self, "_last", None) is not None:
            return
        self._last = [self.add_variable(shape=(int(v.shape[0]) if v.shape.rank else 1,), dtype=tf.int64,
                                        name="last") for v in var_list]

    def _step_size(self, step, dtype):
        """Adam's bias-corrected step size at (1-based) ``step``, a tensor of any shape."""
        b1, b2 = tf.cast(self.beta_1, dtype), tf.cast(self.beta_2, dtype)
        return tf.cast(self.learning_rate, dtype) * tf.sqrt(1 - tf.pow(b2, step)) / (1 - tf.pow(b1, step))

    def _missed(self, m, v, last_rows, now, dtype):
        """Adam's updates of rows whose last update was at step ``last_rows`` for the steps up to ``now``,
        and their moments decayed over those steps."""
        b1, b2 = tf.cast(self.beta_1, dtype), tf.cast(self.beta_2, dtype)
        per_row = [-1] + [1] * (m.shape.rank - 1)
        k = tf.reshape(tf.cast(now - last_rows, dtype), per_row)
        alpha = self._step_size(tf.reshape(tf.cast(last_rows + 1, dtype), per_row), dtype)
        r = b1 / tf.sqrt(b2)
        update = alpha * (r * (1 - tf.pow(r, k)) / (1 - r)) * m / (tf.sqrt(v) + self.epsilon)
        return update, m * tf.pow(b1, k), v * tf.pow(b2, k)

    @tf.autograph.experimental.do_not_convert  # plain TF ops; AutoGraph would re-read this source
    def update_step(self, gradient, variable):
        i = self._index_dict[self._var_key(variable)]
        now = tf.cast(self.iterations + 1, tf.int64)
        if not isinstance(gradient, tf.IndexedSlices) or self.amsgrad or self.adaptive_epsilon:
            self._last[i].assign(tf.fill(tf.shape(self._last[i]), now))
            return super().update_step(gradient, variable)
        dtype = variable.dtype
        b1, b2 = tf.cast(self.beta_1, dtype), tf.cast(self.beta_2, dtype)
        alpha = self._step_size(tf.cast(now, dtype), dtype)
        m, v, rows = self._momentums[i], self._velocities[i], gradient.indices
        missed, m_rows, v_rows = self._missed(tf.gather(m, rows), tf.gather(v, rows),
                                              tf.gather(self._last[i], rows), now - 1, dtype)
        m_rows = b1 * m_rows + (1 - b1) * gradient.values
        v_rows = b2 * v_rows + (1 - b2) * tf.square(gradient.values)
        m.scatter_update(tf.IndexedSlices(m_rows, rows))
        v.scatter_update(tf.IndexedSlices(v_rows, rows))
        self._last[i].scatter_update(tf.IndexedSlices(tf.fill(tf.shape(rows), now), rows))
        variable.scatter_sub(tf.IndexedSlices(missed + alpha * m_rows / (tf.sqrt(v_rows) + self.epsilon), rows))

    def catch_up(self, var_list):
        """Apply every row's missed updates up to the current step (call before reading the weights)."""
        now = tf.cast(self.iterations, tf.int64)
        for variable in var_list:
            i = self._index_dict[self._var_key(variable)]
            if not variable.shape.rank:
                continue
            m, v = self._momentums[i], self._velocities[i]
            missed, m_new, v_new = self._missed(m, v, self._last[i], now, variable.dtype)
            variable.assign_sub(missed)
            m.assign(m_new)
            v.assign(v_new)
            self._last[i].assign(tf.fill(tf.shape(self._last[i]), now))

