"""jdeconv: TensorFlow's transposed convolution for JAX, exact and fast."""

from jdeconv import constraints as constraints
from jdeconv import initializers as initializers
from jdeconv import layers as layers
from jdeconv import nnx as nnx
from jdeconv import regularizers as regularizers
from jdeconv._layers.linen import Conv1DTranspose as Conv1DTranspose
from jdeconv._layers.linen import Conv2DTranspose as Conv2DTranspose
from jdeconv._layers.linen import Conv3DTranspose as Conv3DTranspose
from jdeconv._layers.training import apply_constraints as apply_constraints
from jdeconv._layers.training import regularization_loss as regularization_loss
from jdeconv._lowerings import METHODS as METHODS
from jdeconv._op import conv1d_transpose as conv1d_transpose
from jdeconv._op import conv2d_transpose as conv2d_transpose
from jdeconv._op import conv3d_transpose as conv3d_transpose
from jdeconv._op import conv_transpose as conv_transpose

__version__ = "0.1.0"
