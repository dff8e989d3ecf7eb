"""Majority Kernels versions of KerasHub's embedding layers.

KerasHub is optional and importing it costs seconds (it imports
TensorFlow): this module is imported by the conversion class map only once
`keras_hub` is imported (`class_map.class_map`), and by users who build
these layers directly.
"""

import keras
import keras_hub

from keras_mk.layers.config import arguments_doc
from keras_mk.layers.mk_embedding import MKReversibleTable
from keras_mk.layers.mk_embedding import reversible_doc
from keras_mk.layers.mk_layer import MKLayer


@keras.saving.register_keras_serializable(package="keras_mk")
class MKHubReversibleEmbedding(
    MKReversibleTable, keras_hub.layers.ReversibleEmbedding
):
    __doc__ = reversible_doc(
        "keras_hub.layers.ReversibleEmbedding",
        "keras_mk.layers.mk_hub_embedding.MKHubReversibleEmbedding",
    )


@keras.saving.register_keras_serializable(package="keras_mk")
class MKPositionEmbedding(MKLayer, keras_hub.layers.PositionEmbedding):
    __doc__ = f"""A KerasHub `PositionEmbedding` layer with Majority Kernels.

    Stores `expansion` copies of the position table and mixes the whole
    table (at most `sequence_length` x dim: no larger than the rows a call
    uses once per batch item) with per-element probabilities in training,
    their mean in inference. Accepts every argument of
    `keras_hub.layers.PositionEmbedding`.

    Args:
        sequence_length: int, the largest sequence length.
{arguments_doc()}
        **kwargs: any other argument of `keras_hub.layers.PositionEmbedding`.

    Input shape:
        `(batch_size, sequence_length, hidden_dim)`: only its shape is read.

    Output shape:
        The input shape.

    Example:

    >>> from keras_mk.layers.mk_hub_embedding import MKPositionEmbedding
    >>> layer = MKPositionEmbedding(8, expansion=3, seed=0)
    >>> tuple(layer(np.zeros((2, 5, 4)), training=True).shape)
    (2, 5, 4)
    """

    mk_weights = (
        ("position_embeddings", "initializer", "embeddings_regularizer"),
    )

    def call(
        self,
        inputs,
        start_index=0,
        positions=None,
        training=None,
        fixed_probabilities=None,
    ):
        # `positions` exists from KerasHub 0.22: passed only when given.
        extra = {} if positions is None else {"positions": positions}
        with self.mixed_weights(training, fixed_probabilities):
            return super(MKLayer, self).call(
                inputs, start_index=start_index, **extra
            )
