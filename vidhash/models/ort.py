"""The hashing network on ONNX Runtime: the inference runtime, no torch needed.

:class:`OrtHashNet` has :class:`vidhash.models.nets.HashNet`'s inference face (``embed``,
``encode``, ``floats``, ``model_id``, ``code_bits``, ``descriptor_dims``, ``classes``,
``config``) and runs the graph of :mod:`vidhash.models.graph` with the checkpoint's own
tensors, handed to ONNX Runtime from memory (``add_external_initializers``), so nothing
is written or converted on disk.

Threads: ``threads`` intra-op threads (ONNX Runtime's default: one per physical core).
``spin=False`` stops idle pool threads from spinning, which matters where the same cores
also decode video (the index pipeline); a lone encode keeps spinning, its fastest setting.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vidhash.errors import CheckpointError
from vidhash.models.encoder import (
    CPU_MICRO_BATCH,
    GPU_MICRO_BATCH,
    Embedding,
    Floats,
    embed_batches,
)
from vidhash.models.header import one_line, read_header, read_tensors

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"


def providers(device: str) -> list:
    """ONNX Runtime's providers for a torch-style device name (``cpu``, ``cuda``, ``cuda:1``)."""
    import onnxruntime as ort

    if device == "cpu":
        return [CPU]
    if device.startswith("cuda") and CUDA in ort.get_available_providers():
        index = int(device.partition(":")[2] or 0)
        return [(CUDA, {"device_id": index}), CPU]
    raise CheckpointError(f"ONNX Runtime here cannot run on {device} (no {CUDA})")


class OrtHashNet:
    """A hashing checkpoint run by ONNX Runtime (same codes as the torch module)."""

    runtime = "onnx"

    def __init__(self, session, header: dict, model_id: str, model_name: str, device: str):
        self.session = session
        self.config = header
        self.classes = list(header.get("classes", []))
        self.model_id = model_id
        self.model_name = model_name
        self.device = device
        self.code_bits = int(header["code_bits"])
        self.descriptor_dims = int((header.get("descriptor") or {}).get("dims", 0))
        self._outputs = [o.name for o in session.get_outputs()]

    @classmethod
    def load(
        cls,
        checkpoint: str | Path,
        graph: bytes,
        *,
        header: dict | None = None,
        model_id: str,
        model_name: str,
        device: str = "cpu",
        threads: int | None = None,
        spin: bool = True,
    ) -> OrtHashNet:
        """The checkpoint's tensors bound into ``graph`` (a graph of another model is refused);
        ``header``: the checkpoint's, when the caller has read it already."""
        import onnxruntime as ort

        header = header if header is not None else read_header(checkpoint)
        tensors = read_tensors(checkpoint)
        options = ort.SessionOptions()
        options.log_severity_level = 3  # unused tensors (e.g. the segmentation head) are fine
        if threads:
            options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
        names = external_names(graph)
        missing = sorted(set(names) - set(tensors))
        if missing:
            raise CheckpointError(f"{checkpoint} lacks tensors its ONNX graph needs: {missing[:3]}")
        values = [ort.OrtValue.ortvalue_from_numpy(tensors[name]) for name in names]
        options.add_external_initializers(names, values)
        try:
            session = ort.InferenceSession(graph, options, providers=providers(device))
        except Exception as exc:  # noqa: BLE001 - a graph that does not fit these tensors
            raise CheckpointError(
                f"{checkpoint}: its ONNX graph does not fit its tensors ({one_line(exc)})"
            ) from exc
        made_for = session.get_modelmeta().custom_metadata_map.get("vidhash.model_id")
        if made_for != model_id:
            raise CheckpointError(
                f"the ONNX graph for {checkpoint} was exported from another model "
                f"({(made_for or 'unknown')[:12]}, not {model_id[:12]})"
            )
        net = cls(session, header, model_id, model_name, device)
        net._values = values  # ONNX Runtime reads them for the session's lifetime
        return net

    def floats(self, images: np.ndarray) -> Floats:
        """One micro-batch of uint8 crops -> (r, descriptors) float32."""
        out = self.session.run(self._outputs, {"images": images})
        return out[0], (out[1] if len(out) > 1 else None)

    def embed(self, images: np.ndarray, batch_size: int | None = None) -> Embedding:
        """uint8 RGB (N,H,W,3) crops -> codes and descriptors (micro-batches of 4 on CPU)."""
        if batch_size is None:
            batch_size = CPU_MICRO_BATCH if self.device == "cpu" else GPU_MICRO_BATCH
        return embed_batches(images, batch_size, self.code_bits, self.descriptor_dims, self.floats)

    def encode(self, images: np.ndarray, batch_size: int | None = None) -> np.ndarray:
        """uint8 RGB (N,H,W,3) crops -> packed codes (N, ceil(L/8))."""
        return self.embed(images, batch_size).codes


def external_names(graph: bytes) -> list[str]:
    """Names of the graph's initializers stored as external data: the tensors the runtime
    must supply (ONNX Runtime drops unused initializers, so only these may be handed in).

    Reads the protobuf wire format directly (ModelProto.graph = 7, GraphProto.initializer
    = 5, TensorProto.name = 8, TensorProto.data_location = 14): importing the ``onnx``
    package for this would cost over a second of start-up.
    """
    names = []
    for field, value in _fields(graph):
        if field != 7:
            continue
        for g_field, tensor in _fields(value):
            if g_field != 5:
                continue
            parts = dict(_fields(tensor))
            if parts.get(14) == 1:  # TensorProto.EXTERNAL
                names.append(parts[8].decode())
    return names


def _fields(data: bytes):
    """(field number, value) of one protobuf message: ints for varints, bytes otherwise."""
    pos, end = 0, len(data)
    while pos < end:
        key, pos = _varint(data, pos)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 2:
            size, pos = _varint(data, pos)
            value, pos = data[pos : pos + size], pos + size
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            value, pos = data[pos : pos + size], pos + size
        else:
            raise CheckpointError(f"not an ONNX graph (protobuf wire type {wire})")
        yield field, value


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[pos]
        value |= (byte & 0x7F) << shift
        pos, shift = pos + 1, shift + 7
        if byte < 0x80:
            return value, pos
