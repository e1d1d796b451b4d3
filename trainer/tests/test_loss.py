"""AgentRL's loss with the dual clip, by hand: each case's ratio, advantage and expected per-token
loss worked out on paper (band [0.8, 1.3]; masked beyond 2.2 for A > 0 and below 0.2 for A < 0;
−r·A bounded by 3|A| for A < 0; token mean over loss_mask)."""
import math
import unittest

import torch

from rollout_trainer.loss import LossConfig, policy_loss, token_logprobs


def case(ratios, advs, mask=None):
    r = torch.tensor(ratios, dtype=torch.float64)
    logp = torch.log(r).requires_grad_(True)
    old = torch.zeros_like(r)
    adv = torch.tensor(advs, dtype=torch.float64)
    m = torch.tensor(mask if mask is not None else [1] * len(ratios))
    loss, stats = policy_loss(logp, old, adv, m)
    loss.backward()
    return loss.item(), stats, logp.grad


class LossTest(unittest.TestCase):
    def test_inside_the_band_is_plain_policy_gradient(self):
        loss, stats, grad = case([1.0, 1.1], [2.0, -1.0])
        # −(1·2) and −(1.1·−1) = 1.1 → mean (−2 + 1.1) / 2
        self.assertAlmostEqual(loss, (-2 + 1.1) / 2)
        self.assertEqual(int(stats["clipped"].sum()), 0)
        # d/dlogp of −r·A/2 is −r·A/2
        self.assertAlmostEqual(grad[0].item(), -1.0)
        self.assertAlmostEqual(grad[1].item(), 0.55)

    def test_asymmetric_clip_bounds(self):
        # A > 0 clips above 1 + ε + ε_high = 1.3; A < 0 clips below 1 − ε = 0.8.
        loss, stats, grad = case([1.5, 0.5], [1.0, -1.0])
        self.assertAlmostEqual(loss, (-1.3 + 0.8) / 2)
        self.assertEqual(stats["clipped"].tolist(), [True, True])
        self.assertEqual(grad.tolist(), [0.0, 0.0])
        # The other sides are not clipped: A > 0 at r = 0.5 keeps r·A; A < 0 at r = 1.25 keeps r·A.
        loss, stats, _ = case([0.5, 1.25], [1.0, -1.0])
        self.assertAlmostEqual(loss, (-0.5 + 1.25) / 2)
        self.assertEqual(int(stats["clipped"].sum()), 0)
        # 1.25 is within the upper band for A > 0 (not clipped at 1.2 as a symmetric ε would).
        loss, stats, _ = case([1.25], [1.0])
        self.assertAlmostEqual(loss, -1.25)

    def test_tokens_outside_the_capped_band_are_masked(self):
        # r = 2.5 > 1 + 0.3·4 = 2.2 with A > 0; r = 0.1 < 1 − 0.2·4 = 0.2 with A < 0.
        loss, stats, grad = case([2.5, 0.1, 1.0], [1.0, -1.0, 1.0])
        self.assertEqual(stats["masked"].tolist(), [True, True, False])
        # Only the third token counts, divided by all 3 loss_mask tokens.
        self.assertAlmostEqual(loss, -1.0 / 3)
        self.assertEqual(grad[:2].tolist(), [0.0, 0.0])
        # Just inside the cap: clipped, not masked.
        _, stats, _ = case([2.1], [1.0])
        self.assertEqual((stats["masked"].item(), stats["clipped"].item()), (False, True))

    def test_dual_clip_bounds_negative_advantages_with_huge_ratios(self):
        loss, stats, grad = case([10.0, 2.0], [-1.0, -1.0])
        # −min(10·−1, 1.3·−1) = 10 → bounded by 3·|−1| = 3; r = 2: −min(−2, −1.3) = 2 stays.
        self.assertAlmostEqual(loss, (3 + 2) / 2)
        self.assertEqual(stats["dual"].tolist(), [True, False])
        self.assertEqual(grad[0].item(), 0.0)
        self.assertAlmostEqual(grad[1].item(), 1.0)

    def test_token_mean_over_loss_mask(self):
        loss, stats, grad = case([1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 5.0, 5.0], mask=[1, 1, 0, 0])
        self.assertAlmostEqual(loss, -1.0)
        self.assertEqual(stats["count"], 2)
        self.assertEqual(grad[2:].tolist(), [0.0, 0.0])

    def test_custom_bounds(self):
        r = torch.tensor([1.3], dtype=torch.float64)
        loss, _ = policy_loss(torch.log(r), torch.zeros(1, dtype=torch.float64), torch.ones(1, dtype=torch.float64), torch.ones(1), LossConfig(eps=0.1, eps_high=0.0))
        self.assertAlmostEqual(loss.item(), -1.1)

    def test_token_logprobs_shift_by_one_at_temperature(self):
        logits = torch.tensor([[[0.0, math.log(3.0)], [math.log(3.0), 0.0], [0.0, 0.0]]])
        ids = torch.tensor([[1, 1, 0]])
        logp, entropy = token_logprobs(logits, ids, 1.0)
        self.assertAlmostEqual(logp[0, 0].item(), math.log(0.75))
        self.assertAlmostEqual(logp[0, 1].item(), math.log(0.75))
        logp, _ = token_logprobs(logits, ids, torch.tensor([2.0]))
        p = math.sqrt(3) / (math.sqrt(3) + 1)
        self.assertAlmostEqual(logp[0, 0].item(), math.log(p))
        self.assertEqual(entropy.shape, (1, 2))


if __name__ == "__main__":
    unittest.main()
