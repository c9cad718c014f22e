"""Data-parallel training of the jdeconv demo across several processes (hosts).

Every process runs this script. ``jax.distributed.initialize`` joins them, so
that ``jax.devices()`` lists the devices of all of them; the training step of
``data_parallel.py`` then runs on a mesh over every device, each process
feeding its own devices' part of each batch.

On a cluster that JAX recognises (Cloud TPU, SLURM, Open MPI), run it
unchanged on every host::

    python examples/multi_host.py

Elsewhere, name the coordinator (the first process's address and a free port)
and number the processes. To try it on one machine, start two processes with
four simulated CPU devices each; they communicate over localhost::

    export XLA_FLAGS=--xla_force_host_platform_device_count=4
    python examples/multi_host.py --coordinator localhost:12355 --num-processes 2 --process-id 0 &
    python examples/multi_host.py --coordinator localhost:12355 --num-processes 2 --process-id 1

The first process prints the loss curve, which matches the one-device run of
``data_parallel.py`` with the same arguments to floating-point rounding.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence

import jax
from data_parallel import make_mesh, train


def main(argv: Sequence[str] | None = None) -> None:
    """Joins the processes, trains on all their devices, and reports from process 0."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--coordinator", help="host:port of process 0 (default: detected)")
    parser.add_argument("--num-processes", type=int)
    parser.add_argument("--process-id", type=int)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=64, help="global batch size")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--features", default="32,64,128", help="encoder channels")
    parser.add_argument("--latent-dim", type=int, default=48)
    parser.add_argument("--num-images", type=int, default=512)
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument("--json", action="store_true", help="print the losses as JSON")
    args = parser.parse_args(argv)

    # Before anything else uses JAX. Without arguments, it reads the cluster's
    # environment; with them, it connects to the coordinator.
    jax.distributed.initialize(
        coordinator_address=args.coordinator,
        num_processes=args.num_processes,
        process_id=args.process_id,
    )
    mesh = make_mesh()  # every device of every process
    result = train(
        mesh,
        steps=args.steps,
        batch_size=args.batch_size,
        image_size=args.image_size,
        features=[int(f) for f in args.features.split(",")],
        latent_dim=args.latent_dim,
        num_images=args.num_images,
        learning_rate=args.learning_rate,
    )
    if jax.process_index() != 0:
        return
    if args.json:
        print(json.dumps({"devices": jax.device_count(), "losses": result.losses.tolist()}))
        return
    print(
        f"{jax.process_count()} processes, {jax.device_count()} devices "
        f"({jax.local_device_count()} here): {1e3 * result.step_seconds:.1f} ms/step, "
        f"{result.images_per_second:.0f} images/s"
    )
    for i, loss in enumerate(result.losses):
        print(f"step {i:>4}  loss {loss:.7f}")


if __name__ == "__main__":
    main()
