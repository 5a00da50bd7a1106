"""The deep 28x28 map: multi-scale backbones, the fusion neck, nets on top, checkpoints."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import vidhash.models as vm
from vidhash.models.backbones import get_backbone
from vidhash.models.checkpoint import load_checkpoint, save_checkpoint
from vidhash.models.neck import FusionNeck
from vidhash.models.nets import BaselineHashNet, PSPHashNet, PSPSegNet

NECK = {"s8": 16, "s16": 16, "head": 32}


@pytest.fixture(scope="module")
def lite0_ms():
    return get_backbone("efficientnet_lite0_ms").eval()


def test_multi_scale_lite0_levels_and_shapes(lite0_ms) -> None:
    assert lite0_ms.levels == {"s4": 24, "s8": 40, "s16": 112, "s32": 320, "head": 1280}
    with torch.inference_mode():
        maps = lite0_ms(torch.rand(2, 3, 224, 224))
    shapes = {name: tuple(m.shape[1:]) for name, m in maps.items()}
    assert shapes == {"s4": (24, 56, 56), "s8": (40, 28, 28), "s16": (112, 14, 14),
                      "s32": (320, 7, 7), "head": (1280, 7, 7)}  # fmt: skip
    assert "ImageNet" in lite0_ms.weights_info.meta["source"]


def test_its_stride_8_map_is_the_first_shipped_backbone(lite0_ms) -> None:
    """Same weights, same layer: the multi-scale backbone's s8 is the old single map."""
    shallow = get_backbone("efficientnet_lite0").eval()
    x = torch.rand(1, 3, 224, 224)
    with torch.inference_mode():
        assert torch.allclose(lite0_ms(x)["s8"], shallow(x), atol=1e-5)


def test_neck_fuses_levels_onto_the_stride_8_grid() -> None:
    neck = FusionNeck(NECK, {"s8": 40, "s16": 112, "head": 1280}).eval()
    maps = {"s8": torch.rand(2, 40, 28, 28), "s16": torch.rand(2, 112, 14, 14),
            "head": torch.rand(2, 1280, 7, 7), "s4": torch.rand(2, 24, 56, 56)}  # fmt: skip
    assert neck(maps).shape == (2, 64, 28, 28) and neck.out_channels == 64
    with pytest.raises(ValueError, match="no level"):
        FusionNeck({"s64": 8}, {"s8": 40})


def test_nets_on_the_deep_map(lite0_ms) -> None:
    torch.manual_seed(0)
    psp = PSPHashNet(lite0_ms, 5, 16, 48, 3, width=32, head_input="stacked", pool=1,
                     neck_levels=NECK).eval()  # fmt: skip
    x = torch.rand(2, 3, 224, 224)
    with torch.inference_mode():
        assert psp.head_features(x).shape == (2, 2 * 64)  # the neck map + four 16-ch streams
        assert psp.segment(x).shape == (2, 5, 224, 224)
    baseline = BaselineHashNet(lite0_ms, 48, 3, width=32, pool=1, levels=list(NECK))
    assert baseline.head.fc[0].in_features == 40 + 112 + 1280
    seg = PSPSegNet(lite0_ms, 5, 16, NECK)
    assert seg(x).shape == (2, 5, 224, 224)
    with pytest.raises(ValueError, match="neck_levels"):
        PSPHashNet(lite0_ms, 5, 16, 48, 3, width=32)


def test_psp_net_can_read_the_baselines_levels_beside_the_psp(lite0_ms) -> None:
    """levels=...: the head reads the PSP's output and the pooled backbone levels, so the
    proposed net sees all its twin sees, plus what the PSP adds."""
    torch.manual_seed(0)
    psp = PSPHashNet(lite0_ms, 5, 16, 48, 3, width=32, pool=1, neck_levels=NECK,
                     levels=["s8", "head"]).eval()  # fmt: skip
    x = torch.rand(2, 3, 224, 224)
    with torch.inference_mode():
        maps = lite0_ms(x)
        features = psp.features_from_map(maps)
    assert features.shape == (2, 2 * 64 + 40 + 1280)
    assert torch.allclose(features[:, -1280:], maps["head"].mean((2, 3)), atol=1e-5)
    with pytest.raises(ValueError, match="levels"):
        PSPHashNet(lite0_ms, 5, 16, 48, 3, width=32, neck_levels=NECK, levels=["s64"])


def test_deep_map_checkpoints_round_trip_and_encode_deterministically(
    lite0_ms, tmp_path: Path
) -> None:
    torch.manual_seed(0)
    net = PSPHashNet(lite0_ms, 5, 16, 48, 3, width=32, head_input="stacked", pool=2,
                     neck_levels=NECK, levels=["s16"]).eval()  # fmt: skip
    header = {
        "arch": "psp", "backbone": {"name": "efficientnet_lite0_ms", "source": "test weights"},
        "classes": ["a", "b", "c"], "seg_classes": list("vwxyz"), "code_bits": 48,
        "preprocessing": {}, "head": {"width": 32, "pool": 2, "input": "stacked",
                                      "decoder_channels": 16, "neck": NECK,
                                      "levels": ["s16"]},
    }  # fmt: skip
    path = tmp_path / "deep.safetensors"
    save_checkpoint(net, path, header)
    images = np.random.default_rng(3).integers(0, 256, (3, 224, 224, 3), dtype=np.uint8)
    loaded = vm.load_model(str(path))
    first = loaded.encode(images)
    assert np.array_equal(first, net.encode(images))
    assert np.array_equal(first, loaded.encode(images))  # same input, same codes
    # The rebuilt backbone says where its weights came from, not "random".
    model, _ = load_checkpoint(path)
    assert model.backbone.weights_info.meta["source"] == "test weights"


def test_segmentation_head_can_join_a_finer_level(lite0_ms) -> None:
    """--detail s4: the fused 28x28 map is refined with the stride-4 map (DeepLabv3+)."""
    seg = PSPSegNet(lite0_ms, 5, 16, NECK, detail="s4")
    maps = {"s4": torch.rand(2, 24, 56, 56), "s8": torch.rand(2, 40, 28, 28),
            "s16": torch.rand(2, 112, 14, 14), "head": torch.rand(2, 1280, 7, 7)}  # fmt: skip
    out = seg.forward_from_features(maps, (224, 224))
    assert out.shape == (2, 5, 224, 224)
    out.mean().backward()
    assert seg.seg_head.detail[0].weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="detail level"):
        PSPSegNet(lite0_ms, 5, 16, NECK, detail="s2")
