"""AgentRL's policy loss with a dual clip (REFERENCE §6, issue 13), per token over loss_mask:

    r = exp(logπθ − logπ_behaviour)                       (both at the sampling temperature)
    pg = −min(r·A, clip(r, 1 − ε, 1 + ε + ε_high)·A)      ε = 0.2, ε_high = 0.1: band [0.8, 1.3]
    masked: (r > 1 + (ε + ε_high)·cap and A > 0) or (r < 1 − ε·cap and A < 0), cap = 4
    dual clip: for A < 0, pg ≤ c·|A| (c = 3), bounding the case AgentRL leaves unbounded (r ≫ 1)
    loss = Σ pg over trained tokens / number of loss_mask tokens (token mean)

Masked tokens already have zero gradient under the min; dropping them keeps them out of the
clip statistics too. The cross-entropy of the warm start is here as well.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class LossConfig:
    eps: float = 0.2
    eps_high: float = 0.1
    cap: float = 4.0
    dual_clip: float = 3.0


def policy_loss(logp: torch.Tensor, old_logp: torch.Tensor, adv: torch.Tensor, mask: torch.Tensor, c: LossConfig = LossConfig()):
    """logp, old_logp, adv, mask: aligned 1-D tensors over tokens (mask 1 = trains). Returns
    (loss, stats) where stats holds the ratio and the per-token flags (clipped, masked, dual)."""
    mask = mask.bool()
    ratio = torch.exp(logp - old_logp)
    low, high = 1 - c.eps, 1 + c.eps + c.eps_high
    unclipped = ratio * adv
    clipped = ratio.clamp(low, high) * adv
    pg = -torch.min(unclipped, clipped)
    dual = (adv < 0) & (pg > c.dual_clip * adv.abs())
    pg = torch.where(dual, c.dual_clip * adv.abs(), pg)
    out_of_band = ((ratio > 1 + (c.eps + c.eps_high) * c.cap) & (adv > 0)) | ((ratio < 1 - c.eps * c.cap) & (adv < 0))
    trained = mask & ~out_of_band
    count = mask.sum().clamp(min=1)
    loss = (pg * trained).sum() / count
    is_clipped = mask & ~out_of_band & ~dual & (clipped < unclipped)
    stats = {
        "ratio": ratio.detach(),
        "trained": trained,
        "masked": mask & out_of_band,
        "clipped": is_clipped,
        "dual": mask & dual & ~out_of_band,
        "count": int(mask.sum()),
    }
    return loss, stats


def token_logprobs(logits: torch.Tensor, ids: torch.Tensor, temperature: torch.Tensor | float = 1.0):
    """Log-probs of ids[:, 1:] under logits[:, :-1] / temperature, and the entropies there."""
    t = temperature if isinstance(temperature, float) else temperature.view(-1, 1, 1)
    logp_all = torch.log_softmax(logits[:, :-1].double() / t, -1)
    logp = logp_all.gather(-1, ids[:, 1:].unsqueeze(-1)).squeeze(-1)
    entropy = -(logp_all.exp() * logp_all).sum(-1)
    return logp, entropy
