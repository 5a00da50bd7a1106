"""The CUDA path: the shipped nets on a GPU give the CPU's codes (skipped without a GPU)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import vidhash.models as vm

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")


@pytest.mark.parametrize("name", ["default", "default-baseline"])
def test_shipped_model_on_cuda_matches_the_cpu(name: str) -> None:
    images = np.random.default_rng(0).integers(0, 256, (70, 224, 224, 3), dtype=np.uint8)
    cpu = vm.load_model(name).encode(images)  # ONNX Runtime on the CPU
    gpu_net = vm.load_model(name, device="cuda", runtime="torch")
    assert next(gpu_net.parameters()).is_cuda
    gpu = gpu_net.encode(images)  # 70 > the GPU micro-batch: two forward passes
    assert gpu.shape == cpu.shape
    differing = np.unpackbits(cpu ^ gpu).mean()
    assert differing < 0.01, f"{differing:.2%} of bits differ between CUDA and CPU"


def test_the_default_runtime_on_cuda_runs_on_the_gpu() -> None:
    """Where ONNX Runtime has no CUDA provider, a GPU request gets torch's GPU path."""
    net = vm.load_model("default", device="cuda")
    if net.runtime == "torch":
        assert next(net.parameters()).is_cuda
    else:
        assert net.session.get_providers()[0] == "CUDAExecutionProvider"
