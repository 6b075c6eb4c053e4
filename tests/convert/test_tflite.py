import numpy as np
import pytest

from quicktune.convert.coral import coral_input_normalisation
from quicktune.convert.tflite import read_tflite
from tests.helpers import shared_path


def test_reads_mobilenet_v2_layers():
    g = read_tflite(shared_path("weights", "coral", "mobilenet_v2_1.0_224_quant.tflite"))
    assert g.input_shape == (1, 224, 224, 3)
    assert g.output_shape == (1, 1001)
    stem = g.ops[0]
    assert stem.kind == "CONV_2D" and stem.weight.shape == (32, 3, 3, 3) and stem.bias.shape == (32,)
    assert stem.stride == (2, 2) and stem.padding == "SAME" and stem.activation == "RELU6"
    assert g.ops[1].kind == "DEPTHWISE_CONV_2D" and g.ops[1].weight.shape == (1, 3, 3, 32)
    convs = [op for op in g.ops if op.kind in ("CONV_2D", "DEPTHWISE_CONV_2D")]
    # stem + first block (no expansion: dw, pw) + 16 inverted residuals (expand, dw, project) + head + logits
    assert len(convs) == 1 + 2 + 16 * 3 + 1 + 1
    # Dequantised weights are real numbers of a sensible magnitude, not raw uint8 codes.
    assert stem.weight.dtype == np.float32 and 0 < np.abs(stem.weight).max() < 50
    assert np.any(stem.weight < 0)


def test_dequantisation_follows_scale_and_zero_point():
    import tflite

    path = shared_path("weights", "coral", "mobilenet_v1_0.25_128_quant.tflite")
    data = path.read_bytes()
    model = tflite.Model.GetRootAsModel(data, 0)
    graph = model.Subgraphs(0)
    op = graph.Operators(0)
    t = graph.Tensors(op.Inputs(1))
    q = np.frombuffer(model.Buffers(t.Buffer()).DataAsNumpy().tobytes(), dtype=np.uint8).astype(np.float64)
    scale, zero = t.Quantization().ScaleAsNumpy(), t.Quantization().ZeroPointAsNumpy()
    expected = (q - zero[0]) * scale[0] if scale.size == 1 else None
    assert expected is not None
    got = read_tflite(path).ops[0].weight.reshape(-1)
    np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_input_quantisation_as_mean_and_std():
    mean, std = coral_input_normalisation(shared_path("weights", "coral", "mobilenet_v1_0.25_128_quant.tflite"))
    # uint8 q -> (q - 128) / 128, i.e. x = q / 255 normalised with mean = std = 128 / 255.
    assert mean == pytest.approx(128 / 255) and std == pytest.approx(128 / 255)


def test_garbage_is_rejected(tmp_path):
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"\x00" * 64)
    with pytest.raises(ValueError):
        read_tflite(bad)
