"""Hash objectives: what each term rewards, and that a few steps lower the loss."""

from __future__ import annotations

import pytest
import torch

from vidhash.errors import UsageError
from vidhash.train.objectives import HashObjective, balance, neighbourhood_kl


def test_kl_is_low_when_code_neighbourhoods_follow_the_teacher() -> None:
    torch.manual_seed(0)
    teacher = torch.randn(32, 16)
    follows = torch.sign(teacher @ torch.randn(16, 48))  # LSH codes of the teacher
    ignores = torch.sign(torch.randn(32, 48))
    assert neighbourhood_kl(follows, teacher, 0.05, 0.1) < neighbourhood_kl(
        ignores, teacher, 0.05, 0.1
    )


def test_balance_is_per_domain() -> None:
    b = torch.tensor([[1.0, 1.0], [1.0, 1.0], [-1.0, -1.0], [-1.0, -1.0]])
    assert float(balance(b)) == 0.0  # balanced over the whole batch...
    assert float(balance(b, torch.tensor([0, 0, 1, 1]))) == 1.0  # ...but not in either source


def test_paper_objective_is_cross_entropy_on_labelled_images_only() -> None:
    r = torch.rand(4, 12)
    logits = torch.randn(4, 3)
    labels = torch.tensor([0, 2, -1, -1])
    loss, parts = HashObjective("paper")(r, logits, labels)
    expected = torch.nn.functional.cross_entropy(logits[:2], labels[:2])
    assert set(parts) == {"cls"} and float(loss) == pytest.approx(float(expected))


def test_a_few_steps_lower_the_distill_loss() -> None:
    torch.manual_seed(0)
    x = torch.randn(64, 20)
    teacher = x @ torch.randn(20, 8)
    labels = torch.tensor([0, 1, -1, -1] * 16)
    net = torch.nn.Linear(20, 24)
    classifier = torch.nn.Linear(24, 2)
    opt = torch.optim.Adam([*net.parameters(), *classifier.parameters()], lr=1e-2)
    objective = HashObjective("distill")
    losses = []
    for _ in range(30):
        r = torch.sigmoid(net(x))
        loss, parts = objective(r, classifier(r), labels, teacher, torch.zeros(64, dtype=int))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert set(parts) == {"cls", "sim", "quant", "balance"}
    assert losses[-1] < 0.8 * losses[0]
    with pytest.raises(UsageError, match="objective"):
        HashObjective("triplet")
