"""Export a hashing network's inference graph to ONNX; its weights stay in the checkpoint.

Contract of a vidhash graph file (``.onnx``, opset 18):

* input ``images``: uint8 RGB crops ``(N, H, W, 3)``; outputs ``r`` ``(N, L)`` (the hash
  layer's sigmoid) and, for a model with a descriptor, ``descriptor`` ``(N, dims)``, both
  float32. The graph scales pixels to [0, 1] itself, so the runtime feeds crops as
  extraction wrote them, as :meth:`HashNet.embed` does.
* It is made by ``torch.onnx.export`` (the torch.export path, which also handles the
  adaptive pooling of ``pool > 1`` heads).
* It holds the computation only. Every checkpoint tensor the computation uses is an
  initializer named by its ``state_dict`` key and marked as external data, and the
  runtime supplies them from the checkpoint file (:mod:`vidhash.models.ort`). So the
  checkpoint stays the one weights file and its sha256 the model's identity, and a graph
  is ~200 KB, not a second copy of the weights. Batch norm stays a node (exported in the
  module's eval mode, not folded), so the tensors are the checkpoint's own, bit for bit.
* Metadata ``vidhash.model_id`` names the checkpoint it was exported from; a runtime
  refuses a graph of another model.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch

from vidhash.fsutil import atomic_write_bytes
from vidhash.models.nets import HashNet

OPSET = 18
INPUT = "images"
_PREFIX = "net."


class _Inference(torch.nn.Module):
    """uint8 NHWC crops -> (r, descriptor): exactly what :meth:`HashNet.floats` computes."""

    def __init__(self, net: HashNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, images: torch.Tensor):
        x = images.permute(0, 3, 1, 2).float().div(255.0)
        r, descriptor = self.net._embed_batch(x)
        return (r,) if descriptor is None else (r, descriptor)


def export_graph(net: HashNet, path: str | Path, model_id: str) -> Path:
    """Write ``net``'s inference graph (weights as external references) to ``path``."""
    model = _export(net)
    state = net.state_dict()
    graph = model.graph
    renames = {}
    for init in graph.initializer:
        key = init.name.removeprefix(_PREFIX)
        if key in state:
            renames[init.name] = key
    for node in graph.node:
        node.input[:] = [renames.get(name, name) for name in node.input]
        node.ClearField("metadata_props")  # the exporter's stack traces: 85% of the bytes
        node.doc_string = ""
    kept = [init for init in graph.initializer if init.name not in renames]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    graph.initializer.extend(_external(key, state[key]) for key in renames.values())
    model.metadata_props.add(key="vidhash.model_id", value=model_id)
    path = Path(path)
    atomic_write_bytes(path, model.SerializeToString())
    return path


def _export(net: HashNet):
    """The ONNX model of ``net``'s inference (torch.export; batch size dynamic)."""
    was_training = net.training
    net.eval()
    sample = torch.zeros(2, 224, 224, 3, dtype=torch.uint8, device=net.device)
    outputs = ["r"] + (["descriptor"] if net.descriptor is not None else [])
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                _Inference(net),
                (sample,),
                input_names=[INPUT],
                output_names=outputs,
                dynamic_shapes=({0: torch.export.Dim("n")},),
                opset_version=OPSET,
                dynamo=True,
                optimize=False,  # ONNX Runtime optimizes at load; batch norm stays a node
                verbose=False,
            )
    finally:
        net.train(was_training)
    return _fold(program.model_proto)


def _fold(proto):
    """Constant-fold the exporter's shape arithmetic (padding sizes, casts: 5x faster on
    ONNX Runtime), never a node that reads a weight: the tensors stay the checkpoint's
    (onnxscript's full optimizer would fold batch norm into the convolutions' weights)."""
    import onnx_ir as ir
    from onnxscript.optimizer import fold_constants, remove_unused_nodes

    model = ir.serde.deserialize_model(proto)
    weights = {name for name in model.graph.initializers if name.startswith(_PREFIX)}

    def should_fold(node) -> bool | None:
        return False if any(v is not None and v.name in weights for v in node.inputs) else None

    fold_constants(model, should_fold=should_fold)
    remove_unused_nodes(model)
    return ir.serde.serialize_model(model)


def _external(name: str, tensor: torch.Tensor):
    """An initializer entry that names ``tensor`` without holding it (float32 for floats)."""
    import onnx

    dtype = np.float32 if tensor.is_floating_point() else tensor.cpu().numpy().dtype
    entry = onnx.TensorProto(
        name=name,
        dims=list(tensor.shape),
        data_type=onnx.helper.np_dtype_to_tensor_dtype(np.dtype(dtype)),
    )
    entry.external_data.add(key="location", value="checkpoint.safetensors")
    entry.data_location = onnx.TensorProto.EXTERNAL
    return entry
