"""``method="autotune"``: measured once per geometry, cached, and safe where it cannot measure.

Every candidate it chooses among is a method the rest of the suite checks
numerically, so these tests check the choosing:

* the choice is one of the candidates, for each of the three maps;
* every front end (the ops, linen, NNX, the functional layers,
  ``torch_compat``, the process-wide default) gives ``auto``'s numbers;
* a second compilation of a geometry measures nothing, in memory or from
  the cache file, and the same cache gives the same program in a new
  process;
* the tuning bound: a candidate over 4x the best drops out after one call;
* ``jax.export``, abstract evaluation, meshes, ``shard_map`` and programs
  over several devices compute what ``auto`` computes, without measuring;
* a bad cache file or method name is a clear error.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import jdeconv
from jdeconv import _lowerings, autotune, torch_compat
from jdeconv._lowerings import ConvConfig

SHAPE = (2, 6, 6, 4)  # NHWC input
KERNEL = (3, 3, 5, 4)  # [h, w, C_out, C_in]
OUTPUT = (2, 12, 12, 5)


@pytest.fixture(autouse=True)
def fresh_state():
    """No choices, no cache file, ``"auto"`` as the default, before and after each test.

    JAX's caches are cleared too, so that each test compiles (and so tunes) afresh.
    """
    jax.clear_caches()
    autotune.clear()
    autotune.set_cache_file(None)
    previous = jdeconv.set_default_method("auto")
    yield
    autotune.clear()
    autotune.set_cache_file(None)
    jdeconv.set_default_method(previous)


@pytest.fixture
def tunings(caplog):
    """The tuning log lines (level INFO) emitted so far."""
    caplog.set_level(logging.INFO, logger="jdeconv.autotune")

    def lines():
        return [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]

    return lines


def operands():
    rng = np.random.default_rng(0)
    x = rng.standard_normal(SHAPE).astype(np.float32)
    w = rng.standard_normal(KERNEL).astype(np.float32)
    return x, w


def op(method):
    def apply(x, w):
        return jdeconv.conv2d_transpose(x, w, OUTPUT, 2, "SAME", method=method)

    return apply


def loss_grad(method):
    return jax.jit(jax.grad(lambda x, w: jnp.sum(op(method)(x, w) ** 2), argnums=(0, 1)))


def test_each_map_chooses_one_of_its_candidates(tunings):
    x, w = operands()
    loss_grad("autotune")(x, w)
    chosen = {choice.map_name: choice for choice in autotune.choices()}
    assert set(chosen) == {"transpose_conv", "forward_conv", "kernel_grad"}
    for name, choice in chosen.items():
        candidates = _lowerings.candidates(name, choice.geometry)
        assert choice.method in candidates
        assert set(choice.times_ms) == set(candidates)
        assert choice.source == "this process"
        assert choice.operand_shapes[0] in (SHAPE, OUTPUT)
        assert choice.dtype == "float32" and choice.platform == "cpu"
        assert choice.device_kind.startswith("cpu") and choice.tuning_seconds > 0
    assert len(tunings()) == 3
    assert all("chose" in line and "tuned in" in line for line in tunings())


def test_a_second_compilation_measures_nothing(tunings, monkeypatch):
    x, w = operands()
    loss_grad("autotune")(x, w)
    assert len(tunings()) == 3

    def no_timing(*args, **kwargs):
        raise AssertionError("measured again")

    monkeypatch.setattr(autotune, "_measure", no_timing)
    jax.clear_caches()
    loss_grad("autotune")(x, w)  # a new function: traced, lowered, compiled again
    op("autotune")(x, w)  # eagerly
    assert len(tunings()) == 3


def test_every_front_end_gives_autos_numbers():
    x, w = operands()
    want = op("auto")(x, w)
    np.testing.assert_allclose(op("autotune")(x, w), want, rtol=1e-5, atol=1e-5)

    layer = jdeconv.Conv2DTranspose(5, 3, 2, "same")
    variables = layer.init(jax.random.key(0), x)
    auto_out = layer.apply(variables, x)
    tuned = jdeconv.Conv2DTranspose(5, 3, 2, "same", method="autotune").apply(variables, x)
    np.testing.assert_allclose(tuned, auto_out, rtol=1e-5, atol=1e-5)

    nnx_auto = jdeconv.nnx.Conv2DTranspose(4, 5, 3, 2, "same", rngs=nnx.Rngs(0))
    nnx_tuned = jdeconv.nnx.Conv2DTranspose(4, 5, 3, 2, "same", method="autotune", rngs=nnx.Rngs(0))
    np.testing.assert_allclose(nnx_tuned(x), nnx_auto(x), rtol=1e-5, atol=1e-5)

    class Functional(nn.Module):
        method: str

        @nn.compact
        def __call__(self, x):
            return jdeconv.layers.conv2d_transpose(x, 5, 3, 2, "same", method=self.method)

    params = Functional("auto").init(jax.random.key(0), x)
    np.testing.assert_allclose(
        Functional("autotune").apply(params, x),
        Functional("auto").apply(params, x),
        rtol=1e-5,
        atol=1e-5,
    )

    x_nchw = np.moveaxis(x, -1, 1)
    weight = np.random.default_rng(1).standard_normal((4, 5, 3, 3)).astype(np.float32)
    np.testing.assert_allclose(
        torch_compat.conv_transpose2d(x_nchw, weight, stride=2, padding=1, method="autotune"),
        torch_compat.conv_transpose2d(x_nchw, weight, stride=2, padding=1, method="auto"),
        rtol=1e-5,
        atol=1e-5,
    )
    module = torch_compat.ConvTranspose2d(4, 5, 3, stride=2, method="autotune")
    torch_params = module.init(jax.random.key(0), x_nchw)
    np.testing.assert_allclose(
        module.apply(torch_params, x_nchw),
        torch_compat.ConvTranspose2d(4, 5, 3, stride=2).apply(torch_params, x_nchw),
        rtol=1e-5,
        atol=1e-5,
    )
    assert {choice.map_name for choice in autotune.choices()} == {"transpose_conv"}


def test_the_process_wide_default(tunings):
    x, w = operands()
    assert jdeconv.set_default_method("autotune") == "auto"
    assert jdeconv.get_default_method() == "autotune"
    np.testing.assert_allclose(op(None)(x, w), op("auto")(x, w), rtol=1e-5, atol=1e-5)
    layer = jdeconv.Conv2DTranspose(5, 3, 2, "same")  # method=None: the default
    layer.apply(layer.init(jax.random.key(0), x), x)
    assert len(tunings()) == 1  # the op and the layer share the geometry
    jdeconv.set_default_method("auto")
    autotune.clear()
    op(None)(x + 1, w)
    assert len(tunings()) == 1


def test_the_cache_file_round_trips(tmp_path, tunings, monkeypatch):
    path = tmp_path / "tuned.json"
    autotune.set_cache_file(path)
    assert autotune.cache_file() == path.resolve()
    x, w = operands()
    loss_grad("autotune")(x, w)
    document = json.loads(path.read_text())
    assert document["format"] == "jdeconv-autotune" and len(document["entries"]) == 3
    measured = {c.key(): c.method for c in autotune.choices()}

    autotune.clear()
    monkeypatch.setattr(autotune, "_measure", lambda *a, **k: pytest.fail("measured again"))
    jax.clear_caches()
    loss_grad("autotune")(x, w)
    assert {c.key(): c.method for c in autotune.choices()} == measured
    assert {c.source for c in autotune.choices()} == {str(path.resolve())}
    assert len(tunings()) == 3


_PROGRAM = textwrap.dedent(
    """
    import jax, jax.numpy as jnp, numpy as np, jdeconv
    x = np.ones((2, 6, 6, 4), np.float32); w = np.ones((3, 3, 5, 4), np.float32)
    loss = lambda x, w: jnp.sum(jdeconv.conv2d_transpose(x, w, (2, 12, 12, 5), 2,
                                                          method="autotune") ** 2)
    print(jax.jit(jax.grad(loss, argnums=(0, 1))).lower(x, w).as_text(debug_info=False))
    """
)


def test_the_same_cache_gives_the_same_program(tmp_path):
    path = tmp_path / "tuned.json"
    env = {**os.environ, autotune.CACHE_ENVIRONMENT_VARIABLE: str(path), "JAX_PLATFORMS": "cpu"}

    def program():
        result = subprocess.run(
            [sys.executable, "-c", _PROGRAM], capture_output=True, text=True, env=env, timeout=300
        )
        assert result.returncode == 0, result.stderr[-3000:]
        return result.stdout

    first = program()
    entries = json.loads(path.read_text())["entries"]
    # Make each map's choice a method auto would not take, so that the second
    # program must have read the file to match.
    for entry in entries:
        others = [name for name in entry["times_ms"] if name != entry["method"]]
        entry["method"] = others[0] if others else entry["method"]
    path.write_text(json.dumps({"format": "jdeconv-autotune", "version": 1, "entries": entries}))
    second, third = program(), program()
    assert second == third
    if any(len(entry["times_ms"]) > 1 for entry in entries):
        assert second != first


def test_a_slow_candidate_drops_out_after_one_call():
    config = ConvConfig(geometry=_geometry())

    def fast(a, b, config):
        return a @ b

    def slow(a, b, config):
        for _ in range(200):
            a = jnp.tanh(a @ b @ b.T)
        return a @ b

    a = jax.ShapeDtypeStruct((256, 256), jnp.float32)
    b = jax.ShapeDtypeStruct((256, 256), jnp.float32)
    chosen = autotune.choose(
        "transpose_conv",
        candidates={"phase": fast, "lhs_dilation": slow},
        preferred="phase",
        config=config,
        operands=(a, b),
        device=jax.devices("cpu")[0],
        platform="cpu",
    )
    assert chosen == "phase"
    (choice,) = autotune.choices()
    assert choice.dropped == ("lhs_dilation",)
    assert choice.times_ms["lhs_dilation"] > 4 * choice.times_ms["phase"]


def _geometry():
    return jdeconv._shapes.make_geometry(
        "test",
        input_size=(6, 6),
        kernel_size=(3, 3),
        output_size=(12, 12),
        strides=(2, 2),
        dilations=(1, 1),
        padding="SAME",
        channels_last=True,
    )


def test_export_and_abstract_evaluation_fall_back_to_auto(tunings, caplog):
    caplog.set_level(logging.DEBUG, logger="jdeconv.autotune")
    x, w = operands()
    for platforms in (None, ("cpu", "cuda")):
        exported = {
            method: jax.export.export(loss_grad(method), platforms=platforms)(x, w)
            for method in ("auto", "autotune")
        }
        assert exported["autotune"].mlir_module() == exported["auto"].mlir_module()
    jax.eval_shape(op("autotune"), x, w)
    jax.make_jaxpr(loss_grad("autotune"))(x, w)
    assert tunings() == [] and autotune.choices() == ()
    assert any("jax.export" in r.getMessage() for r in caplog.records)


_DEVICES = textwrap.dedent(
    """
    import jax, jax.numpy as jnp, numpy as np, jdeconv
    from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
    x = np.ones((4, 6, 6, 4), np.float32); w = np.ones((3, 3, 5, 4), np.float32)
    def op(method):
        return lambda x, w: jdeconv.conv2d_transpose(x, w, (x.shape[0], 12, 12, 5), 2,
                                                     method=method)
    def grad(method):
        return jax.grad(lambda x, w: jnp.sum(op(method)(x, w) ** 2), argnums=(0, 1))
    mesh = Mesh(np.array(jax.devices()), ("batch",))
    batch = NamedSharding(mesh, P("batch"))
    results = {}
    # Operands placed on a mesh.
    xs = jax.device_put(x, batch)
    results["mesh"] = [np.asarray(jax.jit(grad(m))(xs, w)[1]) for m in ("auto", "autotune")]
    # jit with shardings over several devices, host operands.
    spread = jax.jit(grad("autotune"), in_shardings=(batch, None))
    results["in_shardings"] = [np.asarray(jax.jit(grad("auto"))(x, w)[1]),
                               np.asarray(spread(x, w)[1])]
    # shard_map: each device its block.
    def per_device(method):
        return jax.shard_map(lambda x, w: op(method)(x, w), mesh=mesh,
                             in_specs=(P("batch"), P()), out_specs=P("batch"))
    results["shard_map"] = [np.asarray(jax.jit(per_device(m))(x, w)) for m in ("auto", "autotune")]
    for name, (a, b) in results.items():
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5, err_msg=name)
    print("choices", len(jdeconv.autotune.choices()))
    """
)


def test_meshes_shard_map_and_several_devices_fall_back_to_auto():
    env = {
        **os.environ,
        "XLA_FLAGS": "--xla_force_host_platform_device_count=2",
        "JAX_PLATFORMS": "cpu",
    }
    result = subprocess.run(
        [sys.executable, "-c", _DEVICES], capture_output=True, text=True, env=env, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split()[-2:] == ["choices", "0"]


def test_errors_name_the_argument(tmp_path):
    with pytest.raises(ValueError, match=r"conv2d_transpose: `method` must be None .*'autotune'"):
        op("tuned")(*operands())
    with pytest.raises(ValueError, match=r"set_default_method: `method` must be one of"):
        jdeconv.set_default_method("fastest")
    with pytest.raises(ValueError, match=r"set_default_method: `method` must be one of .* None"):
        jdeconv.set_default_method(None)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match=r"set_cache_file: '.*bad.json' is not a jdeconv autotune"):
        autotune.set_cache_file(bad)
    bad.write_text(json.dumps({"format": "something else"}))
    with pytest.raises(ValueError, match=r"is not a jdeconv autotune cache file"):
        autotune.set_cache_file(bad)
    with pytest.raises(
        ValueError, match=r"the folder of the autotune cache file .* does not exist"
    ):
        autotune.set_cache_file(tmp_path / "missing" / "tuned.json")
    with pytest.raises(TypeError, match=r"set_cache_file: `path` must be a path or None, got int"):
        autotune.set_cache_file(3)
    assert autotune.cache_file() is None


def test_the_environment_variable_names_the_cache_file(tmp_path, monkeypatch):
    path = tmp_path / "from_env.json"
    monkeypatch.setenv(autotune.CACHE_ENVIRONMENT_VARIABLE, str(path))
    monkeypatch.setattr(autotune._STATE, "cache_file_set", False)
    assert autotune.cache_file() == path.resolve()
    op("autotune")(*operands())
    assert len(json.loads(path.read_text())["entries"]) == 1
