"""The torch reference for `rollout merge`: the same merges computed with torch, as mergekit writes
them, so the TypeScript merge (src/programs/merge/) can be checked against an independent
implementation on random checkpoints (tests/integration/mergeTorch.test.ts).

    python3 -m rollout_trainer.merge_reference --spec '<json>'

with the spec {"method", "base", "models": [{"dir", "weight"}], "params": {...}, "out", "dtype"}
(weights and list parameters as in `rollout merge`). It reads each model folder (one
model.safetensors or shards listed by model.safetensors.index.json), merges every float tensor in
float32 and writes out/model.safetensors in the output dtype (default: the base's); other tensors
are copied from the base. DARE's keep-mask comes from the same counter-based stream as the
TypeScript side (prng.ts), drawn here with int64 tensor arithmetic.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys

import torch

from rollout_trainer.safetensors import load, save

FLOATS = {torch.float32, torch.float16, torch.bfloat16, torch.float64}
OUT_DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}
LAYER = re.compile(r"(?:^|\.)(?:layers|h|blocks)\.(\d+)(?:\.|$)")
EMBEDDING = re.compile(r"(?:^|[._])(?:embed|embeddings|embed_tokens|wte|wpe|tok_embeddings)(?:[._]|$)")
MASK32 = 0xFFFFFFFF
GOLDEN = 0x9E3779B9


def read_model(folder: str) -> dict[str, torch.Tensor]:
    single = os.path.join(folder, "model.safetensors")
    if os.path.exists(single):
        return load(single)[0]
    with open(os.path.join(folder, "model.safetensors.index.json")) as f:
        index = json.load(f)
    tensors: dict[str, torch.Tensor] = {}
    for shard in dict.fromkeys(index["weight_map"].values()):
        tensors.update(load(os.path.join(folder, shard))[0])
    return tensors


# --- parameters over layers -------------------------------------------------------------------

def layer_count(names) -> int:
    indices = [int(m.group(1)) for m in (LAYER.search(n) for n in names) if m]
    return max(indices) + 1 if indices else 0


def depth(name: str, layers: int) -> float:
    m = LAYER.search(name)
    if m is None:
        return 0.0 if EMBEDDING.search(name) else 1.0
    return 0.0 if layers <= 1 else min(1.0, int(m.group(1)) / (layers - 1))


def value_at(value, t: float) -> float:
    if not isinstance(value, list):
        return float(value)
    if len(value) == 1:
        return float(value[0])
    position = min(max(t, 0.0), 1.0) * (len(value) - 1)
    i = min(int(math.floor(position)), len(value) - 2)
    return value[i] + (value[i + 1] - value[i]) * (position - i)


# --- the seeded stream (the same numbers as src/programs/merge/prng.ts) ------------------------

def mul32(a, b: int):
    """(a * b) mod 2^32 for a 32-bit int64 tensor or int a and a 32-bit int b, without overflowing int64."""
    lo = a & 0xFFFF
    hi = (a >> 16) & 0xFFFF
    return (lo * b + (((hi * b) & 0xFFFF) << 16)) & MASK32


def mix32(h):
    h = h ^ (h >> 16)
    h = mul32(h, 0x85EBCA6B)
    h = h ^ (h >> 13)
    h = mul32(h, 0xC2B2AE35)
    return h ^ (h >> 16)


def name_hash(name: str) -> int:
    h = 0x811C9DC5
    for byte in name.encode("utf-8"):
        h = mul32(h ^ byte, 0x01000193)
    return h


def stream_key(seed: int, model: int, tensor: str) -> int:
    return mix32(name_hash(tensor) ^ mix32((seed ^ mul32(model + 1, GOLDEN)) & MASK32))


def stream_uniform(key: int, n: int) -> torch.Tensor:
    i = torch.arange(n, dtype=torch.int64)
    return mix32((key + mul32(i, GOLDEN)) & MASK32).to(torch.float64) / 4294967296.0


# --- the methods, as mergekit computes them -----------------------------------------------------

def linear(tensors, weights, normalize: bool) -> torch.Tensor:
    w = torch.tensor(weights, dtype=torch.float32).view(-1, *([1] * tensors[0].dim()))
    out = (torch.stack(tensors) * w).sum(dim=0)
    return out / w.sum() if normalize else out


def slerp(t: float, v0: torch.Tensor, v1: torch.Tensor) -> torch.Tensor:
    n0, n1 = v0.norm().item(), v1.norm().item()
    if n0 <= 1e-8 or n1 <= 1e-8:
        return (1 - t) * v0 + t * v1
    dot = ((v0 / n0) * (v1 / n1)).sum().item()
    if abs(dot) > 0.9995:
        return (1 - t) * v0 + t * v1
    omega = math.acos(dot)
    s0 = math.sin((1 - t) * omega) / math.sin(omega)
    s1 = math.sin(t * omega) / math.sin(omega)
    return s0 * v0 + s1 * v1


def magnitude(delta: torch.Tensor, density: float) -> torch.Tensor:
    if density >= 1:
        return delta
    k = int(density * delta.numel())
    flat = delta.reshape(-1)
    mask = torch.zeros_like(flat, dtype=torch.bool)
    if k > 0:
        order = torch.sort(flat.abs(), descending=True, stable=True).indices
        mask[order[:k]] = True
    return (flat * mask).reshape(delta.shape)


def random_drop(delta: torch.Tensor, density: float, rescale: str, seed: int, model: int, tensor: str) -> torch.Tensor:
    if density >= 1:
        return delta
    flat = delta.reshape(-1)
    keep = stream_uniform(stream_key(seed, model, tensor), flat.numel()) < density
    kept = flat * keep
    if rescale == "inverse":
        kept = kept / density
    elif rescale == "l1":
        after = kept.abs().double().sum().item()
        if after > 1e-12:
            kept = kept * (flat.abs().double().sum().item() / after)
    return kept.reshape(delta.shape)


def task_vectors(name, base, models, weights, method, p) -> torch.Tensor:
    density = p["density"]
    deltas = []
    for m, model in enumerate(models):
        delta = model - base
        if method == "ties":
            delta = magnitude(delta, density)
        elif method in ("dare_linear", "dare_ties"):
            delta = random_drop(delta, density, p["rescale"], p["seed"], m, name)
        deltas.append(delta)
    w = torch.tensor(weights, dtype=torch.float32).view(-1, *([1] * base.dim()))
    weighted = torch.stack(deltas) * w
    if method in ("ties", "dare_ties"):
        elected = (weighted.sum(dim=0) >= 0).to(torch.float32) * 2 - 1
        mask = (weighted.sign() == elected).to(torch.float32)
    else:
        mask = torch.ones_like(weighted)
    mixed = (weighted * mask).sum(dim=0)
    if p["normalize"]:
        divisor = (w * mask).sum(dim=0)
        divisor[divisor.abs() < 1e-8] = 1
        mixed = mixed / divisor
    return base + p["lambda"] * mixed


def merge(spec: dict) -> dict[str, torch.Tensor]:
    method = spec["method"]
    params = spec.get("params", {})
    base = read_model(spec["base"])
    models = [read_model(m["dir"]) for m in spec["models"]]
    weights = [m.get("weight", 1) for m in spec["models"]]
    layers = layer_count(base)
    normalize = params.get("normalize", method in ("linear", "ties"))
    out_dtype = OUT_DTYPES.get(spec.get("dtype") or "")
    merged = {}
    for name, tensor in base.items():
        if tensor.dtype not in FLOATS:
            merged[name] = tensor
            continue
        t = depth(name, layers)
        b = tensor.to(torch.float32)
        others = [m[name].to(torch.float32) for m in models]
        ws = [value_at(w, t) for w in weights]
        if method == "linear":
            result = linear([b, *others], [value_at(params.get("base_weight", 1), t), *ws], normalize)
        elif method == "slerp":
            result = slerp(value_at(params.get("t", weights[0]), t), b, others[0])
        else:
            p = {
                "density": value_at(params.get("density", 1), t),
                "lambda": value_at(params.get("lambda", 1), t),
                "normalize": normalize,
                "rescale": params.get("rescale", "l1"),
                "seed": params.get("seed", 0),
            }
            result = task_vectors(name, b, others, ws, method, p)
        merged[name] = result.to(out_dtype or tensor.dtype)
    return merged


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m rollout_trainer.merge_reference")
    parser.add_argument("--spec", required=True, help="the merge as JSON: method, base, models, params, out, dtype")
    spec = json.loads(parser.parse_args(argv).spec)
    merged = merge(spec)
    os.makedirs(spec["out"], exist_ok=True)
    save(os.path.join(spec["out"], "model.safetensors"), merged, {"format": "pt"})
    print(json.dumps({"out": spec["out"], "tensors": len(merged)}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
