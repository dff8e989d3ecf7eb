"""One docstring template for the MK convolution layers."""

import textwrap

from keras_mk.layers.config import arguments_doc

_TEMPLATE = """A `{base}` layer with Majority Kernels.

{summary}

    Args:
{args}
{mk_args}
        **kwargs: any other argument of `keras.layers.{base}`.

    Input shape:
        As for `keras.layers.{base}`{input_note}.

    Output shape:
        As for `keras.layers.{base}`.

    Example:

    >>> layer = keras_mk.layers.MK{base}({example_args}, expansion=3, seed=0)
    >>> y = layer(np.ones({example_shape}), training=True){example_more}
    """


def layer_doc(
    base,
    summary,
    args,
    example_args,
    example_shape,
    input_note="",
    example_more="",
):
    """The docstring of the MK version of `keras.layers.{base}`.

    Args:
        base: the Keras class name, e.g. `"Conv2D"`.
        summary: what the layer stores and mixes, one paragraph.
        args: `(name, description)` pairs of the positional arguments.
        example_args: the positional arguments of the example call.
        example_shape: the example input's shape, as source text.
        input_note: text after "As for `keras.layers.{base}`".
        example_more: doctest lines after the call, each starting with a
            newline.
    """
    return _TEMPLATE.format(
        base=base,
        summary=textwrap.fill(
            f"{summary} Accepts every argument of `keras.layers.{base}`.",
            width=76,
            initial_indent="    ",
            subsequent_indent="    ",
        ),
        args="\n".join(f"        {name}: {text}" for name, text in args),
        mk_args=arguments_doc(),
        input_note=input_note,
        example_args=example_args,
        example_shape=example_shape,
        example_more=example_more,
    )
