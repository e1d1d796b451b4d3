"""The policy: a small causal transformer (pre-norm, learned positions, tied embeddings) over the
vocabulary of vocab.py, with sampling that returns the log-probability of each sampled token
under exactly the distribution it was drawn from (logits / temperature), and checkpoints as a
directory `model.safetensors` + `config.json` (the dimensions and the vocabulary).
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from . import safetensors
from .vocab import VOCAB, Vocabulary


@dataclass
class ModelConfig:
    vocab_size: int = VOCAB.size
    d_model: int = 64
    n_layers: int = 2
    n_heads: int = 4
    d_ff: int = 128
    max_len: int = 256


class Block(nn.Module):
    def __init__(self, c: ModelConfig):
        super().__init__()
        self.n_heads = c.n_heads
        self.ln1 = nn.LayerNorm(c.d_model)
        self.qkv = nn.Linear(c.d_model, 3 * c.d_model)
        self.proj = nn.Linear(c.d_model, c.d_model)
        self.ln2 = nn.LayerNorm(c.d_model)
        self.ff1 = nn.Linear(c.d_model, c.d_ff)
        self.ff2 = nn.Linear(c.d_ff, c.d_model)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, kv_out: list | None = None) -> torch.Tensor:
        """x [B, T, d] under the causal mask; appends this layer's keys and values [B, h, T, d/h]
        to kv_out when given (the cache a generation continues from)."""
        b, t, d = x.shape
        h = self.n_heads
        q, k, v = self.qkv(self.ln1(x)).split(d, dim=-1)
        q, k, v = (z.view(b, t, h, d // h).transpose(1, 2) for z in (q, k, v))
        if kv_out is not None:
            kv_out.append((k, v))
        att = (q @ k.transpose(-2, -1)) / math.sqrt(d // h)
        att = att.masked_fill(mask[:t, :t], float("-inf")).softmax(-1)
        return self.finish(x, (att @ v).transpose(1, 2).reshape(b, t, d))

    def finish(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        x = x + self.proj(y)
        return x + self.ff2(F.gelu(self.ff1(self.ln2(x))))

    def decode(self, x: torch.Tensor, caches: list) -> torch.Tensor:
        """One new token per row, x [B, 1, d], attending to its row's cached keys and values
        (caches[i] = (k, v), each [h, L_i, d/h], extended in place in the list by this token's)."""
        b, _, d = x.shape
        h = self.n_heads
        q, k, v = self.qkv(self.ln1(x)).split(d, dim=-1)
        q, k, v = (z.view(b, 1, h, d // h).transpose(1, 2) for z in (q, k, v))
        for i in range(b):
            caches[i] = (torch.cat([caches[i][0], k[i]], 1), torch.cat([caches[i][1], v[i]], 1))
        width = max(c[0].shape[1] for c in caches)
        keys = x.new_zeros((b, h, width, d // h))
        values = x.new_zeros((b, h, width, d // h))
        pad = torch.ones((b, 1, 1, width), dtype=torch.bool)
        for i, (ck, cv) in enumerate(caches):
            n = ck.shape[1]
            keys[i, :, :n], values[i, :, :n], pad[i, ..., :n] = ck, cv, False
        att = ((q @ keys.transpose(-2, -1)) / math.sqrt(d // h)).masked_fill(pad, float("-inf")).softmax(-1)
        return self.finish(x, (att @ values).transpose(1, 2).reshape(b, 1, d))


class Policy(nn.Module):
    def __init__(self, config: ModelConfig | None = None):
        super().__init__()
        c = self.config = config or ModelConfig()
        self.tok = nn.Embedding(c.vocab_size, c.d_model)
        self.pos = nn.Embedding(c.max_len, c.d_model)
        self.blocks = nn.ModuleList(Block(c) for _ in range(c.n_layers))
        self.ln = nn.LayerNorm(c.d_model)
        self.register_buffer("mask", torch.triu(torch.ones(c.max_len, c.max_len, dtype=torch.bool), 1), persistent=False)
        nn.init.normal_(self.tok.weight, std=0.02)
        nn.init.normal_(self.pos.weight, std=0.02)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """Logits [B, T, V] for ids [B, T] (T ≤ max_len)."""
        t = ids.shape[1]
        if t > self.config.max_len:
            raise ValueError(f"a sequence of {t} tokens is longer than the model's max_len {self.config.max_len}")
        x = self.tok(ids) + self.pos(torch.arange(t))
        for block in self.blocks:
            x = block(x, self.mask)
        return self.ln(x) @ self.tok.weight.T

    @torch.no_grad()
    def prefill(self, rows: list[list[int]]) -> tuple[torch.Tensor, list[list]]:
        """Runs rows (padded on the right) through the model: the logits after each row's last
        token [B, V], and each row's cache (per layer (k, v), each [h, L_i, d/h]) for decode."""
        lengths = [len(r) for r in rows]
        ids = torch.zeros((len(rows), max(lengths)), dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = torch.tensor(r)
        kv: list = []
        x = self.tok(ids) + self.pos(torch.arange(ids.shape[1]))
        for block in self.blocks:
            x = block(x, self.mask, kv)
        last = self.ln(x[torch.arange(len(rows)), torch.tensor(lengths) - 1]) @ self.tok.weight.T
        caches = [[(k[i, :, :n], v[i, :, :n]) for k, v in kv] for i, n in enumerate(lengths)]
        return last, caches

    @torch.no_grad()
    def decode(self, tokens: list[int], caches: list[list]) -> torch.Tensor:
        """Appends one token to each row whose cache prefill/decode returned: the logits after it
        [B, V]; each row's cache (caches[i], per layer) is extended in place. The same function as
        forward over the whole row, computed incrementally (equal up to float rounding)."""
        positions = torch.tensor([c[0][0].shape[1] for c in caches])
        if int(positions.max()) >= self.config.max_len:
            raise ValueError(f"a sequence would pass the model's max_len {self.config.max_len}")
        x = (self.tok(torch.tensor(tokens)) + self.pos(positions)).unsqueeze(1)
        for layer, block in enumerate(self.blocks):
            per_row = [c[layer] for c in caches]
            x = block.decode(x, per_row)
            for c, kv in zip(caches, per_row):
                c[layer] = kv
        return self.ln(x[:, 0]) @ self.tok.weight.T

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.parameters())

    @torch.no_grad()
    def sample(self, prompt: list[int], max_tokens: int, temperature: float, stop_ids: set[int], generator: torch.Generator | None = None):
        """Samples up to max_tokens after prompt (stops after a stop id, which is kept, or at
        max_len). Returns (ids, logprobs, finish_reason); each log-prob is that of the sampled id
        under softmax(logits / temperature), the distribution it was drawn from (greedy at 0,
        reported under temperature 1)."""
        ids = list(prompt)
        out, logprobs = [], []
        finish = "length"
        for _ in range(max_tokens):
            if len(ids) >= self.config.max_len:
                break
            logits = self(torch.tensor([ids]))[0, -1].double()
            if temperature > 0:
                logp = torch.log_softmax(logits / temperature, -1)
                token = int(torch.multinomial(logp.exp(), 1, generator=generator))
            else:
                logp = torch.log_softmax(logits, -1)
                token = int(logits.argmax())
            out.append(token)
            logprobs.append(float(logp[token]))
            ids.append(token)
            if token in stop_ids:
                finish = "stop"
                break
        return out, logprobs, finish


def save_checkpoint(model: Policy, directory: str, version: str, vocab: Vocabulary = VOCAB) -> str:
    """Writes `directory/model.safetensors` and `config.json` (atomically, by rename); the file's path."""
    os.makedirs(directory, exist_ok=True)
    tensors = {name: p.detach().float() for name, p in model.state_dict().items()}
    path = os.path.join(directory, "model.safetensors")
    safetensors.save(path + ".tmp", tensors, {"format": "pt", "version": version})
    os.replace(path + ".tmp", path)
    with open(os.path.join(directory, "config.json.tmp"), "w") as f:
        json.dump({"model": asdict(model.config), "vocabulary": vocab.to_json(), "version": version}, f, indent=1)
    os.replace(os.path.join(directory, "config.json.tmp"), os.path.join(directory, "config.json"))
    return path


def load_checkpoint(path: str) -> tuple[Policy, str | None]:
    """A model from a checkpoint directory (or its .safetensors file, config.json beside it)."""
    directory = path if os.path.isdir(path) else os.path.dirname(path)
    file = os.path.join(directory, "model.safetensors") if os.path.isdir(path) else path
    with open(os.path.join(directory, "config.json")) as f:
        config = json.load(f)
    model = Policy(ModelConfig(**config["model"]))
    load_weights(model, file)
    model.eval()
    return model, config.get("version")


def load_weights(model: Policy, file: str) -> None:
    """Loads a .safetensors file into model; a missing, extra or misshapen tensor is refused, naming it."""
    tensors, _ = safetensors.load(file)
    own = model.state_dict()
    missing = sorted(set(own) - set(tensors))
    extra = sorted(set(tensors) - set(own))
    if missing or extra:
        raise ValueError(f"{file}: missing tensors {missing}, unexpected tensors {extra}")
    for name, tensor in tensors.items():
        if tuple(tensor.shape) != tuple(own[name].shape):
            raise ValueError(f"{file}: tensor {name} has shape {list(tensor.shape)}, the model needs {list(own[name].shape)}")
    model.load_state_dict({k: v.float() for k, v in tensors.items()})


@torch.no_grad()
def sample_batch(model: Policy, prompts: list[list[int]], max_tokens: int, temperature: float, stop_ids: set[int], generator: torch.Generator | None = None):
    """model.sample for many prompts at once: one prefill of the prompts (padded on the right;
    causal attention keeps each row's logits those of its own tokens), then one decode step per
    token for the rows still live. Returns per prompt (ids, logprobs, finish_reason)."""
    outs = [([], [], "length") for _ in prompts]
    live = [i for i in range(len(prompts)) if len(prompts[i]) < model.config.max_len]
    if not live or max_tokens < 1:
        return outs
    last, caches = model.prefill([list(prompts[i]) for i in live])
    lengths = {i: len(prompts[i]) for i in live}
    for _ in range(max_tokens):
        logp = torch.log_softmax(last.double() / temperature, -1)
        tokens = torch.multinomial(logp.exp(), 1, generator=generator).squeeze(-1)
        keep = []
        for r, i in enumerate(live):
            token = int(tokens[r])
            outs[i][0].append(token)
            outs[i][1].append(float(logp[r, token]))
            lengths[i] += 1
            if token in stop_ids:
                outs[i] = (outs[i][0], outs[i][1], "stop")
            elif lengths[i] < model.config.max_len:
                keep.append(r)
        if not keep or len(outs[live[keep[0]]][0]) >= max_tokens:
            break
        live = [live[r] for r in keep]
        caches = [caches[r] for r in keep]
        last = model.decode([outs[i][0][-1] for i in live], caches)
    return outs
