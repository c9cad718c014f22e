"""The demo's training: a jit-compiled optax step and the loop around it."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple, cast

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

Params = Any
LossFn = Callable[[Params, jax.Array], jax.Array]
TrainStep = Callable[[Params, optax.OptState, jax.Array], tuple[Params, optax.OptState, jax.Array]]


def make_loss_fn(model: nn.Module) -> LossFn:
    """Returns ``loss(params, images)``: the mean squared reconstruction error.

    Args:
      model: a module mapping images to images, such as
        :class:`~jdeconv.demo.Autoencoder`.

    Returns:
      A function of the model's ``params`` and a batch of images, returning a
      scalar.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jdeconv.demo import Autoencoder, init_params, make_loss_fn
      >>> model = Autoencoder(image_size=16, features=(8, 16), latent_dim=4)
      >>> images = jnp.zeros((2, 16, 16, 3))
      >>> loss_fn = jax.jit(make_loss_fn(model))
      >>> loss_fn(init_params(model, images), images).shape
      ()
    """

    def loss_fn(params: Params, images: jax.Array) -> jax.Array:
        reconstructions = cast(jax.Array, model.apply({"params": params}, images))
        return jnp.mean((reconstructions - images) ** 2)

    return loss_fn


def make_train_step(
    model: nn.Module, optimizer: optax.GradientTransformation, *, jit: bool = True
) -> TrainStep:
    """Returns ``step(params, opt_state, images) -> (params, opt_state, loss)``.

    One step computes the loss of :func:`make_loss_fn` and its gradient, and
    applies the optimizer's update. The returned ``loss`` is the one before
    the update. The step is a pure function: under ``jax.jit`` with sharded
    ``images`` and replicated ``params`` it trains data-parallel as it stands.

    Args:
      model: the model, such as :class:`~jdeconv.demo.Autoencoder`.
      optimizer: an optax optimizer; ``opt_state`` is ``optimizer.init(params)``.
      jit: whether to return the step compiled with ``jax.jit`` (with
        ``params`` and ``opt_state`` donated) or the plain Python function.

    Returns:
      The training step.

    Example:
      >>> import jax.numpy as jnp, optax
      >>> from jdeconv.demo import Autoencoder, init_params, make_train_step
      >>> model = Autoencoder(image_size=16, features=(8, 16), latent_dim=4)
      >>> images = jnp.full((2, 16, 16, 3), 0.5)
      >>> params = init_params(model, images)
      >>> optimizer = optax.adam(1e-2)
      >>> step = make_train_step(model, optimizer)
      >>> params, opt_state, first = step(params, optimizer.init(params), images)
      >>> for _ in range(10):
      ...     params, opt_state, loss = step(params, opt_state, images)
      >>> bool(loss < first)
      True
    """
    loss_fn = make_loss_fn(model)

    def step(
        params: Params, opt_state: optax.OptState, images: jax.Array
    ) -> tuple[Params, optax.OptState, jax.Array]:
        loss, grads = jax.value_and_grad(loss_fn)(params, images)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    return jax.jit(step, donate_argnums=(0, 1)) if jit else step


@contextlib.contextmanager
def _progress_bar(steps: int, enabled: bool) -> Iterator[Any]:
    """A ``tqdm`` bar over ``steps``, or ``None`` when disabled (tqdm not needed then)."""
    if not enabled:
        yield None
        return
    try:
        from tqdm.auto import tqdm
    except ImportError as error:  # pragma: no cover - depends on the installation
        raise ImportError(
            "train: the progress bar needs tqdm; install the demo extra "
            '(pip install "jdeconv[demo]") or pass progress=False.'
        ) from error
    with tqdm(total=steps, unit="step", dynamic_ncols=True) as bar:
        yield bar


def init_params(model: nn.Module, images: np.ndarray | jax.Array, seed: int = 0) -> Params:
    """Initialises the model's parameters, compiled, from a seed.

    The key is of JAX's ``"rbg"`` kind: XLA compiles its random bit generator
    several times faster than the default ``threefry`` one, which on a CPU
    saves seconds at start-up.

    Args:
      model: the model, such as :class:`~jdeconv.demo.Autoencoder`.
      images: a batch of images of the shape the model takes (one is enough).
      seed: the seed.

    Returns:
      The ``params`` collection.

    Example:
      >>> import jax.numpy as jnp
      >>> from jdeconv.demo import Autoencoder, init_params
      >>> model = Autoencoder(image_size=16, features=(8, 16), latent_dim=4)
      >>> params = init_params(model, jnp.zeros((1, 16, 16, 3)))
      >>> params["deconv0"]["kernel"].shape  # [kh, kw, filters, in_channels]
      (4, 4, 8, 16)
    """
    key = jax.random.key(seed, impl="rbg")
    return jax.jit(model.init)(key, jnp.asarray(images))["params"]


class TrainResult(NamedTuple):
    """What :func:`train` returns."""

    params: Params
    """The trained parameters."""
    losses: np.ndarray
    """The training loss of every step, ``(steps,)`` float32."""
    seconds: float
    """Wall-clock time of the loop, compilation included."""


def make_optimizer(learning_rate: float, steps: int) -> optax.GradientTransformation:
    """Adam with a short warm-up and a cosine decay over ``steps``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jdeconv.demo import make_optimizer
      >>> optimizer = make_optimizer(1e-3, steps=100)
      >>> state = optimizer.init({"w": jnp.zeros(3)})
    """
    schedule = optax.warmup_cosine_decay_schedule(
        init_value=0.0,
        peak_value=learning_rate,
        warmup_steps=min(100, max(1, steps // 10)),
        decay_steps=max(steps, 2),
        end_value=learning_rate * 0.05,
    )
    return optax.adam(schedule)


def train(
    model: nn.Module,
    images: np.ndarray,
    *,
    steps: int,
    batch_size: int = 64,
    learning_rate: float = 3e-3,
    seed: int = 0,
    progress: bool = True,
    log_every: int = 10,
) -> TrainResult:
    """Trains ``model`` to reconstruct ``images``, showing a progress bar.

    Batches are drawn without replacement, reshuffling ``images`` every epoch.

    Args:
      model: the model, such as :class:`~jdeconv.demo.Autoencoder`.
      images: the training images ``(N, H, W, C)``, ``N >= batch_size``.
      steps: the number of optimizer steps.
      batch_size: images per step.
      learning_rate: the peak learning rate of :func:`make_optimizer`.
      seed: seed of the initialisation and the shuffling.
      progress: whether to show a ``tqdm`` bar with the step, loss and speed.
      log_every: steps between updates of the bar's loss.

    Returns:
      A :class:`TrainResult`.

    Raises:
      ValueError: if ``steps`` or ``batch_size`` is not positive, or
        ``images`` holds fewer than ``batch_size`` images.

    Example:
      >>> from jdeconv.demo import Autoencoder, make_dataset, train
      >>> model = Autoencoder(image_size=16, features=(8, 16), latent_dim=8)
      >>> result = train(model, make_dataset(32, image_size=16), steps=20, batch_size=8,
      ...                progress=False)
      >>> result.losses.shape
      (20,)
      >>> bool(result.losses[-5:].mean() < result.losses[:5].mean())
      True
    """
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"train: `steps` must be a positive int, got {steps!r}.")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"train: `batch_size` must be a positive int, got {batch_size!r}.")
    if len(images) < batch_size:
        raise ValueError(
            f"train: `images` must hold at least `batch_size` = {batch_size} images, "
            f"got {len(images)}."
        )
    rng = np.random.default_rng(seed)
    optimizer = make_optimizer(learning_rate, steps)
    params = init_params(model, images[:1], seed)
    opt_state = optimizer.init(params)
    step = make_train_step(model, optimizer)

    per_epoch = len(images) // batch_size
    order = rng.permutation(len(images))
    losses: list[jax.Array] = []
    start = time.perf_counter()
    with _progress_bar(steps, progress) as bar:
        for i in range(steps):
            if i % per_epoch == 0 and i:
                order = rng.permutation(len(images))
            index = order[(i % per_epoch) * batch_size : (i % per_epoch + 1) * batch_size]
            params, opt_state, loss = step(params, opt_state, jnp.asarray(images[index]))
            losses.append(loss)
            if bar is not None and ((i + 1) % log_every == 0 or i + 1 == steps):
                elapsed = time.perf_counter() - start
                bar.set_postfix(
                    loss=f"{float(loss):.5f}",
                    img_per_s=f"{(i + 1) * batch_size / elapsed:.0f}",
                    refresh=False,
                )
                bar.update(i + 1 - bar.n)
    seconds = time.perf_counter() - start
    return TrainResult(params, np.asarray(jax.device_get(losses), np.float32), seconds)
