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


PREFERENCE_LOSSES = ("bt", "smoothing", "rdpo", "sympo")


def preference_loss(margin: torch.Tensor, kind: str = "bt", eps: float = 0.0) -> torch.Tensor:
    """Mean loss of reward margins ``h = r_chosen - r_rejected`` under a label that is wrong with probability ``eps``.

    * ``bt``: ``-log sigmoid(h)`` (Bradley-Terry; `bt_loss`).
    * ``smoothing`` (conservative DPO, cDPO): ``(1 - eps) * l(h) + eps * l(-h)`` with ``l = -log sigmoid``.
    * ``rdpo`` (Chowdhury et al. 2024, arXiv 2403.00409, the unbiased robust loss):
      ``((1 - eps) * l(h) - eps * l(-h)) / (1 - 2 eps)``; its expectation over label flips at rate ``eps`` is the
      clean loss.
    * ``sympo`` (a symmetric loss, arXiv 2505.24709): the sigmoid loss ``sigmoid(-h)``, for which
      ``l(h) + l(-h) = 1``, so symmetric flips shift the risk by a constant and do not move its minimiser.

    Example: ``preference_loss(torch.tensor([0.]), "rdpo", 0.1)`` -> ``log 2``.
    """
    if kind not in PREFERENCE_LOSSES:
        raise ValueError(f"loss must be one of {list(PREFERENCE_LOSSES)}, got {kind!r}.")
    if not 0.0 <= eps < 0.5:
        raise ValueError(f"eps must be in [0, 0.5), got {eps}.")
    nll, nll_rev = torch.nn.functional.softplus(-margin), torch.nn.functional.softplus(margin)  # -log sig(h), -log sig(-h)
    if kind == "bt":
        return nll.mean()
    if kind == "smoothing":
        return ((1 - eps) * nll + eps * nll_rev).mean()
    if kind == "rdpo":
        return (((1 - eps) * nll - eps * nll_rev) / (1 - 2 * eps)).mean()
    return torch.sigmoid(-margin).mean()
