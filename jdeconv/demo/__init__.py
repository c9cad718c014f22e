"""The demo: a convolutional autoencoder with a :class:`jdeconv.Conv2DTranspose` decoder.

Run it with ``python -m jdeconv.demo`` (``--help`` lists the options); it needs
the ``demo`` extra: ``pip install "jdeconv[demo]"``. It trains on images drawn
procedurally by :func:`make_dataset` (nothing to download), shows a progress
bar, reports the loss and writes a PNG of held-out images, their
reconstructions and the loss curve.

Its parts are meant for reuse, for instance in a data-parallel script:

- :func:`make_dataset`: the images, as a NumPy array;
- :class:`Autoencoder`: the model, a ``flax.linen`` module;
- :func:`init_params`, :func:`make_loss_fn`, :func:`make_optimizer` and
  :func:`make_train_step`: a pure, jit-compiled optax training step;
- :func:`train`: the loop with its progress bar; :func:`run`: the whole demo.

Example:
  >>> import jax.numpy as jnp
  >>> from jdeconv.demo import Autoencoder, init_params, make_dataset, make_optimizer
  >>> from jdeconv.demo import make_train_step
  >>> images = jnp.asarray(make_dataset(8, image_size=16))
  >>> model = Autoencoder(image_size=16, features=(8, 16), latent_dim=8)
  >>> params = init_params(model, images)
  >>> optimizer = make_optimizer(1e-3, steps=10)
  >>> step = make_train_step(model, optimizer)
  >>> params, opt_state, loss = step(params, optimizer.init(params), images)
  >>> loss.shape
  ()
"""

from jdeconv.demo._cli import DEFAULT_STEPS as DEFAULT_STEPS
from jdeconv.demo._cli import DemoResult as DemoResult
from jdeconv.demo._cli import build_parser as build_parser
from jdeconv.demo._cli import main as main
from jdeconv.demo._cli import run as run
from jdeconv.demo._data import SHAPES as SHAPES
from jdeconv.demo._data import make_dataset as make_dataset
from jdeconv.demo._model import Autoencoder as Autoencoder
from jdeconv.demo._plot import save_figure as save_figure
from jdeconv.demo._train import TrainResult as TrainResult
from jdeconv.demo._train import init_params as init_params
from jdeconv.demo._train import make_loss_fn as make_loss_fn
from jdeconv.demo._train import make_optimizer as make_optimizer
from jdeconv.demo._train import make_train_step as make_train_step
from jdeconv.demo._train import train as train

__all__ = [
    "DEFAULT_STEPS",
    "SHAPES",
    "Autoencoder",
    "DemoResult",
    "TrainResult",
    "build_parser",
    "init_params",
    "main",
    "make_dataset",
    "make_loss_fn",
    "make_optimizer",
    "make_train_step",
    "run",
    "save_figure",
    "train",
]
