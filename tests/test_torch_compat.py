"""``jdeconv.torch_compat`` against PyTorch itself.

Values and both gradients (input and weight, and the bias's) are compared
with ``torch.nn.functional.conv_transpose*d`` over a seeded random sample of
rank, stride, padding, output padding, dilation, groups and bias, in float64.
The sample includes what is special to PyTorch: an ``output_padding`` of at
least the stride (allowed when the dilation is larger) and a ``padding``
beyond the kernel's reach.
"""

from __future__ import annotations

import dataclasses
import math
import random
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jdeconv import torch_compat

FUNCTIONS = {
    1: torch_compat.conv_transpose1d,
    2: torch_compat.conv_transpose2d,
    3: torch_compat.conv_transpose3d,
}
MODULES = {
    1: torch_compat.ConvTranspose1d,
    2: torch_compat.ConvTranspose2d,
    3: torch_compat.ConvTranspose3d,
}


@dataclasses.dataclass
class Case:
    n: int
    batch: int
    in_channels: int
    out_channels: int
    groups: int
    input_size: tuple
    kernel_size: tuple
    stride: tuple
    padding: tuple
    output_padding: tuple
    dilation: tuple
    bias: bool

    def describe(self):
        return (
            f"{self.n}d-I{self.input_size}-k{self.kernel_size}-s{self.stride}-p{self.padding}"
            f"-op{self.output_padding}-d{self.dilation}-g{self.groups}-c{self.in_channels}"
            f"x{self.out_channels}{'-bias' if self.bias else ''}"
        )

    def output_size(self):
        return tuple(
            (i - 1) * s - 2 * p + d * (k - 1) + op + 1
            for i, s, p, d, k, op in zip(
                self.input_size,
                self.stride,
                self.padding,
                self.dilation,
                self.kernel_size,
                self.output_padding,
                strict=True,
            )
        )

    def arrays(self, seed, dtype=np.float64):
        rng = np.random.default_rng(seed)
        x = rng.standard_normal((self.batch, self.in_channels, *self.input_size))
        w = rng.standard_normal(
            (self.in_channels, self.out_channels // self.groups, *self.kernel_size)
        )
        b = rng.standard_normal(self.out_channels) if self.bias else None
        g = rng.standard_normal((self.batch, self.out_channels, *self.output_size()))
        return tuple(None if a is None else a.astype(dtype) for a in (x, w, b, g))


def sample(seed, count, ranks=(1, 2, 3)):
    rng = random.Random(seed)
    out = []
    while len(out) < count:
        n = rng.choice(ranks)
        cap = {1: 6, 2: 4, 3: 3}[n]
        groups = rng.choice((1, 1, 2, 3))
        kernel = tuple(rng.randint(1, 4 if n < 3 else 3) for _ in range(n))
        stride = tuple(rng.randint(1, 3) for _ in range(n))
        dilation = tuple(rng.randint(1, 3) for _ in range(n))
        padding = tuple(rng.randint(0, 3) for _ in range(n))
        output_padding = tuple(
            rng.randint(0, max(s, d) - 1) for s, d in zip(stride, dilation, strict=True)
        )
        case = Case(
            n=n,
            batch=rng.randint(1, 2),
            in_channels=groups * rng.randint(1, 2),
            out_channels=groups * rng.randint(1, 3),
            groups=groups,
            input_size=tuple(rng.randint(1, cap) for _ in range(n)),
            kernel_size=kernel,
            stride=stride,
            padding=padding,
            output_padding=output_padding,
            dilation=dilation,
            bias=rng.random() < 0.5,
        )
        if min(case.output_size()) >= 1:
            out.append(case)
    return out


SAMPLE = sample(seed=7, count=12, ranks=(2,)) + sample(8, 5, (1,)) + sample(9, 4, (3,))
SLOW_SAMPLE = sample(seed=10, count=150)


def torch_result(torch, case, x, w, b, g):
    op = getattr(torch.nn.functional, f"conv_transpose{case.n}d")
    xt = torch.tensor(x, requires_grad=True)
    wt = torch.tensor(w, requires_grad=True)
    bt = None if b is None else torch.tensor(b, requires_grad=True)
    y = op(xt, wt, bt, case.stride, case.padding, case.output_padding, case.groups, case.dilation)
    y.backward(torch.tensor(g))
    grads = (xt.grad.numpy(), wt.grad.numpy(), None if bt is None else bt.grad.numpy())
    return y.detach().numpy(), grads


def jdeconv_result(case, x, w, b, g):
    def f(x, w, b):
        return FUNCTIONS[case.n](
            x, w, b, case.stride, case.padding, case.output_padding, case.groups, case.dilation
        )

    y, vjp = jax.vjp(f, x, w, b)
    return np.asarray(y), tuple(None if a is None else np.asarray(a) for a in vjp(g))


def check(torch, index, case, dtype=np.float64, tol=1e-10):
    x, w, b, g = case.arrays(seed=index, dtype=dtype)
    y_torch, grads_torch = torch_result(torch, case, x, w, b, g)
    y, grads = jdeconv_result(case, x, w, b, g)
    assert y.shape == y_torch.shape
    np.testing.assert_allclose(y, y_torch, rtol=tol, atol=tol)
    for name, got, expected in zip(("input", "weight", "bias"), grads, grads_torch, strict=True):
        if expected is None:
            continue
        np.testing.assert_allclose(got, expected, rtol=tol, atol=tol, err_msg=name)


@pytest.mark.parametrize(
    ("index", "case"), list(enumerate(SAMPLE)), ids=[c.describe() for c in SAMPLE]
)
def test_values_and_gradients_match_torch(torch, index, case):
    check(torch, index, case)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("index", "case"), list(enumerate(SLOW_SAMPLE)), ids=[c.describe() for c in SLOW_SAMPLE]
)
def test_values_and_gradients_match_torch_slow(torch, index, case):
    check(torch, index, case)


def test_sample_covers_the_space():
    everything = SAMPLE
    assert {c.n for c in everything} == {1, 2, 3}
    assert any(c.groups > 1 for c in everything)
    assert any(c.bias for c in everything) and not all(c.bias for c in everything)
    # output_padding at least the stride: only possible with a larger dilation.
    assert any(
        op >= s for c in everything for op, s in zip(c.output_padding, c.stride, strict=True)
    )
    # Padding beyond k_eff - 1 crops the output.
    assert any(
        p > d * (k - 1)
        for c in everything
        for p, d, k in zip(c.padding, c.dilation, c.kernel_size, strict=True)
    )


@pytest.mark.parametrize(
    "case",
    [
        Case(2, 2, 4, 6, 2, (5, 4), (3, 4), (2, 1), (1, 2), (1, 0), (1, 2), True),
        Case(1, 1, 3, 3, 3, (7,), (4,), (3,), (1,), (2,), (1,), True),
        Case(3, 1, 2, 4, 1, (2, 3, 2), (2, 3, 2), (2, 1, 3), (0, 1, 1), (1, 0, 2), (1, 1, 1), True),
    ],
    ids=["2d", "1d-depthwise", "3d"],
)
def test_float32_matches_torch(torch, case):
    check(torch, 0, case, dtype=np.float32, tol=2e-5)


def test_unbatched_input(torch):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 5, 5)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    expected = torch.nn.functional.conv_transpose2d(
        torch.tensor(x), torch.tensor(w), None, 2, 1, 1, 2
    ).numpy()
    y = torch_compat.conv_transpose2d(x, w, None, 2, 1, 1, 2)
    assert y.shape == expected.shape == (6, 10, 10)
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)


def test_accepts_torch_tensors_and_composes_with_transforms(torch):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 2, 4, 4))
    w = rng.standard_normal((2, 2, 3, 3))
    expected = torch.nn.functional.conv_transpose2d(torch.tensor(x), torch.tensor(w), stride=2)
    np.testing.assert_allclose(
        torch_compat.conv_transpose2d(torch.tensor(x), torch.tensor(w), stride=2),
        expected.numpy(),
        rtol=1e-12,
    )

    def f(x, w):
        return torch_compat.conv_transpose2d(x, w, stride=2, padding=1, output_padding=1)

    jitted = jax.jit(f)(x, w)
    np.testing.assert_allclose(jitted, f(x, w), rtol=1e-12)
    batched = jax.vmap(f, in_axes=(0, None))(x[:, None], w)
    np.testing.assert_allclose(batched[:, 0], f(x, w), rtol=1e-12)
    # Second order: the Hessian-vector product of a scalar loss exists and is
    # linear in the weight (the op is bilinear, so d2/dw2 of sum(f^2) is 2 J^T J).
    loss = lambda w: jnp.sum(f(x, w) ** 2)  # noqa: E731
    hvp = jax.grad(lambda w: jnp.vdot(jax.grad(loss)(w), w))(w)
    np.testing.assert_allclose(hvp, 2 * jax.grad(loss)(w), rtol=1e-10)
    # And a PyTorch double-backward of the same quantity.
    wt = torch.tensor(w, requires_grad=True)
    out = torch.nn.functional.conv_transpose2d(
        torch.tensor(x), wt, stride=2, padding=1, output_padding=1
    )
    (grad,) = torch.autograd.grad(out.pow(2).sum(), wt, create_graph=True)
    (torch_hvp,) = torch.autograd.grad((grad * wt).sum(), wt)
    np.testing.assert_allclose(hvp, torch_hvp.numpy(), rtol=1e-10)


@pytest.mark.parametrize("dtype", [jnp.float16, jnp.bfloat16, jnp.float32, jnp.float64])
def test_dtypes(dtype):
    x = jnp.ones((1, 2, 3, 3), dtype)
    w = jnp.ones((2, 4, 2, 2), dtype)
    b = jnp.arange(4, dtype=dtype)
    y = torch_compat.conv_transpose2d(x, w, b, stride=2)
    assert y.dtype == dtype
    np.testing.assert_allclose(np.asarray(y[0, :, 0, 0], np.float64), 2 + np.arange(4))


# Each bad call, PyTorch's own exception text (checked against PyTorch too),
# and the rule as it reads in jdeconv's message.
def _torch_message(torch, call):
    """PyTorch's message for a refused call, from its native CPU path.

    (PyTorch's oneDNN path words a few refusals as internal errors, e.g.
    "could not create a primitive descriptor"; jdeconv gives the native path's
    message.)
    """
    mkldnn = torch.backends.mkldnn
    with (
        mkldnn.flags(enabled=False, allow_tf32=None, deterministic=None, fp32_precision=None),
        pytest.raises(RuntimeError) as error,
    ):
        call()
    return str(error.value)


# (arguments, input shape, weight shape): each refused by PyTorch.
BAD_CALLS = {
    "output_padding >= stride": (dict(stride=2, output_padding=2), (2, 4, 5, 5), (4, 3, 3, 3)),
    "output_padding >= 1 = stride": (dict(output_padding=1), (2, 4, 5, 5), (4, 3, 3, 3)),
    "groups=3": (dict(groups=3), (2, 4, 5, 5), (4, 3, 3, 3)),
    "groups=5": (dict(groups=5), (2, 4, 5, 5), (4, 3, 3, 3)),
    "groups=0": (dict(groups=0), (2, 4, 5, 5), (4, 3, 3, 3)),
    "groups=-1": (dict(groups=-1), (2, 4, 5, 5), (4, 3, 3, 3)),
    "stride=0": (dict(stride=0), (2, 4, 5, 5), (4, 3, 3, 3)),
    "stride=-1": (dict(stride=(1, -1)), (2, 4, 5, 5), (4, 3, 3, 3)),
    "stride of 3 values": (dict(stride=(1, 2, 3)), (2, 4, 5, 5), (4, 3, 3, 3)),
    "padding=-1": (dict(padding=-1), (2, 4, 5, 5), (4, 3, 3, 3)),
    "output_padding=-1": (dict(output_padding=(0, -1)), (2, 4, 5, 5), (4, 3, 3, 3)),
    "dilation=0": (dict(dilation=0), (2, 4, 5, 5), (4, 3, 3, 3)),
    "dilation=(2, 0)": (dict(dilation=(2, 0)), (2, 4, 5, 5), (4, 3, 3, 3)),
    "dilation=-2": (dict(dilation=-2), (2, 4, 5, 5), (4, 3, 3, 3)),
    "kernel size 0": ({}, (2, 4, 5, 5), (4, 3, 0, 3)),
    "no output channels": ({}, (2, 4, 5, 5), (4, 0, 3, 3)),
    "no input channels": ({}, (2, 0, 5, 5), (0, 3, 3, 3)),
    "input of size 0": ({}, (2, 4, 0, 5), (4, 3, 3, 3)),
    "unbatched input of size 0": ({}, (4, 5, 0), (4, 3, 3, 3)),
    "output too small": (dict(padding=5), (2, 4, 5, 5), (4, 3, 3, 3)),
    "channels": ({}, (2, 5, 5, 5), (4, 3, 3, 3)),
    "rank": ({}, (5, 5), (4, 3, 3, 3)),
    "bias": (dict(bias=np.zeros(4, np.float32)), (2, 4, 5, 5), (4, 3, 3, 3)),
}


@pytest.mark.parametrize("case", BAD_CALLS)
def test_errors_are_torchs(torch, case):
    """Every call PyTorch refuses is refused, with PyTorch's message, before any lowering."""
    kwargs, input_shape, weight_shape = BAD_CALLS[case]
    x, w = np.zeros(input_shape, np.float32), np.zeros(weight_shape, np.float32)
    torch_kwargs = {k: torch.tensor(v) if k == "bias" else v for k, v in kwargs.items()}
    message = _torch_message(
        torch,
        lambda: torch.nn.functional.conv_transpose2d(
            torch.tensor(x), torch.tensor(w), **torch_kwargs
        ),
    )
    with pytest.raises(ValueError) as error:
        torch_compat.conv_transpose2d(x, w, **kwargs)
    assert str(error.value) == f"conv_transpose2d: {message}"


def test_torch_messages_in_every_rank():
    x = np.zeros((1, 2, 4, 4, 4), np.float32)
    with pytest.raises(
        ValueError,
        match=r"^conv_transpose3d: output padding must be smaller than either stride or "
        r"dilation, but got output_padding_depth: 0 output_padding_height: 0 "
        r"output_padding_width: 2 stride_depth: 2 stride_height: 2 stride_width: 2 "
        r"dilation_depth: 1 dilation_height: 1 dilation_width: 1$",
    ):
        torch_compat.conv_transpose3d(
            x, np.zeros((2, 1, 2, 2, 2)), stride=2, output_padding=(0, 0, 2)
        )
    with pytest.raises(
        ValueError,
        match=r"^conv_transpose3d: non-empty 5D \(n_output_plane x n_input_plane x "
        r"kernel_depth x kernel_height x kernel_width\) tensor expected for weight, but got: "
        r"\[2, 0, 2, 2, 2\]$",
    ):
        torch_compat.conv_transpose3d(x, np.zeros((2, 0, 2, 2, 2)))
    with pytest.raises(
        ValueError,
        match=r"^conv_transpose1d: dilation should be greater than zero, but got "
        r"dilation_width: 0$",
    ):
        torch_compat.conv_transpose1d(x[0, 0], np.zeros((4, 1, 3)), dilation=0)


def test_errors_of_kind():
    x = np.zeros((2, 4, 5, 5), np.float32)
    w = np.zeros((4, 3, 3, 3), np.float32)
    f = torch_compat.conv_transpose2d
    cases = [
        (
            dict(weight=w[0]),
            ValueError,
            r"`weight` must have 4 dimensions \(in_channels, out_channels / groups, "
            r"\*kernel_size\), but got weight of size \[3, 3, 3\]",
        ),
        (
            dict(padding="same"),
            TypeError,
            r"argument 'padding' must be tuple of ints, not str \(PyTorch's transposed "
            r"convolutions have no string padding\)\.",
        ),
        (dict(stride=(2.0, 2)), TypeError, r"`stride` must hold integers, got float 2\.0\."),
        (dict(groups=1.0), TypeError, r"`groups` must hold integers, got float 1\.0\."),
        (
            dict(input=x.astype(np.int32)),
            TypeError,
            r"`input` must have a floating-point dtype \(float16, bfloat16, float32 or "
            r"float64\), got int32\.",
        ),
        (dict(input="x"), TypeError, r"`input` must be an array, got str 'x'\."),
        (
            dict(method="fft"),
            ValueError,
            r"`method` must be None \(the default, 'auto'\) or one of \('auto', 'lhs_dilation', "
            r"'phase', 'phase_matmul', 'autotune'\), "
            r"got 'fft'\.",
        ),
        (
            dict(precision="low"),
            ValueError,
            r"`precision` must be None, a jax\.lax\.Precision or its name .* got str 'low'\.",
        ),
    ]
    for kwargs, error, message in cases:
        arguments = dict(input=x, weight=w) | kwargs
        with pytest.raises(error, match=rf"^conv_transpose2d: {message}$"):
            f(**arguments)


# --------------------------------------------------------------------------
# Modules


def module_pair(torch, n, **kwargs):
    """The same layer in PyTorch and in jdeconv, jdeconv's holding torch's weights."""
    torch.manual_seed(0)
    torch_layer = getattr(torch.nn, f"ConvTranspose{n}d")(**kwargs).double()
    layer = MODULES[n](**kwargs)
    params = {k: jnp.asarray(v.detach().numpy()) for k, v in torch_layer.state_dict().items()}
    return torch_layer, layer, {"params": params}


@pytest.mark.parametrize(
    ("n", "kwargs", "input_size"),
    [
        (
            2,
            dict(
                in_channels=4,
                out_channels=6,
                kernel_size=3,
                stride=2,
                padding=1,
                output_padding=1,
                groups=2,
            ),
            (5, 4),
        ),
        (
            1,
            dict(in_channels=3, out_channels=2, kernel_size=4, stride=3, dilation=2, bias=False),
            (6,),
        ),
        (
            3,
            dict(
                in_channels=2,
                out_channels=4,
                kernel_size=(2, 3, 2),
                stride=(2, 1, 2),
                padding=(0, 1, 1),
                groups=2,
            ),
            (2, 3, 2),
        ),
    ],
    ids=["2d", "1d", "3d"],
)
def test_module_matches_torch_module(torch, n, kwargs, input_size):
    torch_layer, layer, variables = module_pair(torch, n, **kwargs)
    x = np.random.default_rng(3).standard_normal((2, kwargs["in_channels"], *input_size))
    expected = torch_layer(torch.tensor(x)).detach().numpy()
    np.testing.assert_allclose(layer.apply(variables, x), expected, rtol=1e-12, atol=1e-12)
    # The parameter tree is the state dict's: names and shapes.
    init = layer.init(jax.random.key(0), x)
    assert jax.tree_util.tree_map(jnp.shape, init["params"]) == {
        k: tuple(v.shape) for k, v in torch_layer.state_dict().items()
    }


def test_module_output_size_matches_torch(torch):
    kwargs = dict(in_channels=4, out_channels=6, kernel_size=3, stride=3, padding=1, groups=2)
    torch_layer, layer, variables = module_pair(torch, 2, **kwargs)
    x = np.random.default_rng(4).standard_normal((2, 4, 5, 4))
    for output_size in ([13, 10], [14, 12], [2, 6, 15, 11], (15, 12)):
        expected = torch_layer(torch.tensor(x), output_size=list(output_size)).detach().numpy()
        got = layer.apply(variables, x, output_size=output_size)
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
    # Unbatched: the full size is (C, H, W).
    expected = torch_layer(torch.tensor(x[0]), output_size=[6, 14, 11]).detach().numpy()
    got = layer.apply(variables, x[0], output_size=[6, 14, 11])
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


def test_module_output_size_errors(torch):
    kwargs = dict(in_channels=4, out_channels=6, kernel_size=3, stride=2, padding=1, groups=2)
    torch_layer, layer, variables = module_pair(torch, 2, **kwargs)
    x = np.zeros((2, 4, 5, 5))
    message = (
        r"ConvTranspose2d: requested an output size of \[11, 11\], but valid sizes range "
        r"from \[9, 9\] to \[10, 10\] \(for an input of \[5, 5\]\)"
    )
    with pytest.raises(ValueError, match=message):
        layer.apply(variables, x, output_size=[11, 11])
    with pytest.raises(ValueError, match="valid sizes range from"):
        torch_layer(torch.tensor(x), output_size=[11, 11])
    with pytest.raises(
        ValueError,
        match=r"ConvTranspose2D: for 4D input, output_size must have 2 or 4 elements \(got 1\)",
    ):
        layer.apply(variables, x, output_size=[10])
    with pytest.raises(ValueError, match="output_size must have 2 or 4 elements"):
        torch_layer(torch.tensor(x), output_size=[10])


def test_module_construction_errors(torch):
    x = jnp.zeros((1, 4, 3, 3))
    key = jax.random.key(0)
    cases = [
        (dict(groups=0), r"groups must be a positive integer"),
        (dict(groups=3), r"in_channels must be divisible by groups"),
        (
            dict(in_channels=6, groups=3, out_channels=4),
            r"out_channels must be divisible by groups",
        ),
        (
            dict(padding_mode="reflect"),
            r'Only "zeros" padding mode is supported for ConvTranspose2d',
        ),
    ]
    for changes, message in cases:
        kwargs = dict(in_channels=4, out_channels=6, kernel_size=3) | changes
        with pytest.raises(ValueError, match=rf"^ConvTranspose2d: {message}"):
            torch_compat.ConvTranspose2d(**kwargs).init(key, x)
        with pytest.raises(ValueError, match=message):
            torch.nn.ConvTranspose2d(**kwargs)
    with pytest.raises(
        ValueError,
        match=r"^ConvTranspose2d: PyTorch's transposed convolutions take integer padding, got "
        r"'same' \(padding='same' and 'valid' exist only for Conv\*d\)\.$",
    ):
        torch_compat.ConvTranspose2d(4, 6, 3, padding="same").init(key, x)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(in_channels=4, out_channels=6, kernel_size=-3),
        dict(in_channels=4, out_channels=6, kernel_size=(3, -1)),
        dict(in_channels=-1, out_channels=6, kernel_size=3),
        dict(in_channels=4, out_channels=-2, kernel_size=3),
    ],
    ids=["kernel_size=-3", "kernel_size=(3, -1)", "in_channels=-1", "out_channels=-2"],
)
def test_module_negative_sizes_are_refused_at_construction_as_torch_does(torch, kwargs):
    with pytest.raises(RuntimeError) as torch_error:
        torch.nn.ConvTranspose2d(**kwargs)
    with pytest.raises(ValueError) as error:
        torch_compat.ConvTranspose2d(**kwargs)
    assert str(error.value) == f"ConvTranspose2d: {torch_error.value}"


@pytest.mark.parametrize(
    "kwargs, channels",
    [
        (dict(in_channels=4, out_channels=6, kernel_size=0), 4),
        (dict(in_channels=4, out_channels=0, kernel_size=3), 4),
        (dict(in_channels=0, out_channels=6, kernel_size=3), 0),
        (dict(in_channels=4, out_channels=6, kernel_size=3, stride=0), 4),
        (dict(in_channels=4, out_channels=6, kernel_size=3, padding=-1), 4),
        (dict(in_channels=4, out_channels=6, kernel_size=3, dilation=0), 4),
        (dict(in_channels=4, out_channels=6, kernel_size=3, output_padding=-1), 4),
    ],
    ids=["kernel 0", "out 0", "in 0", "stride 0", "padding -1", "dilation 0", "output_padding -1"],
)
def test_module_zero_and_negative_sizes_are_refused_at_call_as_torch_does(torch, kwargs, channels):
    x = np.zeros((2, channels, 5, 5), np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # PyTorch: "Initializing zero-element tensors"
        torch_layer = torch.nn.ConvTranspose2d(**kwargs)
    message = _torch_message(torch, lambda: torch_layer(torch.tensor(x)))
    layer = torch_compat.ConvTranspose2d(**kwargs)
    with pytest.raises(ValueError) as error:
        layer.init(jax.random.key(0), x)
    assert str(error.value) == f"conv_transpose2d: {message}"


@pytest.mark.parametrize(
    ("n", "kwargs"),
    [
        (2, dict(in_channels=64, out_channels=32, kernel_size=(3, 5), groups=2)),
        (1, dict(in_channels=48, out_channels=64, kernel_size=4)),
        (3, dict(in_channels=40, out_channels=80, kernel_size=(2, 3, 3), groups=40)),
    ],
)
def test_module_initialisation_is_torchs(torch, n, kwargs):
    """U(-b, b), b = 1/sqrt(fan_in), fan_in from dimension 1 of the weight."""
    torch.manual_seed(0)
    torch_layer = getattr(torch.nn, f"ConvTranspose{n}d")(**kwargs)
    fan_in, _ = torch.nn.init._calculate_fan_in_and_fan_out(torch_layer.weight)
    bound = 1 / math.sqrt(fan_in)
    x = jnp.zeros((1, kwargs["in_channels"], *(1,) * n))
    params = MODULES[n](**kwargs).init(jax.random.key(0), x)["params"]
    for name in ("weight", "bias"):
        values = np.asarray(params[name]).ravel()
        torch_values = getattr(torch_layer, name).detach().numpy().ravel()
        for drawn in (values, torch_values):
            assert np.abs(drawn).max() <= bound
            assert np.abs(drawn).max() > 0.5 * bound  # Uses the range (chance 2**-32 otherwise).
    weights = np.asarray(params["weight"]).ravel()
    assert weights.size > 1000
    np.testing.assert_allclose(weights.std(), bound / math.sqrt(3), rtol=0.05)  # Uniform.
    assert abs(weights.mean()) < 0.05 * bound


def test_module_dtypes():
    layer = torch_compat.ConvTranspose2d(2, 2, 3, stride=2, param_dtype=jnp.float64)
    x = jnp.ones((1, 2, 3, 3), jnp.float32)
    variables = layer.init(jax.random.key(0), x)
    assert variables["params"]["weight"].dtype == jnp.float64
    assert layer.apply(variables, x).dtype == jnp.float64
    low = torch_compat.ConvTranspose2d(2, 2, 3, stride=2, dtype=jnp.bfloat16)
    assert low.apply(low.init(jax.random.key(0), x), x).dtype == jnp.bfloat16
