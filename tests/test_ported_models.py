"""The gallery of ported models (``examples/ported``), each script run as a test.

Each script builds a published model in its own framework, saves it in every format
that framework offers, loads each into its Flax port with no ``mapping`` and checks
the outputs, then checks one training step against the original (see
docs/ported_models.md). The default run uses fewer channels (or a smaller input,
where the architecture allows); ``-m slow`` runs the tutorials' sizes.
"""

from __future__ import annotations

import importlib.util
import pathlib
import sys

import pytest

GALLERY = pathlib.Path(__file__).parent.parent / "examples" / "ported"


def script(name):
    """The gallery script ``name`` as a module (its directory on the path, as when run)."""
    if str(GALLERY) not in sys.path:
        sys.path.insert(0, str(GALLERY))
    spec = importlib.util.spec_from_file_location(f"ported_{name}", GALLERY / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # Flax's dataclasses look their module up there.
    spec.loader.exec_module(module)
    return module


def check(lines, formats, models):
    """Every format loaded every model, and the training step matched."""
    for file_format in formats:
        for model in models:
            assert f"{model} from {file_format}: output matches" in lines
    assert lines[-1].startswith("one training step:")


TF_FORMATS = ["tf.train.Checkpoint", ".weights.h5", ".keras", "tf_keras .h5"]


@pytest.mark.parametrize(
    "width", [pytest.param(8, id="small"), pytest.param(1, id="full", marks=pytest.mark.slow)]
)
def test_tf_dcgan(tf, tmp_path, width):
    lines = script("tf_dcgan").main(width=width, directory=tmp_path)
    check(lines, TF_FORMATS, ["generator", "discriminator"])


# At the tutorial's size (54 million parameters, batch 1), the outputs of every format
# and the loss match, but the gradients of a few entries differ from TensorFlow's by up
# to about 1% of the largest (3072 first-layer entries by up to 8e-4 of it; JAX's own
# float32 gradient differs from its float64 one by 6e-4 of it there). In float64 both
# frameworks agree to 1.8e-7 of the largest (the test after this one): the port computes
# the same gradients, and the float32 gap is rounding.
PIX2PIX_FULL = pytest.mark.xfail(
    reason="full-size pix2pix gradients differ beyond the default tolerance", strict=False
)


@pytest.mark.parametrize(
    "width",
    [
        pytest.param(16, id="small"),
        pytest.param(1, id="full", marks=[pytest.mark.slow, PIX2PIX_FULL]),
    ],
)
def test_tf_pix2pix(tf, tmp_path, width):
    lines = script("tf_pix2pix").main(width=width, directory=tmp_path)
    check(lines, TF_FORMATS, ["generator"])


@pytest.mark.slow
def test_tf_pix2pix_full_size_gradients_agree_in_float64(tf):
    """What the full-size float32 check misses is rounding: in float64 the gradients agree.

    Measured: 1.8e-7 of each leaf's largest gradient (the weights pass through
    float32 variables), against up to 1e-2 in float32.
    """
    assert script("tf_pix2pix").float64_gradient_error() < 1e-5


def test_tf_cvae(tf, tmp_path):
    """The tutorial's own sizes."""
    lines = script("tf_cvae").main(directory=tmp_path)
    check(lines, TF_FORMATS, ["decoder"])


TORCH_FORMATS = [".pt", ".safetensors", "state_dict"]


@pytest.mark.parametrize(
    "width", [pytest.param(16, id="small"), pytest.param(1, id="full", marks=pytest.mark.slow)]
)
def test_torch_dcgan(torch, tmp_path, width):
    lines = script("torch_dcgan").main(width=width, directory=tmp_path)
    check(lines, TORCH_FORMATS, ["generator"])


def test_torch_melgan(torch, tmp_path):
    """weight_norm folded into the weights before saving."""
    lines = script("torch_melgan").main(directory=tmp_path)
    check(lines, TORCH_FORMATS, ["generator"])
