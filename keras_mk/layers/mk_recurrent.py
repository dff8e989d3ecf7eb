"""Majority Kernels recurrent layers: one draw of `p` per sequence.

An MK cell (`MKLSTMCell`) simulates the kernel and the recurrent kernel of
its Keras cell. The MK recurrent layer (`MKLSTM`) runs it as the Keras layer
does, inside one `mixed_weights` scope of its cell: one draw of `p` per call
of the layer, shared by every time step (as Keras shares one dropout mask),
drawn before the loop, so a JAX scan only closes over the mixed tensors.
"""

import keras
from keras import ops

from keras_mk import _keras_private
from keras_mk.layers.config import MKConfig
from keras_mk.layers.config import arguments_doc
from keras_mk.layers.docstrings import layer_doc
from keras_mk.layers.mk_layer import MKLayer
from keras_mk.layers.mk_layer import refuse_quantized_policy

_CELL_DOC = """A `{base}` with Majority Kernels.

    Stores `expansion` copies of the kernel and of the recurrent kernel.
    Inside its layer's call (`keras_mk.layers.MK{layer}`) every time step
    uses the same mixed weights: one draw of `p` per call of the layer.
    Called alone, each call draws its own. `seed` seeds the draws; the
    dropout masks keep the Keras cell's own generator. Accepts every
    argument of `keras.layers.{base}`.

    Args:
        units: Positive integer, dimensionality of the output space.
{mk_args}
        **kwargs: any other argument of `keras.layers.{base}`.

    Input shape:
        As for `keras.layers.{base}`: `(batch, features)` and the states.

    Output shape:
        As for `keras.layers.{base}`.

    Example:

    >>> cell = keras_mk.layers.MK{base}(4, expansion=3, seed=0)
    >>> layer = keras.layers.RNN(cell)
    >>> y = layer(np.ones((2, 5, 3)))
    >>> sorted(cell.weight_copies)
    ['bias', 'kernel', 'recurrent_kernel']
    """

_LAYER_DOC = """A `{base}` layer with Majority Kernels.

    Runs a `keras_mk.layers.MK{cell}`: `expansion` copies of the kernel and
    of the recurrent kernel. In training every call draws one `p` per
    weight, shared by every time step of the sequence; in inference it uses
    the mean of the copies, so the deployed layer is an ordinary `{base}`
    (see `keras_mk.collapse`). Accepts every argument of
    `keras.layers.{base}`; `seed` seeds the draws of `p` and, as in Keras,
    the dropout masks (each from its own generator).

    Args:
        units: Positive integer, dimensionality of the output space.
{mk_args}
        **kwargs: any other argument of `keras.layers.{base}`.

    Input shape:
        3D tensor with shape `(batch, timesteps, features)`.

    Output shape:
        As for `keras.layers.{base}`.

    Example:

    >>> layer = keras_mk.layers.MK{base}(4, expansion=3, seed=0)
    >>> y = layer(np.ones((2, 5, 3)), training=True)
    >>> tuple(y.shape)
    (2, 4)
    """


class _MKCell(MKLayer):
    """Mixin: a Keras RNN cell whose kernels are simulated."""

    mk_weights = (
        ("kernel", "kernel_initializer", "kernel_regularizer"),
        ("recurrent_kernel", "recurrent_initializer", "recurrent_regularizer"),
    )

    def _mk_configure(self, config):
        # The Keras cell's `seed_generator` draws its dropout masks; the MK
        # layer's draws `p` (None when deterministic). Keep both. An int
        # `seed` seeds the masks too, as it does for the Keras cell.
        if "dropout_seed_generator" not in self.__dict__:
            keras_generator = self.seed_generator
            if isinstance(config.seed, int):
                _keras_private.untrack(self, [keras_generator])
                keras_generator = keras.random.SeedGenerator(config.seed)
            self.dropout_seed_generator = keras_generator
        super()._mk_configure(config)

    def _create_dropout_mask(self, step_input, dropout_rate):
        # Keras's `DropoutRNNCell._create_dropout_mask`, on the dropout
        # generator (the Keras one reads `seed_generator`, now MK's).
        ones = ops.ones_like(step_input)
        count = getattr(self, "dropout_mask_count", None)
        masks = [
            keras.random.dropout(
                ones, rate=dropout_rate, seed=self.dropout_seed_generator
            )
            for _ in range(count or 1)
        ]
        return masks if count is not None else masks[0]

    def _plain_state(self):
        weights, dropped = super()._plain_state()
        weights["seed_generator"] = self.dropout_seed_generator
        return weights, dropped

    def call(self, inputs, states, training=False):
        """One time step, with the weights of the open scope (if any)."""
        with self.mixed_weights(training):
            return super(MKLayer, self).call(inputs, states, training=training)


@keras.saving.register_keras_serializable(package="keras_mk")
class MKSimpleRNNCell(_MKCell, keras.layers.SimpleRNNCell):
    __doc__ = _CELL_DOC.format(
        base="SimpleRNNCell", layer="SimpleRNN", mk_args=arguments_doc()
    )


@keras.saving.register_keras_serializable(package="keras_mk")
class MKLSTMCell(_MKCell, keras.layers.LSTMCell):
    __doc__ = _CELL_DOC.format(
        base="LSTMCell", layer="LSTM", mk_args=arguments_doc()
    )


@keras.saving.register_keras_serializable(package="keras_mk")
class MKGRUCell(_MKCell, keras.layers.GRUCell):
    __doc__ = _CELL_DOC.format(
        base="GRUCell", layer="GRU", mk_args=arguments_doc()
    )


class MKRecurrent:
    """Mixin: a Keras recurrent layer running an MK cell, one draw per call.

    Has no weights of its own: its `cell` holds them. Conversion turns a
    plain layer and its cell together (`keras_mk.conversion.class_map`).
    """

    #: The MK class of the cell the Keras layer creates.
    mk_cell_class = None

    def __init__(self, *args, **kwargs):
        config = MKConfig.pop_from(kwargs)
        super().__init__(*args, **kwargs)
        refuse_quantized_policy(self)
        # The Keras layer created its plain cell: replace it, unbuilt.
        plain = self.cell
        cell_config = {**self._cell_config(plain), **config.to_dict()}
        _keras_private.untrack(self, [plain])
        self.cell = self.mk_cell_class.from_config(cell_config)

    def _cell_config(self, plain):
        """The config the MK cell is built from: the plain cell's."""
        return plain.get_config()

    def call(
        self,
        sequences,
        initial_state=None,
        mask=None,
        training=False,
        fixed_probabilities=None,
    ):
        """Runs the sequence with one draw of `p` for every time step.

        Args:
            sequences: a 3D tensor `(batch, timesteps, features)`.
            initial_state: as for the Keras layer.
            mask: as for the Keras layer.
            training: whether to draw fresh probabilities.
            fixed_probabilities: optional dict `{weight name: p}` (see
                `keras_mk.layers.MKLayer.call`), for every time step.
        """
        with self.cell.mixed_weights(training, fixed_probabilities):
            return super().call(
                sequences,
                initial_state=initial_state,
                mask=mask,
                training=training,
            )

    def get_config(self):
        return {**super().get_config(), **self.cell.mk_arguments()}


@keras.saving.register_keras_serializable(package="keras_mk")
class MKSimpleRNN(MKRecurrent, keras.layers.SimpleRNN):
    __doc__ = _LAYER_DOC.format(
        base="SimpleRNN", cell="SimpleRNNCell", mk_args=arguments_doc()
    )
    mk_cell_class = MKSimpleRNNCell


@keras.saving.register_keras_serializable(package="keras_mk")
class MKLSTM(MKRecurrent, keras.layers.LSTM):
    __doc__ = _LAYER_DOC.format(
        base="LSTM", cell="LSTMCell", mk_args=arguments_doc()
    )
    mk_cell_class = MKLSTMCell


@keras.saving.register_keras_serializable(package="keras_mk")
class MKGRU(MKRecurrent, keras.layers.GRU):
    __doc__ = _LAYER_DOC.format(
        base="GRU", cell="GRUCell", mk_args=arguments_doc()
    )
    mk_cell_class = MKGRUCell


_CONV_CELL_DOC = """Keras's `ConvLSTMCell` with Majority Kernels.

    Stores `expansion` copies of the convolution kernel and of the recurrent
    kernel; inside its layer's call every time step uses the same mixed
    kernels (one draw of `p` per call of the layer). Keras does not export
    its `ConvLSTMCell`: use the layers.

    Args:
        rank: 1, 2 or 3, the number of spatial dimensions.
        filters: int, the number of output filters.
        kernel_size: int or tuple, the size of the convolution window.
{mk_args}
        **kwargs: any other argument of Keras's `ConvLSTMCell`.

    Input shape:
        One time step: `(batch, *spatial, channels)`, and the states.

    Output shape:
        `(batch, *spatial, filters)`, and the states.

    Example:

    >>> cell = keras_mk.layers.MKConvLSTMCell(2, 4, 3, expansion=3, seed=0)
    >>> cell.build((2, 8, 8, 3))
    >>> sorted(cell.weight_copies)
    ['bias', 'kernel', 'recurrent_kernel']
    """


@keras.saving.register_keras_serializable(package="keras_mk")
class MKConvLSTMCell(_MKCell, _keras_private.conv_lstm_cell_class()):
    __doc__ = _CONV_CELL_DOC.format(mk_args=arguments_doc())

    def get_config(self):
        # Keras's `ConvLSTMCell` leaves out its `rank`, a required argument.
        return {**super().get_config(), "rank": self.rank}


def _conv_lstm_doc(rank, example_shape):
    return layer_doc(
        f"ConvLSTM{rank}D",
        "Runs a `keras_mk.layers.MKConvLSTMCell`: `expansion` copies of the "
        "convolution kernel and of the recurrent kernel. In training every "
        "call draws one `p` per kernel, shared by every time step; in "
        "inference it uses the mean of the copies (the deployed layer is an "
        "ordinary ConvLSTM). `seed` seeds the draws and, as in Keras, the "
        "dropout masks.",
        (
            ("filters", "int, the number of output filters."),
            (
                "kernel_size",
                "int or tuple, the size of the convolution window.",
            ),
        ),
        "4, 3",
        example_shape,
        input_note=f": `(batch, time, *{rank} spatial, channels)`",
    )


class _MKConvLSTM(MKRecurrent):
    mk_cell_class = MKConvLSTMCell

    def _cell_config(self, plain):
        return {**plain.get_config(), "rank": plain.rank}


@keras.saving.register_keras_serializable(package="keras_mk")
class MKConvLSTM1D(_MKConvLSTM, keras.layers.ConvLSTM1D):
    __doc__ = _conv_lstm_doc(1, "(2, 5, 8, 3)")


@keras.saving.register_keras_serializable(package="keras_mk")
class MKConvLSTM2D(_MKConvLSTM, keras.layers.ConvLSTM2D):
    __doc__ = _conv_lstm_doc(2, "(2, 5, 8, 8, 3)")


@keras.saving.register_keras_serializable(package="keras_mk")
class MKConvLSTM3D(_MKConvLSTM, keras.layers.ConvLSTM3D):
    __doc__ = _conv_lstm_doc(3, "(2, 3, 4, 4, 4, 2)")
