"""The transposed-convolution layers: linen, NNX, and what they share.

``_config`` resolves arguments and computes the forward pass for every API;
``linen`` and ``nnx_layers`` only store variables and losses their own way;
``training`` holds the regularization-loss and constraint helpers.
"""
