"""jdeconv: TensorFlow's transposed convolution for JAX, exact and fast."""

from jdeconv._lowerings import METHODS as METHODS
from jdeconv._op import conv1d_transpose as conv1d_transpose
from jdeconv._op import conv2d_transpose as conv2d_transpose
from jdeconv._op import conv3d_transpose as conv3d_transpose
from jdeconv._op import conv_transpose as conv_transpose

__version__ = "0.1.0"
