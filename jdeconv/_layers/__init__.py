"""The transposed-convolution layers: linen, NNX, and what they share.

- ``_config``: the layer arguments, declared once, documented and checked;
- ``_compute``: the output, given the variables (one geometry, then the op);
- ``_penalties``: the regularization penalties, as Keras computes them;
- ``_activations``: Keras' activation names;
- ``_flax_internals``: every access to Flax's private state;
- ``linen``, ``nnx_layers``: the front ends, which store variables and
  penalties their own way (the functional layers are :mod:`jdeconv.layers`);
- ``training``: the regularization loss and the constraint projection.
"""
