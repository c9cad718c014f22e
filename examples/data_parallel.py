"""Data-parallel training of the jdeconv demo autoencoder on every local device.

The batch is split across a one-axis device mesh; the parameters and the
optimizer state are replicated. ``jax.jit`` partitions the training step
(GSPMD): each device runs the encoder and the ``jdeconv.Conv2DTranspose``
decoder on its slice of the batch, and the only communication is the
all-reduce of the gradients (and of the loss), which XLA fuses into one.

The script trains the same model on the same batches twice, on one device and
on all of them, and prints the two loss curves side by side with the
throughput of each run. Without accelerators, simulate eight devices on the
CPU::

    XLA_FLAGS=--xla_force_host_platform_device_count=8 python examples/data_parallel.py

Simulated devices share the host's cores, so there the per-device throughput
drops as devices are added; on real accelerators each device brings its own
compute. The loss curves agree to floating-point rounding in either case.
"""

from __future__ import annotations

import argparse
import re
import time
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from jdeconv.demo import (
    Autoencoder,
    init_params,
    make_dataset,
    make_optimizer,
    make_train_step,
)


def make_mesh(num_devices: int | None = None) -> Mesh:
    """A one-axis mesh named ``"data"`` over the first ``num_devices`` devices.

    ``jax.devices()`` lists the devices of every process: on one host, the
    local devices; after ``jax.distributed.initialize()``, those of all hosts.
    """
    devices = jax.devices()
    count = len(devices) if num_devices is None else num_devices
    if not 1 <= count <= len(devices):
        raise ValueError(f"make_mesh: asked for {count} devices, there are {len(devices)}.")
    return Mesh(np.array(devices[:count]), ("data",))


def global_batch(batch: np.ndarray, sharding: NamedSharding) -> jax.Array:
    """The batch as one array split over the mesh; each process copies only its part.

    Every process holds the whole ``batch`` here (the demo's data are drawn
    from a seed). A loader that reads only this process's examples would use
    ``jax.make_array_from_process_local_data(sharding, local_examples)``.
    """
    return jax.make_array_from_callback(batch.shape, sharding, lambda index: batch[index])


class Result(NamedTuple):
    """The outcome of :func:`train`."""

    losses: np.ndarray  # the loss of every step, float32
    params: Any  # the trained parameters, replicated on the mesh
    step_seconds: float  # median wall-clock seconds of one step, compilation excluded
    images_per_second: float  # batch_size / step_seconds, for all devices together
    compiled_text: str  # the partitioned HLO of the training step


def train(
    mesh: Mesh,
    *,
    steps: int = 30,
    batch_size: int = 64,
    image_size: int = 32,
    features: Sequence[int] = (32, 64, 128),
    latent_dim: int = 48,
    learning_rate: float = 2e-3,
    num_images: int = 512,
    method: str = "auto",
    seed: int = 0,
) -> Result:
    """Trains the demo autoencoder data-parallel over ``mesh``'s ``"data"`` axis.

    The data, the initial parameters and the order of the batches depend only
    on ``seed``, never on the mesh, so meshes of any size train the same model
    on the same batches. ``batch_size`` is the global batch; it must be a
    multiple of the number of devices. On several hosts, every process calls
    this function with the same arguments and a mesh over all devices.
    """
    devices = mesh.devices.size
    if batch_size % devices:
        raise ValueError(
            f"train: `batch_size` ({batch_size}) must be a multiple of the {devices} devices."
        )
    images = make_dataset(num_images, image_size=image_size, seed=seed)
    model = Autoencoder(
        image_size=image_size, features=tuple(features), latent_dim=latent_dim, method=method
    )
    optimizer = make_optimizer(learning_rate, steps)

    replicated = NamedSharding(mesh, P())
    batch_sharded = NamedSharding(mesh, P("data"))  # split axis 0, the batch
    params = jax.device_put(init_params(model, images[:1], seed), replicated)
    opt_state = jax.device_put(optimizer.init(params), replicated)

    step = jax.jit(
        make_train_step(model, optimizer, jit=False),
        in_shardings=(replicated, replicated, batch_sharded),
        out_shardings=(replicated, replicated, replicated),
        donate_argnums=(0, 1),
    )

    rng = np.random.default_rng(seed)
    per_epoch = num_images // batch_size
    order = rng.permutation(num_images)
    batches = []
    for i in range(steps):
        if i and i % per_epoch == 0:
            order = rng.permutation(num_images)
        index = order[(i % per_epoch) * batch_size : (i % per_epoch + 1) * batch_size]
        batches.append(images[index])

    compiled = step.lower(params, opt_state, global_batch(batches[0], batch_sharded)).compile()
    losses, seconds = [], []
    for batch in batches:
        start = time.perf_counter()
        params, opt_state, loss = compiled(params, opt_state, global_batch(batch, batch_sharded))
        losses.append(float(loss))  # waits for the step; the loss is replicated
        seconds.append(time.perf_counter() - start)
    step_seconds = float(np.median(seconds))
    return Result(
        losses=np.asarray(losses, np.float32),
        params=params,
        step_seconds=step_seconds,
        images_per_second=batch_size / step_seconds,
        compiled_text=compiled.as_text(),
    )


def main(argv: Sequence[str] | None = None) -> None:
    """Trains on one device and on all local devices, and compares the runs."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=64, help="global batch size")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--method", default="auto", help="jdeconv lowering of the decoder")
    args = parser.parse_args(argv)

    kwargs = dict(
        steps=args.steps,
        batch_size=args.batch_size,
        image_size=args.image_size,
        method=args.method,
    )
    all_devices = jax.local_device_count()
    print(f"{all_devices} local devices: {jax.local_devices()}")
    runs = {1: train(make_mesh(1), **kwargs)}
    if all_devices > 1:
        runs[all_devices] = train(make_mesh(all_devices), **kwargs)

    print(f"\nglobal batch {args.batch_size}, {args.steps} steps, image size {args.image_size}")
    print(
        f"{'devices':>7} {'ms/step':>9} {'images/s':>10} {'images/s/device':>16} {'last loss':>11}"
    )
    for count, run in runs.items():
        print(
            f"{count:>7} {1e3 * run.step_seconds:>9.1f} {run.images_per_second:>10.0f} "
            f"{run.images_per_second / count:>16.0f} {run.losses[-1]:>11.6f}"
        )
    if all_devices > 1:
        one, many = runs[1].losses, runs[all_devices].losses
        print(f"\n{'step':>4} {'loss, 1 device':>15} {f'loss, {all_devices} devices':>16}")
        for i in range(0, len(one), max(1, len(one) // 10)):
            print(f"{i:>4} {one[i]:>15.7f} {many[i]:>16.7f}")
        difference = float(np.max(np.abs(many - one) / np.abs(one)))
        print(f"largest relative difference between the loss curves: {difference:.1e}")
        gathers = len(re.findall(r" all-gather(?:-start)?\(", runs[all_devices].compiled_text))
        print(f"all-gathers in the partitioned training step: {gathers}")


if __name__ == "__main__":
    main()
