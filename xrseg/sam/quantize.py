"""Post-training quantisation of the exported graphs with ONNX Runtime's own tools (build step)."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path


def quantize_matmuls(source: Path, target: Path) -> None:
    """Dynamic int8 quantisation of MatMul/Gemm weights (activations quantised per call, per tensor).

    Convolutions stay float32: ONNX Runtime's dynamic ConvInteger is slower than its float convolution on CPU.
    Weights are signed int8 per output channel, which keeps the error small on the attention and MLP layers.
    """
    # The quantiser logs every node at INFO on the root logger; keep the build's own log readable.
    logging.disable(logging.INFO)
    try:
        _quantize(source, target)
    finally:
        logging.disable(logging.NOTSET)


def _quantize(source: Path, target: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory(prefix="xrseg-quant-") as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
        quantize_dynamic(
            str(prepared),
            str(target),
            weight_type=QuantType.QInt8,
            op_types_to_quantize=["MatMul", "Gemm"],
            per_channel=True,
        )
