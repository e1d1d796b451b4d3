"""Shared pieces of the trainer's tests: JSON over real HTTP, and a policy taught one
demonstration by heart (so its greedy answer is a real tool call)."""
from __future__ import annotations

import json
import urllib.error
import urllib.request

import torch

from rollout_trainer.calc_task import demonstration
from rollout_trainer.model import Policy
from rollout_trainer.train import sft_example, sft_step


def http(method: str, url: str, body=None, token: str | None = None, timeout: float = 60):
    """(status, parsed JSON or raw bytes, headers)."""
    data = None if body is None else json.dumps(body).encode()
    headers = {"content-type": "application/json"} if data is not None else {}
    if token:
        headers["authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as r:
            status, raw, h = r.status, r.read(), dict(r.headers)
    except urllib.error.HTTPError as e:
        status, raw, h = e.code, e.read(), dict(e.headers)
    try:
        return status, json.loads(raw), h
    except (json.JSONDecodeError, UnicodeDecodeError):
        return status, raw, h


TASK = {"id": "t", "question": "What is 12 times 34?", "answer": "408"}


def memorized_policy(steps: int = 120, seed: int = 0) -> Policy:
    torch.manual_seed(seed)
    model = Policy()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    example = sft_example(demonstration(TASK), "demo")
    for _ in range(steps):
        sft_step(model, optimizer, [example])
    return model.eval()
