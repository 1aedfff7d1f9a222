"""Deep copies of Keras models with chosen layers wrapped: what every step and equalization works on."""

from __future__ import annotations

from vggedge.backend.keras_env import keras


def clone_with(model: keras.Model, wrap, names: set[str]) -> keras.Model:  # noqa: ANN001
    """A deep copy of ``model`` (weights copied, nothing shared) with ``wrap`` applied to the named layers.

    Fine-tuning steps train the copy, so the model they started from (the baseline, the teacher)
    is left untouched.
    """

    def clone(layer: keras.layers.Layer) -> keras.layers.Layer:
        fresh = layer.__class__.from_config(layer.get_config())
        return wrap(fresh) if layer.name in names else fresh

    copy = keras.models.clone_model(model, clone_function=clone)
    for layer in copy.layers:
        inner = getattr(layer, "layer", layer)
        weights = model.get_layer(inner.name).get_weights()
        if weights:
            inner.set_weights(weights)
    return copy
