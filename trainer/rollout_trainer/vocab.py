"""The policy's vocabulary and chat template: text <-> ids, and OpenAI chat messages -> prompt ids.

The vocabulary is special markers (ChatML's, Hermes tool calls), a few multi-character pieces
the toy task uses all the time (so its sequences stay short), and the 256 bytes, so any text has a
tokenization (greedy longest match, bytes as the fallback) and any id sequence decodes. The
template is ChatML-like, as Qwen's:

    <|im_start|>system\n [content] [<tools>name(param, ...) ...</tools>] <|im_end|>
    <|im_start|>user\n content <|im_end|>
    <|im_start|>assistant\n content (<tool_call>{"name": N, "arguments": A}</tool_call>)* <|im_end|>
    <|im_start|>tool\n<tool_response>content</tool_response><|im_end|>
    generation prompt: <|im_start|>assistant\n

An assistant turn renders exactly as it was sampled when the model wrote canonical text (vLLM's
hermes parser re-serializes arguments with json.dumps, which this template writes back verbatim),
so the next prompt extends the last prompt + sampled ids. Tools render as names with parameter
names only: the toy model has no use for JSON schemas, and they would make prompts long.
"""
from __future__ import annotations

import json
import re
import uuid

SPECIALS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<tool_call>",
    "</tool_call>",
    "<tools>",
    "</tools>",
    "<tool_response>",
    "</tool_response>",
]

# Multi-character pieces: chat roles and the toy calculator task's recurring text. Changing this
# list changes every id after it: a checkpoint records the vocabulary it was trained with.
PIECES = [
    "system",
    "user",
    "assistant",
    "tool",
    "\n",
    "Your task is to answer the user's question: ",
    "What is ",
    " times ",
    " plus ",
    " minus ",
    '{"name": "calculator", "arguments": {"expression": "',
    '"}}',
    "<answer>",
    "</answer>",
    "calculator",
    "expression",
]

PAD_ID = 0
IM_START = 1
IM_END = 2
TOOL_CALL_START = 3
TOOL_CALL_END = 4


class Vocabulary:
    """Ids: specials, then pieces, then bytes 0..255."""

    def __init__(self, specials: list[str] | None = None, pieces: list[str] | None = None):
        self.specials = list(specials or SPECIALS)
        self.pieces = list(pieces or PIECES)
        self.strings = self.specials + self.pieces
        self.byte_base = len(self.strings)
        self.size = self.byte_base + 256
        self.index = {text: i for i, text in enumerate(self.strings)}
        self.max_len = max(len(s) for s in self.strings)
        self.by_first: dict[str, list[str]] = {}
        for s in sorted(self.strings, key=len, reverse=True):
            self.by_first.setdefault(s[0], []).append(s)

    def to_json(self) -> dict:
        return {"specials": self.specials, "pieces": self.pieces, "bytes": 256}

    @classmethod
    def from_json(cls, data: dict) -> "Vocabulary":
        return cls(data["specials"], data["pieces"])

    def id(self, text: str) -> int:
        """The id of a special marker or piece."""
        return self.index[text]

    def encode(self, text: str) -> list[int]:
        """Greedy longest match over specials and pieces; any other character as its UTF-8 bytes."""
        ids: list[int] = []
        i = 0
        while i < len(text):
            for candidate in self.by_first.get(text[i], ()):
                if text.startswith(candidate, i):
                    ids.append(self.index[candidate])
                    i += len(candidate)
                    break
            else:
                ids.extend(self.byte_base + b for b in text[i].encode("utf-8"))
                i += 1
        return ids

    def token_bytes(self, token_id: int) -> bytes:
        if not 0 <= token_id < self.size:
            raise ValueError(f"token id {token_id} is outside the vocabulary (0..{self.size - 1})")
        if token_id >= self.byte_base:
            return bytes([token_id - self.byte_base])
        return self.strings[token_id].encode("utf-8")

    def decode(self, ids: list[int]) -> str:
        """The text of ids; invalid UTF-8 (a model may sample half a character) becomes U+FFFD."""
        return b"".join(self.token_bytes(i) for i in ids).decode("utf-8", errors="replace")


VOCAB = Vocabulary()


class TemplateError(ValueError):
    """A message the template cannot render, naming which and why."""


def _content_text(content, where: str) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for j, part in enumerate(content):
            if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise TemplateError(f"{where}.content[{j}]: only text parts are supported")
            parts.append(part["text"])
        return "".join(parts)
    raise TemplateError(f"{where}.content must be a string, a list of text parts or null")


def tool_call_text(name: str, arguments) -> str:
    """A tool call as the model writes it. `arguments` (the JSON text a client sends back, or an
    object) is written as json.dumps writes it — the form the hermes parser returned — so a client
    that re-serializes it compactly (JSON.stringify) still renders the turn as it was sampled; text
    that is not JSON is written verbatim."""
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except json.JSONDecodeError:
            pass
    if not isinstance(arguments, str):
        arguments = json.dumps(arguments, ensure_ascii=False)
    return "<tool_call>" + '{"name": ' + json.dumps(name, ensure_ascii=False) + ', "arguments": ' + arguments + "}</tool_call>"


def tools_text(tools) -> str:
    if not tools:
        return ""
    if not isinstance(tools, list):
        raise TemplateError("tools must be a list")
    names = []
    for i, tool in enumerate(tools):
        fn = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise TemplateError(f"tools[{i}] has no function.name")
        params = fn.get("parameters") or {}
        props = params.get("properties") if isinstance(params, dict) else None
        names.append(fn["name"] + "(" + ", ".join(props.keys() if isinstance(props, dict) else []) + ")")
    return "<tools>" + " ".join(names) + "</tools>"


def render(messages, tools=None, add_generation_prompt: bool = True) -> str:
    """The prompt text of a conversation (see the module's doc)."""
    if not isinstance(messages, list) or not messages:
        raise TemplateError("messages must be a non-empty list")
    out = []
    tool_block = tools_text(tools)
    start = 0
    if isinstance(messages[0], dict) and messages[0].get("role") == "system":
        out.append("<|im_start|>system\n" + _content_text(messages[0].get("content"), "messages[0]") + tool_block + "<|im_end|>")
        start = 1
    elif tool_block:
        out.append("<|im_start|>system\n" + tool_block + "<|im_end|>")
    for i in range(start, len(messages)):
        m = messages[i]
        where = f"messages[{i}]"
        if not isinstance(m, dict):
            raise TemplateError(f"{where} is not an object")
        role = m.get("role")
        if role in ("system", "user", "developer"):
            out.append("<|im_start|>" + ("user" if role == "developer" else role) + "\n" + _content_text(m.get("content"), where) + "<|im_end|>")
        elif role == "assistant":
            body = _content_text(m.get("content"), where)
            for j, call in enumerate(m.get("tool_calls") or []):
                fn = call.get("function") if isinstance(call, dict) else None
                if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
                    raise TemplateError(f"{where}.tool_calls[{j}] has no function.name")
                body += tool_call_text(fn["name"], fn.get("arguments", "{}"))
            out.append("<|im_start|>assistant\n" + body + "<|im_end|>")
        elif role == "tool":
            out.append("<|im_start|>tool\n<tool_response>" + _content_text(m.get("content"), where) + "</tool_response><|im_end|>")
        else:
            raise TemplateError(f"{where}.role {role!r} is not one of system, user, assistant, tool")
    if add_generation_prompt:
        out.append("<|im_start|>assistant\n")
    return "".join(out)


def render_ids(messages, tools=None, add_generation_prompt: bool = True, vocab: Vocabulary = VOCAB) -> list[int]:
    return vocab.encode(render(messages, tools, add_generation_prompt))


_TOOL_CALL = re.compile(r"<tool_call>(.*?)</tool_call>|<tool_call>(.*)$", re.DOTALL)


def parse_tool_calls(text: str):
    """An assistant text -> (content, tool_calls) as vLLM's hermes parser returns them: content is the
    text before the first <tool_call> (None when empty and there are calls), each call's arguments
    re-serialized with json.dumps. Text that does not parse as calls is all content."""
    if "<tool_call>" not in text:
        return text, []
    calls = []
    try:
        for closed, open_tail in _TOOL_CALL.findall(text):
            data = json.loads(closed if closed else open_tail)
            if not isinstance(data, dict) or not isinstance(data.get("name"), str):
                return text, []
            calls.append({
                "id": "chatcmpl-tool-" + uuid.uuid4().hex[:24],
                "type": "function",
                "function": {"name": data["name"], "arguments": json.dumps(data.get("arguments", {}), ensure_ascii=False)},
            })
    except json.JSONDecodeError:
        return text, []
    content = text[: text.index("<tool_call>")]
    return (content if content else None), calls
