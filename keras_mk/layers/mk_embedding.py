"""Majority Kernels embedding tables: a lookup mixes only its rows.

Mixing a whole table every training step costs vocabulary x dim x e. A
lookup needs only the rows its ids gather: `MKEmbeddingTable` gathers those
rows from every copy and mixes them with the `p` of exactly those elements,
hashed from the seed state and the element index (`sampling.rows`), so the
work is tokens x dim x e and the values equal those of the whole table's
hashed draw taken at the rows. Inference gathers the rows of every copy and
takes their mean (the collapsed table's rows, exactly).

A reversible embedding (`keras.layers.ReversibleEmbedding`, KerasHub's) is
also the tied output projection. Its lookup and the reverse call of one
step use one draw: the seed state's second word is even for a draw, a
lookup leaves it odd and the reverse call that follows reads the same
state (then moves to the next even one), so the projection is the table
whose rows the lookup mixed. A reverse call with no lookup before it
draws a fresh state of its own.
"""

import contextlib

import keras
import numpy as np
from keras import ops

from keras_mk import _keras_private
from keras_mk import sampling
from keras_mk.layers import fixed_probabilities as fixed
from keras_mk.layers.config import arguments_doc
from keras_mk.layers.mk_layer import MKLayer
from keras_mk.sampling import rows as sampled_rows

TABLE = "embeddings"


def _word(value, dtype):
    return ops.convert_to_tensor(np.array(value), dtype=dtype)


class MKEmbeddingTable(MKLayer):
    """Mixin for layers whose simulated weight is an embedding table."""

    mk_weights = ((TABLE, "embeddings_initializer", "embeddings_regularizer"),)

    def __init__(self, *args, weights=None, **kwargs):
        # Keras's `weights=` builds the table inside `Embedding.__init__`,
        # before the MK arguments are set: set it here, on every copy.
        super().__init__(*args, **kwargs)
        if weights is not None:
            if isinstance(weights, list) and len(weights) == 1:
                weights = weights[0]
            self.build()
            for copy in self.weight_copies[TABLE]:
                copy.assign(weights)

    def build(self, input_shape=None):
        # A table's shape does not depend on the input: Keras builds
        # `Embedding` with no shape.
        super().build(input_shape)

    def _lookup_state(self):
        """The seed state of a lookup's draw (advances the generator)."""
        return self.seed_generator.next()

    def _mixes_rows(self):
        """Whether a lookup gathers-then-mixes (else it mixes the table).

        Not inside an outer `mixed_weights` or `probabilities_scope` (they
        fix the whole table), nor for another concentration (Gamma draws
        are not hashed) or with a regularizer (it applies to the table
        used).
        """
        return (
            self._active is None
            and self._forced is None
            and not self.lora_enabled
            and self.concentration == 1.0
            and getattr(self, "embeddings_regularizer", None) is None
        )

    def _lookup(self, inputs, training, fixed_probabilities):
        """The rows of the simulated table at `inputs` (gather-then-mix)."""
        ids = inputs
        if ids.dtype not in ("int32", "int64"):
            ids = ops.cast(ids, "int32")
        with _keras_private.no_autocast():
            copies = [v.value for v in self._copies[TABLE]]
        p = fixed.per_weight(self, fixed_probabilities if training else None)
        p = p.get(TABLE)
        if p is not None:
            fixed.check_shape_of(self, TABLE, p)
        stochastic = training and self._is_stochastic()
        if len(copies) > 1 and p is None and stochastic:
            value = sampled_rows.gathered_mix(
                copies,
                ops.cast(ids, "int32"),
                self._p_shape(tuple(copies[0].shape), TABLE),
                self._lookup_state(),
            )
            return ops.cast(value, self.compute_dtype)
        rows = [ops.take(c, ids, axis=0) for c in copies]
        if len(rows) == 1:
            value = rows[0]
        elif p is not None:
            p = ops.cast(p, rows[0].dtype)
            if p.shape[1] != 1:
                p = ops.take(p, ops.cast(ids, "int32"), axis=1)
            else:
                p = p[:, 0]
            value = sampling.weighted_sum(rows, p)
        elif not training:
            value = sampling.exact_mean(rows)
        else:
            value = sampling.mean(rows)
        return ops.cast(value, self.compute_dtype)

    def sample_probabilities(self, name=None):
        """Draws the `p` the next training lookup would use (see `MKLayer`).

        The table's `p` is always hashed (on every backend), as a lookup
        draws it.
        """
        name = name or TABLE
        if name != TABLE or not self._is_stochastic():
            return super().sample_probabilities(name)
        if self.concentration != 1.0:
            return super().sample_probabilities(name)
        self._require_built("sample_probabilities")
        shape = tuple(self._copies[TABLE][0].shape)
        s = sampling.sample_spacings(
            self._p_shape(shape, TABLE),
            self.expansion,
            self._lookup_state(),
            hashed=True,
        )
        p = sampling.spacings_to_probabilities(s)
        return ops.broadcast_to(p, (self.expansion,) + shape)


@keras.saving.register_keras_serializable(package="keras_mk")
class MKEmbedding(MKEmbeddingTable, keras.layers.Embedding):
    __doc__ = f"""An `Embedding` layer with Majority Kernels.

    Stores `expansion` copies of the table. A training lookup gathers the
    rows its ids use from every copy and mixes them with per-element
    probabilities `p` (the `p` of table element `(r, c)` is hashed from the
    seed state and `r * output_dim + c`: the rows of one whole-table draw),
    so a step costs tokens x dim x e, not vocabulary x dim x e. Inference
    uses the mean of the copies, so the deployed layer is an ordinary
    `Embedding` (see `keras_mk.collapse`). Accepts every argument of
    `keras.layers.Embedding`, `lora_rank` included (`docs/lora.md`).

    Args:
        input_dim: int > 0, the size of the vocabulary.
        output_dim: int > 0, the dimension of the embedding.
{arguments_doc()}
        **kwargs: any other argument of `keras.layers.Embedding`.

    Input shape:
        An integer tensor of any shape `(batch_size, ...)` of ids in
        `[0, input_dim)`.

    Output shape:
        `input_shape + (output_dim,)`.

    Example:

    >>> layer = keras_mk.layers.MKEmbedding(10, 4, expansion=3, seed=0)
    >>> y = layer(np.array([[1, 2, 3]]), training=True)
    >>> tuple(y.shape)
    (1, 3, 4)
    """

    lora_factors = ("lora_embeddings_a", "lora_embeddings_b")

    def call(self, inputs, training=None, fixed_probabilities=None):
        if not self._mixes_rows():
            return super().call(inputs, training, fixed_probabilities)
        return self._lookup(inputs, training, fixed_probabilities)

    def compute_output_spec(self, inputs, training=None, **kwargs):
        return super().compute_output_spec(inputs)


class MKReversibleTable(MKEmbeddingTable):
    """Mixin for reversible embeddings: one draw per lookup and reverse.

    Untied (`tie_weights=False`), the reverse projection's own kernel
    `reverse_embeddings` is simulated too, with its own `p`.
    """

    lora_factors = ("lora_embeddings_a", "lora_embeddings_b")
    mk_weights = (
        (TABLE, "embeddings_initializer", "embeddings_regularizer"),
        # Keras gives the reverse kernel no regularizer: none is read.
        (
            "reverse_embeddings",
            "embeddings_initializer",
            "reverse_embeddings_regularizer",
        ),
    )

    def _mk_configure(self, config):
        if self.tie_weights:  # one table, read twice
            self.__dict__["mk_weights"] = type(self).mk_weights[:1]
        super()._mk_configure(config)

    def _output_unit_axes(self, ndim, name=TABLE):
        return (ndim - 1,)

    def _paired_state(self, lookup):
        """The seed state of a lookup's or a reverse call's draw.

        Draws use even second words. A lookup takes the next even state
        and leaves the odd one after it; a reverse call takes the even
        state before an odd one (the last lookup's) or the next even one,
        and leaves the even state after it.
        """
        state = self.seed_generator.state.value
        word = state[1]
        odd = ops.mod(word, _word(2, word.dtype))
        if lookup:
            used = ops.add(word, odd)
            after = ops.add(used, _word(1, word.dtype))
        else:
            used = ops.subtract(word, odd)
            after = ops.add(used, _word(2, word.dtype))
        self.seed_generator.state.assign(ops.stack([state[0], after]))
        return ops.stack([state[0], used])

    def _lookup_state(self):
        return self._paired_state(lookup=True)

    def _reverse_state(self, name):
        state = self._paired_state(lookup=False)
        if name != TABLE:  # an odd state: no table draw uses it
            state = ops.add(state, _word([0, 1], state.dtype))
        return state

    @contextlib.contextmanager
    def _reverse_weight(self, training, fixed_probabilities):
        """The weight the reverse projection reads, for one call."""
        name = TABLE if self.tie_weights else "reverse_embeddings"
        with _keras_private.no_autocast():
            copies = [v.value for v in self._copies[name]]
        p = fixed.per_weight(self, fixed_probabilities if training else None)
        p = p.get(name)
        if p is not None:
            fixed.check_shape_of(self, name, p)
        if len(copies) == 1:
            value = copies[0]
        elif p is not None:
            value = sampling.weighted_sum(copies, ops.cast(p, copies[0].dtype))
        elif not training:
            value = sampling.exact_mean(copies)
        elif not self._is_stochastic():
            value = sampling.mean(copies)
        else:
            value = sampled_rows.table_mix(
                copies,
                self._reverse_state(name),
                self._p_shape(tuple(copies[0].shape), name),
            )
        self.__dict__["_active"] = {name: value}
        try:
            yield
        finally:
            self.__dict__["_active"] = None

    def call(
        self, inputs, reverse=False, training=None, fixed_probabilities=None
    ):
        if not self._mixes_rows():
            with self.mixed_weights(training, fixed_probabilities):
                return super(MKLayer, self).call(inputs, reverse=reverse)
        if reverse:
            with self._reverse_weight(training, fixed_probabilities):
                return super(MKLayer, self).call(inputs, reverse=True)
        outputs = self._lookup(inputs, training, fixed_probabilities)
        if self.mask_zero:
            mask = ops.not_equal(inputs, 0)
            _keras_private.set_keras_mask(outputs, mask)
        return outputs

    def compute_output_spec(self, inputs, reverse=False, **kwargs):
        return super().compute_output_spec(inputs, reverse=reverse)


_REVERSIBLE_DOC = """A `{base}` layer with Majority Kernels.

    An embedding that is also the tied output projection (`reverse=True`:
    `inputs @ embeddings.T`). A training lookup mixes only the rows it
    gathers (as `keras_mk.layers.MKEmbedding`); the reverse call that
    follows it in the same step mixes the whole table with the same draw of
    `p`, so the tied weights stay tied: the projection is the table whose
    rows the lookup used. A reverse call with no lookup before it draws a
    fresh `p`. With `tie_weights=False` the projection's own kernel is
    simulated too, with its own `p`. Inference uses the mean of the copies.
    Accepts every argument of `{base}`, `lora_rank` included.

    Args:
        input_dim: int > 0, the size of the vocabulary.
        output_dim: int > 0, the dimension of the embedding.
{mk_args}
        **kwargs: any other argument of `{base}`.

    Input shape:
        A lookup: integer ids of any shape. `reverse=True`:
        `(batch_size, ..., output_dim)`.

    Output shape:
        A lookup: `input_shape + (output_dim,)`. `reverse=True`:
        `(batch_size, ..., input_dim)`.

    Example:

    >>> layer = {constructor}(10, 4, expansion=3, seed=0)
    >>> hidden = layer(np.array([[1, 2, 3]]), training=True)
    >>> tuple(layer(hidden, reverse=True, training=True).shape)
    (1, 3, 10)
    """


def reversible_doc(base, constructor):
    """The docstring of an MK reversible embedding class."""
    return _REVERSIBLE_DOC.format(
        base=base, constructor=constructor, mk_args=arguments_doc()
    )


@keras.saving.register_keras_serializable(package="keras_mk")
class MKReversibleEmbedding(
    MKReversibleTable, keras.layers.ReversibleEmbedding
):
    __doc__ = reversible_doc(
        "keras.layers.ReversibleEmbedding",
        "keras_mk.layers.MKReversibleEmbedding",
    )
