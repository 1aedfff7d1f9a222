"""TensorFlow, on the workstation: the Keras-2 boundary, where fine-tuning runs, and the training loop.

:mod:`~vggedge.backend.keras_env` is the one module that chooses Keras 2 (``tf_keras``) for tfmot; every other
module gets ``tf``, ``keras`` and ``tfmot`` from it. :mod:`~vggedge.backend.distribute` places fine-tuning (one
device, local GPUs, a cluster); :mod:`~vggedge.backend.training` streams images and fits.
"""
