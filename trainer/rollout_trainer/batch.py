"""Reads a training batch file (`rollout.batch.v1`, docs/training.md) into its sequences,
checking the tensors' names, dtypes and shapes, the offsets and the metadata; a bad file is
refused with a BatchError naming the tensor or field."""
from __future__ import annotations

import json
from dataclasses import dataclass

import torch

from .safetensors import SafetensorsError, from_bytes

TENSORS = {
    "token_ids": ("I32", "T"),
    "loss_mask": ("U8", "T"),
    "logprobs": ("F32", "T"),
    "advantages": ("F32", "T"),
    "versions": ("I32", "T"),
    "seq_offsets": ("I64", "S+1"),
    "temperature": ("F32", "S"),
}
_DTYPE = {"I32": torch.int32, "U8": torch.uint8, "F32": torch.float32, "I64": torch.int64}


class BatchError(ValueError):
    pass


@dataclass
class Sequence:
    token_ids: torch.Tensor
    loss_mask: torch.Tensor
    logprobs: torch.Tensor
    advantages: torch.Tensor
    versions: torch.Tensor
    temperature: float
    info: dict


@dataclass
class Batch:
    run: str
    step: int
    sequences: list[Sequence]
    metadata: dict


def read_batch(blob: bytes, where: str = "batch") -> Batch:
    try:
        tensors, meta = from_bytes(blob, where)
    except SafetensorsError as e:
        raise BatchError(str(e)) from None
    if meta.get("format") != "rollout.batch.v1":
        raise BatchError(f"{where}: __metadata__.format is {meta.get('format')!r}, expected 'rollout.batch.v1'")
    for name, (dtype, _) in TENSORS.items():
        if name not in tensors:
            raise BatchError(f"{where}: tensor {name} is missing")
        if tensors[name].dtype != _DTYPE[dtype] or tensors[name].dim() != 1:
            raise BatchError(f"{where}: tensor {name} must be 1-D {dtype}, got {tensors[name].dtype} {list(tensors[name].shape)}")
    t = tensors["token_ids"].numel()
    for name in ("loss_mask", "logprobs", "advantages", "versions"):
        if tensors[name].numel() != t:
            raise BatchError(f"{where}: tensor {name} has {tensors[name].numel()} entries, token_ids {t}")
    offsets = tensors["seq_offsets"].tolist()
    s = len(offsets) - 1
    if s < 0 or offsets[0] != 0 or offsets[-1] != t or any(b < a for a, b in zip(offsets, offsets[1:])):
        raise BatchError(f"{where}: seq_offsets must rise from 0 to {t}, got {offsets[:5]}{'…' if len(offsets) > 5 else ''}")
    if tensors["temperature"].numel() != s:
        raise BatchError(f"{where}: tensor temperature has {tensors['temperature'].numel()} entries for {s} sequences")
    try:
        step = int(meta.get("step", ""))
    except ValueError:
        raise BatchError(f"{where}: __metadata__.step {meta.get('step')!r} is not an integer") from None
    try:
        infos = json.loads(meta.get("sequences", "[]"))
    except json.JSONDecodeError as e:
        raise BatchError(f"{where}: __metadata__.sequences is not JSON: {e}") from None
    if not isinstance(infos, list) or (infos and len(infos) != s):
        raise BatchError(f"{where}: __metadata__.sequences lists {len(infos) if isinstance(infos, list) else '?'} sequences, seq_offsets {s}")
    sequences = []
    for i in range(s):
        a, b = offsets[i], offsets[i + 1]
        temp = float(tensors["temperature"][i])
        if not temp > 0:
            raise BatchError(f"{where}: sequence {i} has temperature {temp}; log-probs need a positive one")
        sequences.append(Sequence(
            tensors["token_ids"][a:b].long(), tensors["loss_mask"][a:b].bool(), tensors["logprobs"][a:b].double(),
            tensors["advantages"][a:b].double(), tensors["versions"][a:b].long(), temp, infos[i] if infos else {},
        ))
    return Batch(meta.get("run", ""), step, sequences, meta)


def write_batch(sequences: list[dict], step: int, run: str = "local") -> bytes:
    """A batch file from sequences given as dicts of lists (token_ids, loss_mask, logprobs,
    advantages, versions) and a temperature: the layout rollout's batch projection writes, for the
    trainer's tests and the in-process experiment."""
    from .safetensors import to_bytes

    cat = lambda key, dtype: torch.tensor([x for s in sequences for x in s[key]], dtype=dtype)  # noqa: E731
    offsets = [0]
    for s in sequences:
        offsets.append(offsets[-1] + len(s["token_ids"]))
    lags: dict[int, int] = {}
    for s in sequences:
        for m, v in zip(s["loss_mask"], s["versions"]):
            if m:
                lags[step - v] = lags.get(step - v, 0) + 1
    meta = {
        "format": "rollout.batch.v1",
        "run": run,
        "step": str(step),
        "sequences": json.dumps([s.get("info", {}) for s in sequences]),
        "lags": json.dumps([{"lag": k, "tokens": n} for k, n in sorted(lags.items())]),
        "drops": "{}",
    }
    return to_bytes({
        "token_ids": cat("token_ids", torch.int32),
        "loss_mask": cat("loss_mask", torch.uint8),
        "logprobs": cat("logprobs", torch.float32),
        "advantages": cat("advantages", torch.float32),
        "versions": cat("versions", torch.int32),
        "seq_offsets": torch.tensor(offsets, dtype=torch.int64),
        "temperature": torch.tensor([float(s["temperature"]) for s in sequences], dtype=torch.float32),
    }, meta)
