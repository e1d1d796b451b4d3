"""rollout_trainer: a toy policy for `rollout`'s RL loop on CPU — a small causal transformer with its
own vocabulary and chat template, a policy server speaking the subset of vLLM's API the inference
pool uses, and a trainer that takes batches from the trainer bridge (see docs/training.md)."""
