"""A small safetensors reader and writer (no library): the checkpoint format between the trainer
and the policy server, and the format of the bridge's batch files (docs/training.md).

Layout: an 8-byte little-endian header length N, N bytes of JSON (`{name: {dtype, shape,
data_offsets}, "__metadata__": {str: str}}`), then the tensors' bytes contiguous. The writer lays
it out as the reference writer does (header padded with spaces to a multiple of 8, tensors by
dtype size descending, then name); the reader checks what it relies on and names the tensor and
field at fault.
"""
from __future__ import annotations

import json
import struct

import torch

DTYPES = {
    "F64": (torch.float64, 8),
    "F32": (torch.float32, 4),
    "F16": (torch.float16, 2),
    "BF16": (torch.bfloat16, 2),
    "I64": (torch.int64, 8),
    "I32": (torch.int32, 4),
    "I16": (torch.int16, 2),
    "I8": (torch.int8, 1),
    "U8": (torch.uint8, 1),
    "BOOL": (torch.bool, 1),
}
_NAME_OF = {dtype: name for name, (dtype, _) in DTYPES.items()}
MAX_HEADER = 100 * 1024 * 1024


class SafetensorsError(ValueError):
    """A file that is not valid safetensors; the message names the field or tensor at fault."""


def to_bytes(tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> bytes:
    header: dict = {}
    if metadata:
        for key, value in metadata.items():
            if not isinstance(value, str):
                raise SafetensorsError(f"__metadata__.{key} must be a string")
        header["__metadata__"] = dict(metadata)
    order = sorted(tensors.items(), key=lambda kv: (-DTYPES[_dtype_name(kv[0], kv[1])][1], kv[0].encode("utf-8")))
    chunks = []
    offset = 0
    for name, tensor in order:
        data = tensor.detach().contiguous().cpu()
        raw = data.reshape(-1).view(torch.uint8).numpy().tobytes() if data.numel() else b""
        header[name] = {"dtype": _dtype_name(name, tensor), "shape": list(data.shape), "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * ((8 - len(text) % 8) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(chunks)


def _dtype_name(name: str, tensor: torch.Tensor) -> str:
    if tensor.dtype not in _NAME_OF:
        raise SafetensorsError(f"tensor {name}: dtype {tensor.dtype} has no safetensors name")
    return _NAME_OF[tensor.dtype]


def save(path: str, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    with open(path, "wb") as f:
        f.write(to_bytes(tensors, metadata))


def from_bytes(blob: bytes, where: str = "safetensors") -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The tensors and metadata of a file's bytes; SafetensorsError naming `where` and the field."""
    if len(blob) < 8:
        raise SafetensorsError(f"{where}: {len(blob)} bytes, shorter than the 8-byte header length")
    (n,) = struct.unpack("<Q", blob[:8])
    if n > MAX_HEADER or 8 + n > len(blob):
        raise SafetensorsError(f"{where}: header length {n} runs past the file ({len(blob)} bytes)")
    try:
        header = json.loads(blob[8 : 8 + n].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise SafetensorsError(f"{where}: the header is not JSON: {e}") from None
    if not isinstance(header, dict):
        raise SafetensorsError(f"{where}: the header is not a JSON object")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise SafetensorsError(f"{where}: __metadata__ must map strings to strings")
    data = memoryview(blob)[8 + n :]
    tensors = {}
    spans = []
    for name, info in header.items():
        at = f"{where}: tensor {name}"
        if not isinstance(info, dict):
            raise SafetensorsError(f"{at} is not an object")
        if info.get("dtype") not in DTYPES:
            raise SafetensorsError(f"{at}.dtype {info.get('dtype')!r} is not known")
        dtype, size = DTYPES[info["dtype"]]
        shape = info.get("shape")
        if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
            raise SafetensorsError(f"{at}.shape must be a list of non-negative integers")
        offsets = info.get("data_offsets")
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(isinstance(o, int) for o in offsets) and 0 <= offsets[0] <= offsets[1] <= len(data)):
            raise SafetensorsError(f"{at}.data_offsets {offsets!r} are not within the {len(data)} data bytes")
        count = 1
        for d in shape:
            count *= d
        if offsets[1] - offsets[0] != count * size:
            raise SafetensorsError(f"{at}.data_offsets span {offsets[1] - offsets[0]} bytes, shape {shape} of {info['dtype']} needs {count * size}")
        spans.append((offsets[0], offsets[1], name))
        raw = bytearray(data[offsets[0] : offsets[1]])
        flat = torch.frombuffer(raw, dtype=torch.uint8).view(dtype) if raw else torch.empty(0, dtype=dtype)
        tensors[name] = flat.reshape(shape)
    spans.sort()
    end = 0
    for begin, stop, name in spans:
        if begin != end:
            raise SafetensorsError(f"{where}: tensor {name} starts at {begin}, expected {end} (a hole or an overlap)")
        end = stop
    if end != len(data):
        raise SafetensorsError(f"{where}: {len(data) - end} bytes after the last tensor")
    return tensors, metadata


def load(path: str) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    with open(path, "rb") as f:
        return from_bytes(f.read(), path)
