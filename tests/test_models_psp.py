"""PSP module: stream pooling sizes and shapes, stacking, segmentation head, loss."""

from __future__ import annotations

import pytest
import torch

from vidhash.models.psp import (
    PAPER_BINS,
    PSPDecoder,
    PyramidStream,
    SegmentationHead,
    segmentation_loss,
)


@pytest.mark.parametrize(("bin_size", "grid"), [(28, 1), (14, 2), (9, 3), (7, 4)])
def test_stream_pools_28x28_to_paper_grids(bin_size: int, grid: int) -> None:
    stream = PyramidStream(40, 10, bin_size).eval()
    assert stream.pool.kernel_size == bin_size and stream.pool.stride == bin_size
    x = torch.randn(2, 40, 28, 28)
    assert stream.pooled(x).shape == (2, 10, grid, grid)
    assert stream(x).shape == (2, 10, 28, 28)


def test_decoder_stacks_original_and_four_quarter_streams() -> None:
    decoder = PSPDecoder(40, 64).eval()
    assert decoder.bins == PAPER_BINS == (28, 14, 9, 7)
    x = torch.randn(2, 40, 28, 28)
    stacked, fused = decoder(x)
    assert stacked.shape == (2, 80, 28, 28)
    assert torch.equal(stacked[:, :40], x)  # the original map is part of the stack
    assert fused.shape == (2, 64, 28, 28)
    assert (fused >= 0).all()  # ReLU after the fusion conv


def test_decoder_rejects_channels_not_divisible_by_streams() -> None:
    with pytest.raises(ValueError):
        PSPDecoder(42, 64)


def test_segmentation_head_upsamples_to_mask_size_with_log_softmax() -> None:
    head = SegmentationHead(64, 5)
    fused = torch.randn(2, 64, 28, 28)
    assert head.scores(fused).shape == (2, 5, 28, 28)
    log_probs = head(fused, (224, 224))
    assert log_probs.shape == (2, 5, 224, 224)
    assert torch.allclose(log_probs.exp().sum(1), torch.ones(2, 224, 224), atol=1e-5)


def test_loss_ignores_255_pixels() -> None:
    log_probs = torch.log_softmax(torch.randn(1, 3, 8, 8), dim=1)
    masks = torch.randint(0, 3, (1, 8, 8))
    masks[0, :4] = 255
    other = masks.clone()
    other[0, :4] = 255  # same ignored region, so changing nothing real
    assert torch.isclose(segmentation_loss(log_probs, masks), segmentation_loss(log_probs, other))
    changed = masks.clone()
    changed[0, 4:] = (changed[0, 4:] + 1) % 3
    assert not torch.isclose(
        segmentation_loss(log_probs, masks), segmentation_loss(log_probs, changed)
    )
