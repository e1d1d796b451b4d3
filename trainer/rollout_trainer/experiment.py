"""The learnability experiment (issue 13, point 6), in one process: warm-start the policy by SFT on
demonstrations, then GRPO on the calc task — each group's samples run as in-process episodes,
packed into a `rollout.batch.v1` file, read back and trained by the same rl_step the bridge
trainer uses — evaluating held-out Avg@8 (the mean exact match over 8 episodes per task, sampled
at the training temperature, as RL samples) along the way. Prints one JSON line per evaluation and
a summary. The defaults are the settings trainer/README.md recommends for the demo.

    python3 -m rollout_trainer.experiment --sft-steps 90 --rl-steps 60
"""
from __future__ import annotations

import argparse
import json
import random
import statistics
import time

import torch

from .batch import read_batch, write_batch
from .calc_task import HIGH, LOW, demonstration, make_tasks, operands, run_episodes
from .loss import LossConfig
from .model import ModelConfig, Policy
from .train import rl_step, sft_example, warm_start


def evaluate(model, tasks, generator, temperature: float, samples: int = 8) -> float:
    """Avg@samples: the mean exact match over `samples` episodes per task, sampled as RL samples."""
    scores, _ = run_episodes(model, [t for t in tasks for _ in range(samples)], temperature, generator)
    return sum(scores) / len(scores)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="rollout_trainer.experiment")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sft-steps", type=int, default=300)
    p.add_argument("--sft-batch", type=int, default=32)
    p.add_argument("--rl-steps", type=int, default=60)
    p.add_argument("--prompts", type=int, default=16)
    p.add_argument("--group", type=int, default=8)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--sft-lr", type=float, default=3e-3)
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--eval-every", type=int, default=10)
    p.add_argument("--heldout", type=int, default=100)
    p.add_argument("--sft-stop-at", type=float, default=0.1, help="stop the warm start once 64 train episodes reach this exact match (0: run all --sft-steps)")
    p.add_argument("--sft-stop-every", type=int, default=2)
    p.add_argument("--sft-eval-every", type=int, default=0, help="also evaluate during the warm start")
    p.add_argument("--eval-samples", type=int, default=8, help="samples per held-out task (Avg@k)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--low", type=int, default=LOW, help="smallest operand")
    p.add_argument("--high", type=int, default=HIGH, help="largest operand")
    p.add_argument("--d-model", type=int, default=ModelConfig.d_model)
    p.add_argument("--layers", type=int, default=ModelConfig.n_layers)
    p.add_argument("--heads", type=int, default=ModelConfig.n_heads)
    p.add_argument("--d-ff", type=int, default=ModelConfig.d_ff)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    rng = random.Random(a.seed)
    gen = torch.Generator().manual_seed(a.seed)
    train = make_tasks(13, 2000, "calc-train", low=a.low, high=a.high)
    heldout = make_tasks(14, a.heldout, "calc-heldout", {operands(t["question"]) for t in train}, a.low, a.high)
    demos = [sft_example(demonstration(t), t["id"]) for t in train[:512]]
    model = Policy(ModelConfig(d_model=a.d_model, n_layers=a.layers, n_heads=a.heads, d_ff=a.d_ff)).eval()
    ev = lambda: evaluate(model, heldout, gen, a.temperature, a.eval_samples)  # noqa: E731
    log = lambda r: print(json.dumps(r), flush=True)  # noqa: E731
    started = time.monotonic()
    log({"phase": "base", "params": model.parameter_count(), "heldout": ev()})
    opt = torch.optim.Adam(model.parameters(), lr=a.sft_lr)
    if a.sft_stop_at > 0:
        stop = {"tasks": train, "at": a.sft_stop_at, "every": a.sft_stop_every, "samples": 64, "seed": a.seed}
        sft = warm_start(model, opt, demos, rng, a.sft_steps, a.sft_batch, stop)
    else:
        sft = {"steps": 0}
        for i in range(a.sft_steps):
            sft = warm_start(model, opt, demos, rng, 1, a.sft_batch) | {"steps": i + 1}
            if a.sft_eval_every and (i + 1) % a.sft_eval_every == 0 and i + 1 < a.sft_steps:
                log({"phase": "sft", "steps": i + 1, "loss": sft["lastLoss"], "heldout": ev(), "seconds": round(time.monotonic() - started, 1)})
    warm = ev()
    log({"phase": "sft", "steps": sft["steps"], "loss": sft["lastLoss"], "heldout": warm, "seconds": round(time.monotonic() - started, 1), "stopEvaluations": sft.get("evaluations")})
    opt = torch.optim.Adam(model.parameters(), lr=a.lr)
    curve = []
    ratios = []
    for step in range(a.rl_steps):
        tasks = rng.sample(train, a.prompts)
        group_tasks = [t for t in tasks for _ in range(a.group)]
        scores, seqs = run_episodes(model, group_tasks, a.temperature, gen, version=step)
        kept = []
        for g in range(a.prompts):
            s = scores[g * a.group : (g + 1) * a.group]
            if max(s) - min(s) < 0.1:
                continue  # zero-variance group: no signal
            mean, std = statistics.mean(s), statistics.pstdev(s)
            for j in range(a.group):
                seq = seqs[g * a.group + j]
                adv = (s[j] - mean) / (std + 1e-6)
                seq["advantages"] = [adv if m else 0.0 for m in seq["loss_mask"]]
                kept.append(seq)
        reward = sum(scores) / len(scores)
        if not kept:
            curve.append({"step": step, "reward": reward, "groups": 0})
            continue
        batch = read_batch(write_batch(kept, step), f"step {step}")
        metrics, by_lag = rl_step(model, opt, batch, step, LossConfig())
        ratios.append(metrics["mean_ratio"])
        curve.append({"step": step, "reward": reward, "groups": len(kept) // a.group, "mean_ratio": round(metrics["mean_ratio"], 5), "clip": round(metrics["clip_fraction"], 4)})
        if (step + 1) % a.eval_every == 0:
            log({"phase": "rl", **curve[-1], "heldout": ev(), "seconds": round(time.monotonic() - started, 1)})
    final = ev()
    log({"phase": "done", "warm": warm, "final": final, "ratio_min": min(ratios, default=None), "ratio_max": max(ratios, default=None), "seconds": round(time.monotonic() - started, 1), "curve": [c["reward"] for c in curve]})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
