"""Convolutional graphs in the shapes both PyTorch exporters write, built with onnx.helper:
LeNet-5 flattened by `Flatten` (TorchScript), by `x.view(x.size(0), -1)`'s Shape → Gather →
Unsqueeze → Concat → Reshape arithmetic (TorchScript) and by a constant Reshape (dynamo, opset
18); a conv–batch-norm CNN with `BatchNormalization` nodes, `Clip(0, 6)` and global pooling as
`GlobalAveragePool` (TorchScript) or `ReduceMean` (dynamo). Each is uploaded, compared with ONNX
Runtime on the same images, trained one more epoch in kiln, and exported again to run in ONNX
Runtime to kiln's own outputs."""
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from conftest import max_abs_diff, ort_run

TOL = 1e-4
RNG = np.random.default_rng(32)


def init(name, array, dtype=np.float32):
    return numpy_helper.from_array(np.asarray(array, dtype=dtype), name)


def weights(shape, fan_in):
    return RNG.normal(scale=1 / np.sqrt(fan_in), size=shape).astype(np.float32)


def finish(nodes, inits, chw, outputs, opset):
    c, h, w = chw
    graph = helper.make_graph(
        nodes, "main_graph",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch_size", c, h, w])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch_size", outputs])],
        inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="pytorch",
                          producer_version="2.9.0")
    m.ir_version = 8 if opset < 19 else 10
    onnx.checker.check_model(m, full_check=True)
    return m


def lenet5(flatten):
    """PyTorch's tutorial LeNet-5 on 1×28×28 images (padding 2 on the first convolution)."""
    inits = [
        init("conv1.weight", weights((6, 1, 5, 5), 25)), init("conv1.bias", weights((6,), 25)),
        init("conv2.weight", weights((16, 6, 5, 5), 150)), init("conv2.bias", weights((16,), 150)),
        init("fc1.weight", weights((120, 400), 400)), init("fc1.bias", weights((120,), 400)),
        init("fc2.weight", weights((84, 120), 120)), init("fc2.bias", weights((84,), 120)),
        init("fc3.weight", weights((10, 84), 84)), init("fc3.bias", weights((10,), 84)),
    ]
    conv = lambda i, x, pad: helper.make_node(  # noqa: E731
        "Conv", [x, f"conv{i}.weight", f"conv{i}.bias"], [f"/conv{i}/Conv_output_0"], name=f"/conv{i}/Conv",
        dilations=[1, 1], group=1, kernel_shape=[5, 5], pads=[pad] * 4, strides=[1, 1])
    nodes = []
    cur = "input"
    for i, pad in [(1, 2), (2, 0)]:
        nodes += [
            conv(i, cur, pad),
            helper.make_node("Relu", [f"/conv{i}/Conv_output_0"], [f"/relu{i}/Relu_output_0"], name=f"/relu{i}/Relu"),
            helper.make_node("MaxPool", [f"/relu{i}/Relu_output_0"], [f"/pool{i}/MaxPool_output_0"],
                             name=f"/pool{i}/MaxPool", kernel_shape=[2, 2], strides=[2, 2], pads=[0, 0, 0, 0],
                             ceil_mode=0),
        ]
        cur = f"/pool{i}/MaxPool_output_0"
    opset = 17
    if flatten == "flatten":
        nodes.append(helper.make_node("Flatten", [cur], ["/Flatten_output_0"], name="/Flatten", axis=1))
    elif flatten == "view":
        inits += [init("/Constant_output_0", 0, np.int64), init("/Constant_1_output_0", [0], np.int64),
                  init("/Constant_2_output_0", [-1], np.int64)]
        nodes += [
            helper.make_node("Shape", [cur], ["/Shape_output_0"], name="/Shape"),
            helper.make_node("Gather", ["/Shape_output_0", "/Constant_output_0"], ["/Gather_output_0"],
                             name="/Gather", axis=0),
            helper.make_node("Unsqueeze", ["/Gather_output_0", "/Constant_1_output_0"], ["/Unsqueeze_output_0"],
                             name="/Unsqueeze"),
            helper.make_node("Concat", ["/Unsqueeze_output_0", "/Constant_2_output_0"], ["/Concat_output_0"],
                             name="/Concat", axis=0),
            helper.make_node("Reshape", [cur, "/Concat_output_0"], ["/Flatten_output_0"], name="/Reshape"),
        ]
    else:  # dynamo: a constant shape, opset 18
        opset = 18
        inits.append(init("val_0", [-1, 400], np.int64))
        nodes.append(helper.make_node("Reshape", [cur, "val_0"], ["/Flatten_output_0"], name="node_view"))
    cur = "/Flatten_output_0"
    for i in (1, 2, 3):
        out = "output" if i == 3 else f"/fc{i}/Gemm_output_0"
        nodes.append(helper.make_node("Gemm", [cur, f"fc{i}.weight", f"fc{i}.bias"], [out], name=f"/fc{i}/Gemm",
                                      alpha=1.0, beta=1.0, transB=1))
        if i < 3:
            nodes.append(helper.make_node("Relu", [out], [f"/relu_fc{i}/Relu_output_0"], name=f"/relu_fc{i}/Relu"))
            cur = f"/relu_fc{i}/Relu_output_0"
    return finish(nodes, inits, (1, 28, 28), 10, opset)


def conv_bn(pool):
    """Conv(3→8, no bias) → BatchNormalization → Clip(0, 6) → Conv(8→12, stride 2, groups 4) →
    BatchNormalization → Relu → global average pooling → Gemm(12→5), on 3×16×16 images."""
    opset = 18 if pool == "reducemean" else 17
    bn = lambda i, c: [  # noqa: E731
        init(f"bn{i}.weight", RNG.uniform(0.5, 1.5, c)), init(f"bn{i}.bias", RNG.normal(scale=0.1, size=c)),
        init(f"bn{i}.running_mean", RNG.normal(scale=0.2, size=c)),
        init(f"bn{i}.running_var", RNG.uniform(0.5, 2.0, c)),
    ]
    inits = [init("conv1.weight", weights((8, 3, 3, 3), 27)), *bn(1, 8),
             init("conv2.weight", weights((12, 2, 3, 3), 18)), init("conv2.bias", weights((12,), 18)), *bn(2, 12),
             init("fc.weight", weights((5, 12), 12)), init("fc.bias", weights((5,), 12)),
             init("clip_min", 0.0), init("clip_max", 6.0)]
    nodes = [
        helper.make_node("Conv", ["input", "conv1.weight"], ["c1"], name="/conv1/Conv", kernel_shape=[3, 3],
                         pads=[1, 1, 1, 1], strides=[1, 1]),
        helper.make_node("BatchNormalization", ["c1", "bn1.weight", "bn1.bias", "bn1.running_mean",
                                                "bn1.running_var"], ["n1"], name="/bn1/BatchNormalization",
                         epsilon=1e-5, momentum=0.9),
        helper.make_node("Clip", ["n1", "clip_min", "clip_max"], ["a1"], name="/act1/Clip"),
        helper.make_node("Conv", ["a1", "conv2.weight", "conv2.bias"], ["c2"], name="/conv2/Conv",
                         kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[2, 2], group=4),
        helper.make_node("BatchNormalization", ["c2", "bn2.weight", "bn2.bias", "bn2.running_mean",
                                                "bn2.running_var"], ["n2"], name="/bn2/BatchNormalization",
                         epsilon=1e-5, momentum=0.9),
        helper.make_node("Relu", ["n2"], ["a2"], name="/act2/Relu"),
    ]
    if pool == "reducemean":
        inits.append(init("axes", [-1, -2], np.int64))
        nodes.append(helper.make_node("ReduceMean", ["a2", "axes"], ["g"], name="node_mean", keepdims=0))
    else:
        nodes += [helper.make_node("GlobalAveragePool", ["a2"], ["p"], name="/pool/GlobalAveragePool"),
                  helper.make_node("Flatten", ["p"], ["g"], name="/Flatten", axis=1)]
    nodes.append(helper.make_node("Gemm", ["g", "fc.weight", "fc.bias"], ["output"], name="/fc/Gemm", transB=1))
    return finish(nodes, inits, (3, 16, 16), 5, opset)


CASES = [("lenet5-flatten", lambda: lenet5("flatten"), 10),
         ("lenet5-view", lambda: lenet5("view"), 10),
         ("lenet5-dynamo", lambda: lenet5("dynamo"), 10),
         ("conv-bn-gap", lambda: conv_bn("gap"), 5),
         ("conv-bn-reducemean", lambda: conv_bn("reducemean"), 5)]


@pytest.mark.parametrize("name,build,classes", CASES, ids=[c[0] for c in CASES])
def test_torch_shaped_cnns_match_onnx_runtime_train_and_export_again(kiln, name, build, classes):
    m = build()
    model = kiln.upload_model(m.SerializeToString(), f"{name}.onnx")
    shape = model["architecture"]["input_shape"]
    x = RNG.normal(size=(500, *shape)).astype(np.float32)
    outs, _ = ort_run(m.SerializeToString(), x)
    assert max_abs_diff(kiln.predict(model["id"], x.reshape(500, -1)), outs["output"]) <= TOL

    # One more epoch in kiln on images of the model's shape, then ONNX Runtime runs the export.
    y = np.arange(256) % classes  # every class present, so the dataset has the model's width
    ds = kiln.upload_dataset(x[:256], y, f"{name}-images")
    job = kiln.job("train", model["id"], ds["id"], {"epochs": 1, "batch_size": 32, "seed": 1})
    trained = job["result"]["model_id"]
    exported = kiln.download_onnx(trained)
    onnx.checker.check_model(onnx.load_from_string(exported), full_check=True)
    again, sess = ort_run(exported, x[256:])
    assert [i.name for i in sess.get_inputs()] == ["input"]
    want = kiln.predict(trained, x[256:].reshape(len(x) - 256, -1))
    assert max_abs_diff(list(again.values())[0], want) <= TOL
