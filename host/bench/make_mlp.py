"""Writes an MLP ONNX model (64 -> 256 -> 256 -> 10, float32, ReLU) and its MLmodel into a directory.

Usage: make_mlp.py <model dir> [SIZES], SIZES being the layer widths from input to output
(default 64,256,256,10; 20,64,32,1 is the serving benchmark's MLP).  The weights are seeded, so
every run benchmarks the same model.
"""

import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

DEFAULT_SIZES = [64, 256, 256, 10]


def main() -> None:
    out = sys.argv[1]
    sizes = [int(v) for v in sys.argv[2].split(",")] if len(sys.argv) > 2 else DEFAULT_SIZES
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(42)
    nodes, inits = [], []
    prev = "input"
    for i, (n_in, n_out) in enumerate(zip(sizes, sizes[1:])):
        w = (rng.standard_normal((n_in, n_out)) / np.sqrt(n_in)).astype(np.float32)
        b = (rng.standard_normal(n_out) * 0.1).astype(np.float32)
        inits += [numpy_helper.from_array(w, f"w{i}"), numpy_helper.from_array(b, f"b{i}")]
        last = i == len(sizes) - 2
        gemm = "output" if last else f"h{i}"
        nodes.append(helper.make_node("Gemm", [prev, f"w{i}", f"b{i}"], [gemm]))
        if not last:
            nodes.append(helper.make_node("Relu", [gemm], [f"r{i}"]))
            prev = f"r{i}"
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", sizes[0]])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", sizes[-1]])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save_model(model, os.path.join(out, "model.onnx"))
    inputs = '[{"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1, %d]}}]' % sizes[0]
    outputs = '[{"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1, %d]}}]' % sizes[-1]
    with open(os.path.join(out, "MLmodel"), "w") as f:
        f.write(
            "flavors:\n"
            "  onnx:\n"
            "    data: model.onnx\n"
            f"    onnx_version: {onnx.__version__}\n"
            "    providers: [CPUExecutionProvider]\n"
            "    onnx_session_options: null\n"
            "    code: null\n"
            "signature:\n"
            f"  inputs: '{inputs}'\n"
            f"  outputs: '{outputs}'\n"
        )


if __name__ == "__main__":
    main()
