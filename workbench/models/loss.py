"""The Bradley-Terry loss, shared by the transformer trainer and the fast embedding-head RM."""

from __future__ import annotations

import torch


def bt_loss(r_chosen: torch.Tensor, r_rejected: torch.Tensor, *, margin: torch.Tensor | None = None,
            center_coefficient: float = 0.0) -> torch.Tensor:
    """Bradley-Terry loss ``mean(-log sigmoid(r_w - r_l - margin)) + c * mean((r_w + r_l)^2)``.

    The reference formula: TRL's RewardTrainer computes exactly this (a test checks it), and the
    fast head trains with it.

    Example: ``bt_loss(torch.tensor([0.]), torch.tensor([0.]))`` -> ``log 2``.
    """
    diff = r_chosen - r_rejected - (margin if margin is not None else 0.0)
    loss = -torch.nn.functional.logsigmoid(diff).mean()
    if center_coefficient:
        loss = loss + center_coefficient * torch.mean((r_chosen + r_rejected) ** 2)
    return loss
