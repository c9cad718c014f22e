"""Weights from PyTorch, Keras and TensorFlow files into Flax variables.

Each ``load_*`` function reads a source's weights, converts each one to the
layout and dtype of the Flax variable that receives it, checks its shape, and
returns the ``target`` variables with the weights filled in:

* :func:`load_torch_state_dict`: a PyTorch ``state_dict``, as a ``.safetensors``
  file, a ``.pt`` / ``.pth`` / ``.bin`` file (read with
  ``torch.load(..., weights_only=True)``), or a mapping of arrays;
* :func:`load_keras_weights`: a Keras 3 ``.weights.h5`` or ``.keras`` file, or a
  Keras 2 (``tf_keras``) ``.h5`` file, read with ``h5py`` (TensorFlow is not
  needed);
* :func:`load_tf_checkpoint`: a TensorFlow checkpoint, as
  ``tf.train.Checkpoint``, ``tf.train.CheckpointManager``, Keras
  ``save_weights`` or ``tf.compat.v1.train.Saver`` write it (needs TensorFlow).

The ``read_*`` functions return the source's arrays by name, to inspect them.

**Source layers and target modules.** A source layer is a group of variables
that share a name prefix: ``decoder.up1`` for ``decoder.up1.weight`` in
PyTorch, ``up1`` or ``inner/up1`` (the layer names) in Keras, the variable
scope or object path in a TensorFlow checkpoint. A target module is a path in
the Flax variables, written with ``/``: ``up1`` or
``Decoder_0/Conv2DTranspose_0``. ``mapping`` maps source layers to target
modules (or to ``None``, to skip one). Whatever it leaves out is matched by
name, then by order (the order of ``target``'s entries: create ``target`` with
``model.init(...)`` or :func:`abstract_variables`, which keep the modules'
order of creation, not with ``jax.eval_shape``, which sorts them), where that
is unambiguous: PyTorch and Keras 2 files keep the layers' order; Keras 3
``.weights.h5`` files and TensorFlow checkpoints keep it within each class of
layer (by their numbered names), and shapes and kinds then decide between
classes.

**Kinds.** Matching by order pairs a source layer only with a target module of
a compatible kind: ``conv``, ``conv_transpose``, ``dense``, ``embedding`` or
``norm``. A source layer's kind comes from its class where the source records
it (a Keras 3 group path such as ``layers/conv2d_transpose_3``, the model
config of a ``.keras`` or Keras 2 ``.h5`` file, the submodules of a
``torch.nn.Module`` passed as the source), or from a default name
(``conv2d_transpose_1`` of Keras and ``tf.compat.v1``), narrowed by its
variables: a kernel of rank 2 is a dense layer's, one of rank 3 or more a
convolution's of either kind, moving statistics a norm's. A target module's
kind comes from its variables and, for a module that Flax named after its
class (``Conv_0``, ``ConvTranspose_1``, ``Conv2DTranspose_0``, ``Dense_0``,
``BatchNorm_0``), from that class; a :mod:`jdeconv.torch_compat` module is a
transposed convolution. A module you name yourself has only its variables'
kind, and a layer whose kind is unknown fits any module. So a Keras
``Conv2DTranspose`` never fills an ``nn.Conv`` with the same kernel shape, and
where kinds do not settle it (two named modules), ``mapping`` does. The
``read_*`` functions list the kinds with ``return_kinds=True``.

**Layouts.** The conversion depends on the source and on the name of the
receiving parameter:

* PyTorch ``ConvTranspose*d.weight`` to a jdeconv layer's ``kernel``:
  ``(in, out/g, *k)`` to ``[*k, out/g, in]``;
* PyTorch ``Conv*d.weight`` to ``nn.Conv``'s ``kernel``: ``(out, in/g, *k)``
  to ``(*k, in/g, out)`` (the same move of axes);
* PyTorch ``Linear.weight`` to ``nn.Dense``'s ``kernel``: transposed;
* PyTorch ``weight`` to a :mod:`jdeconv.torch_compat` module's ``weight``:
  unchanged;
* PyTorch norm ``weight`` / ``bias`` to ``scale`` / ``bias``, and
  ``running_mean`` / ``running_var`` to ``batch_stats`` ``mean`` / ``var``;
* Keras ``kernel`` to a jdeconv layer's or Flax's ``kernel``: unchanged (to
  a torch_compat ``weight``: into PyTorch's layout);
* Keras ``gamma`` / ``beta`` to ``scale`` / ``bias``, and ``moving_mean`` /
  ``moving_variance`` to ``batch_stats`` ``mean`` / ``var``.

A ``flax.linen.ConvTranspose`` kernel has neither layout (see
:func:`jdeconv.convert.kernel_from_flax`): port such a layer to
:class:`jdeconv.Conv2DTranspose` and its siblings.

**What is skipped, and the report.** Entries that are not model weights are
skipped: step counters (``save_counter``, ``global_step``), optimizer state
(slots, ``.OPTIMIZER_SLOT``, a Keras ``optimizer`` group, the other entries of
a PyTorch training checkpoint), the object graph of a TensorFlow checkpoint,
and PyTorch's ``num_batches_tracked``. Each load logs what it loaded, skipped
and kept at ``INFO`` on the ``jdeconv.io`` logger, and with
``return_report=True`` also returns a :class:`LoadReport`.

**Dtypes.** Floating-point weights are cast to the target variable's dtype,
and a value that overflows it (``1e300`` into ``float32``) is an error.
Integer, bool and complex weights are an error unless ``allow_cast=True``
(then every value must survive the cast); strings and objects always are.

**strict.** With ``strict=True`` (the default) every source weight and every
target variable must be matched. With ``strict=False``, a target variable
without a source keeps its value from ``target`` (which must then hold values,
not only shapes), source weights without a place are left unused, and the
report lists both.

**All or nothing.** Every entry is read, matched, shaped and cast before the
result is built, and ``target`` is never modified: a failed load changes
nothing. Every failure with a file is a ``ValueError`` (or
``FileNotFoundError``, ``IsADirectoryError``, ``PermissionError`` for the
path) that names the function, the path, the entry where there is one, and
what was wrong, chained to the library's own exception.

**Safety.** No file runs code or reads another file. PyTorch files go through
``torch.load(..., weights_only=True)``, which refuses pickled code; Keras
files are read as HDF5 and never deserialised as models, and HDF5 external
links, external storage, virtual datasets and filter plugins are refused
before any data is read; a checkpoint directory's ``checkpoint`` file may name
only a checkpoint inside that directory. Checksums are used where the format
has them (TensorFlow's CRC-32C, zip's CRC-32, HDF5's own); ``.pt``,
``.safetensors`` and Keras' HDF5 datasets carry none over the weights, so
damage there may go undetected. The porting guide states the threat model.

Example, a PyTorch decoder's state dict into a Flax model:

  >>> import jax.numpy as jnp, numpy as np
  >>> import flax.linen as nn
  >>> import jdeconv, jdeconv.io
  >>> class Decoder(nn.Module):
  ...     @nn.compact
  ...     def __call__(self, x):
  ...         x = jdeconv.Conv2DTranspose(4, 3, strides=2, padding="same")(x)
  ...         return nn.Dense(2)(x)
  >>> target = jdeconv.io.abstract_variables(Decoder(), jnp.ones((1, 5, 5, 8)))
  >>> state_dict = {  # as PyTorch stores it
  ...     "up.weight": np.ones((8, 4, 3, 3), np.float32),
  ...     "up.bias": np.zeros(4, np.float32),
  ...     "head.weight": np.ones((2, 4), np.float32),
  ...     "head.bias": np.zeros(2, np.float32)}
  >>> variables = jdeconv.io.load_torch_state_dict(state_dict, target)
  >>> variables["params"]["Conv2DTranspose_0"]["kernel"].shape
  (3, 3, 4, 8)
"""

from jdeconv.io._api import load_keras_weights as load_keras_weights
from jdeconv.io._api import load_tf_checkpoint as load_tf_checkpoint
from jdeconv.io._api import load_torch_state_dict as load_torch_state_dict
from jdeconv.io._api import read_keras_weights as read_keras_weights
from jdeconv.io._api import read_tf_checkpoint as read_tf_checkpoint
from jdeconv.io._api import read_torch_state_dict as read_torch_state_dict
from jdeconv.io._match import LoadReport as LoadReport
from jdeconv.io._targets import abstract_variables as abstract_variables

__all__ = [
    "LoadReport",
    "abstract_variables",
    "load_keras_weights",
    "load_tf_checkpoint",
    "load_torch_state_dict",
    "read_keras_weights",
    "read_tf_checkpoint",
    "read_torch_state_dict",
]
