"""Hashing nets: what learns and what stays frozen, code packing, input checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vidhash.models.backbones import get_backbone
from vidhash.models.nets import BaselineHashNet, PSPHashNet
from vidhash.train.hashing import frozen_modules


@pytest.fixture(scope="module")
def psp_net() -> PSPHashNet:
    torch.manual_seed(0)
    return PSPHashNet(get_backbone("efficientnet_lite0", "none"), 7, 32, 48, 3, width=64)


def _grads_after_step(net, **frozen: bool) -> dict[str, bool]:
    for module in frozen_modules(net, **frozen):
        for p in module.parameters():
            p.requires_grad_(False)
    net.zero_grad(set_to_none=True)
    _, logits = net(torch.rand(2, 3, 224, 224))
    torch.nn.functional.cross_entropy(logits, torch.tensor([0, 2])).backward()
    parts = {"backbone": net.backbone, "head": net.head}
    if isinstance(net, PSPHashNet):
        parts |= {"decoder": net.decoder, "seg_head": net.seg_head}
    return {
        k: any(p.grad is not None and p.grad.abs().sum() > 0 for p in m.parameters())
        for k, m in parts.items()
    }


def test_frozen_backbone_and_psp_get_no_gradient_head_does(psp_net: PSPHashNet) -> None:
    got = _grads_after_step(psp_net, freeze_backbone=True, freeze_psp=True)
    assert got == {"backbone": False, "head": True, "decoder": False, "seg_head": False}


def test_trainable_psp_learns_with_a_frozen_backbone() -> None:
    torch.manual_seed(0)
    backbone = get_backbone("efficientnet_lite0", "none")
    net = PSPHashNet(backbone, 7, 32, 48, 3, width=64, head_input="both")
    got = _grads_after_step(net, freeze_backbone=True, freeze_psp=False)
    assert got == {"backbone": False, "head": True, "decoder": True, "seg_head": True}
    # Reading only the stacked map, the class-score conv is not on the path: nothing to learn.
    net = PSPHashNet(backbone, 7, 32, 48, 3, width=64, head_input="stacked")
    got = _grads_after_step(net, freeze_backbone=True, freeze_psp=False)
    assert got == {"backbone": False, "head": True, "decoder": True, "seg_head": False}


def test_baseline_has_the_same_head_reading_the_pooled_backbone_map() -> None:
    net = BaselineHashNet(get_backbone("efficientnet_lite0", "none"), 48, 3, width=64, pool=4)
    assert net.head.fc[0].in_features == 40 * 16
    got = _grads_after_step(net, freeze_backbone=False)
    assert got == {"backbone": True, "head": True}


@pytest.mark.parametrize(("head_input", "features"), [("scores", 7), ("stacked", 80), ("both", 87)])
def test_head_input_sizes(head_input: str, features: int) -> None:
    net = PSPHashNet(get_backbone("efficientnet_lite0", "none"), 7, 32, 16, 3, 32, head_input, 2)
    net.eval()
    assert net.head.fc[0].in_features == features * 4
    assert net.features_from_map(torch.randn(1, 40, 28, 28)).shape == (1, features * 4)


@pytest.mark.parametrize("bits", [12, 48])
def test_encode_packs_thresholded_sigmoid_bits(bits: int) -> None:
    torch.manual_seed(1)
    net = BaselineHashNet(get_backbone("efficientnet_lite0", "none"), bits, 3, width=32).eval()
    images = np.random.default_rng(0).integers(0, 256, (3, 224, 224, 3), dtype=np.uint8)
    codes = net.encode(images, batch_size=2)
    assert codes.dtype == np.uint8 and codes.shape == (3, (bits + 7) // 8)
    with torch.inference_mode():
        r, _ = net(torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255)
    expected = np.packbits((r >= 0.5).numpy(), axis=1)
    assert np.array_equal(codes, expected)
    assert net.encode(images[:0]).shape == (0, (bits + 7) // 8)


def test_encode_rejects_non_uint8_rgb(psp_net: PSPHashNet) -> None:
    with pytest.raises(ValueError, match="uint8 RGB"):
        psp_net.encode(np.zeros((1, 224, 224, 3), np.float32))
    with pytest.raises(ValueError, match="uint8 RGB"):
        psp_net.encode(np.zeros((224, 224, 3), np.uint8))


def test_head_can_start_as_a_given_linear_code() -> None:
    """--init itq: the paper's FC stack begins as the PCA-ITQ code of its input, exactly."""
    from vidhash.models.nets import HashHead
    from vidhash.train.itq import fit_itq, itq_bits

    rng = np.random.default_rng(0)
    x = (rng.standard_normal((400, 64)) + 3).astype(np.float32)
    fitted = fit_itq(x, 16)
    head = HashHead(64, 16, 3, width=48)
    projected = (x - fitted.mean) @ fitted.projection
    head.init_linear_code(fitted.mean, fitted.projection, 3.0 / np.median(np.abs(projected)))
    with torch.inference_mode():
        r, _ = head.eval()(torch.from_numpy(x))
    assert np.array_equal((r >= 0.5).numpy(), itq_bits(x, fitted))
    assert 0.3 < itq_bits(x, fitted).mean() < 0.7  # centred: bits split the data
    with pytest.raises(ValueError, match="width"):
        HashHead(64, 16, 3, width=24).init_linear_code(fitted.mean, fitted.projection, 1.0)
