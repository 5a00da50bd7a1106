"""Backbones: stride-8 maps, real pretrained Lite0, strict file loading, clear errors."""

from __future__ import annotations

import urllib.error
from pathlib import Path

import pytest
import torch
import torchvision.models as tvm

from vidhash.errors import WeightsNotFoundError
from vidhash.models.backbones import get_backbone, list_backbones
from vidhash.models.lite import efficientnet_lite0_full
from vidhash.transforms import center_crop_resize


def test_registry_lists_the_three_backbones() -> None:
    assert {"vgg16", "resnet50", "efficientnet_lite0"} <= set(list_backbones())
    with pytest.raises(WeightsNotFoundError, match="unknown backbone"):
        get_backbone("alexnet")


def test_pretrained_lite0_sees_a_cat_in_chelsea() -> None:
    skimage_data = pytest.importorskip("skimage.data")
    crop = center_crop_resize(skimage_data.chelsea(), 224)
    x = torch.from_numpy(crop).permute(2, 0, 1)[None].float()
    x = (x - 127.0) / 128.0  # the TF EfficientNet-Lite input scaling
    net = efficientnet_lite0_full("default").eval()
    with torch.inference_mode():
        top5 = net(x).topk(5).indices[0].tolist()
    assert set(top5) & {281, 282, 283, 284, 285}, top5  # ImageNet's domestic cats


def test_lite0_backbone_gives_28x28x40_and_normalises_inside() -> None:
    backbone = get_backbone("efficientnet_lite0").eval()
    assert backbone.out_channels == 40
    x = torch.rand(1, 3, 224, 224)
    with torch.inference_mode():
        assert backbone(x).shape == (1, 40, 28, 28)
    assert torch.allclose(backbone.mean.flatten(), torch.full((3,), 127 / 255))
    assert backbone.weights_info.transforms()["std"] == [128 / 255] * 3


def test_lite0_random_init_only_when_asked() -> None:
    pretrained = get_backbone("efficientnet_lite0")
    random = get_backbone("efficientnet_lite0", weights="none")
    a = pretrained.body._conv_stem.weight
    b = random.body._conv_stem.weight
    assert a.shape == b.shape and not torch.equal(a, b)


@pytest.mark.parametrize(("name", "builder"), [("resnet50", tvm.resnet50), ("vgg16", tvm.vgg16)])
def test_torchvision_backbones_load_a_state_dict_file(tmp_path: Path, name: str, builder) -> None:
    torch.manual_seed(0)
    full = builder(weights=None)
    path = tmp_path / f"{name}.pth"
    torch.save(
        {k: v.half() if v.is_floating_point() else v for k, v in full.state_dict().items()}, path
    )
    del full
    backbone = get_backbone(name, weights=path).eval()
    saved = torch.load(path, weights_only=True)
    first_conv = next(k for k in saved if k.endswith("weight") and saved[k].ndim == 4)
    assert torch.equal(next(backbone.body.parameters()).half(), saved[first_conv])
    with torch.inference_mode():
        assert backbone(torch.rand(1, 3, 224, 224)).shape == (1, 512, 28, 28)


def test_mismatched_or_missing_weights_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(WeightsNotFoundError, match="not found"):
        get_backbone("resnet50", weights=tmp_path / "nope.pth")
    wrong = tmp_path / "wrong.pth"
    torch.save({"conv.weight": torch.zeros(1)}, wrong)
    with pytest.raises(WeightsNotFoundError, match="do not match"):
        get_backbone("resnet50", weights=wrong)


def test_offline_default_torchvision_weights_say_how_to_supply_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    with pytest.raises(WeightsNotFoundError, match="--backbone-weights PATH"):
        get_backbone("resnet50")
