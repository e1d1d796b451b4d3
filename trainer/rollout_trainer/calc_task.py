"""The toy agentic task: "What is A times B?" for 3-digit A and B (317–999 by default). The policy must call the
calculator tool (`{"expression": "A*B"}`); the result enters the context as a tool turn (tokens
it did not sample); then it answers `<answer>A·B</answer>`, scored by exact match.

    python3 -m rollout_trainer.calc_task --out data/calc --seed 13

writes train.jsonl and heldout.jsonl (the custom loader's shape: id, question, answer) and
demonstrations.jsonl (chat examples {messages, tools} for the warm start, from the train split).
Also here: the calculator's tool spec as the MCP server declares it, and the in-process episode
(sample, call the tool, sample the answer) that the experiment uses.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import re

from .vocab import IM_END, PAD_ID, parse_tool_calls, render_ids

CALCULATOR_TOOL = {
    "type": "function",
    "function": {
        "name": "calculator",
        "description": "Evaluates an arithmetic expression of integers with + - * / and parentheses.",
        "parameters": {"type": "object", "properties": {"expression": {"type": "string"}}, "required": ["expression"]},
    },
}

TASK_PROMPT = "Your task is to answer the user's question: "

# The operands' range (inclusive): the bundled data's, and the experiment's default. From 317 up
# every product has 6 digits, so every token of a sequence sits at the same position in every
# task and the copies (operands into the call, the result into the answer) are positional: the
# 101k-parameter policy then learns it in ~100 SFT steps, and GRPO lifts it from ~10% to 90%
# (trainer/README.md). With 10–999 (2–6 digit numbers) SFT needed 400 steps for 80%, and GRPO
# plateaued near 63%: the model miscopied digits at shifting positions the same way every time.
LOW, HIGH = 317, 999


def make_tasks(seed: int, count: int, prefix: str, avoid: set | None = None, low: int = LOW, high: int = HIGH) -> list[dict]:
    """count distinct tasks A times B, A and B uniform in [low, high], none of the pairs in avoid."""
    if not 0 <= low <= high:
        raise ValueError(f"operand range [{low}, {high}] is empty or negative")
    if (high - low + 1) ** 2 - len(avoid or ()) < count:
        raise ValueError(f"operand range [{low}, {high}] has fewer than {count} new pairs")
    rng = random.Random(seed)
    seen = set(avoid or ())
    tasks = []
    while len(tasks) < count:
        a = rng.randint(low, high)
        b = rng.randint(low, high)
        if (a, b) in seen:
            continue
        seen.add((a, b))
        tasks.append({"id": f"{prefix}-{len(tasks):04d}", "question": f"What is {a} times {b}?", "answer": str(a * b)})
    return tasks


def operands(question: str) -> tuple[int, int]:
    m = re.fullmatch(r"What is (\d+) times (\d+)\?", question)
    if not m:
        raise ValueError(f"not a calc question: {question!r}")
    return int(m.group(1)), int(m.group(2))


def demonstration(task: dict) -> dict:
    a, b = operands(task["question"])
    arguments = json.dumps({"expression": f"{a}*{b}"})
    return {
        "messages": [
            {"role": "user", "content": TASK_PROMPT + task["question"]},
            {"role": "assistant", "content": None, "tool_calls": [{"id": "call_0", "type": "function", "function": {"name": "calculator", "arguments": arguments}}]},
            {"role": "tool", "tool_call_id": "call_0", "content": str(a * b)},
            {"role": "assistant", "content": f"<answer>{a * b}</answer>"},
        ],
        "tools": [CALCULATOR_TOOL],
    }


def calculate(expression: str) -> str | None:
    """The integer product/sum/difference of `A op B`, or None (the in-process stand-in for the MCP
    calculator on the one form the task needs)."""
    m = re.fullmatch(r"\s*(-?\d+)\s*([-+*])\s*(-?\d+)\s*", expression)
    if not m:
        return None
    a, op, b = int(m.group(1)), m.group(2), int(m.group(3))
    return str(a * b if op == "*" else a + b if op == "+" else a - b)


def answer_of(text: str) -> str | None:
    close = text.rfind("</answer>")
    open_ = text.rfind("<answer>", 0, close) if close != -1 else -1
    return text[open_ + len("<answer>") : close].strip() if open_ != -1 else None


def run_episodes(model, tasks: list[dict], temperature: float, generator, version: int = 0):
    """Runs each task as a two-turn episode in-process (batched sampling); per task the score (1/0)
    and the sequence as the batch format lays it out (prompt ids, sampled ids, tool turn)."""
    from .model import sample_batch

    stop = {IM_END, PAD_ID}
    convs = [[{"role": "user", "content": TASK_PROMPT + t["question"]}] for t in tasks]
    seqs = [{"token_ids": [], "loss_mask": [], "logprobs": [], "versions": [], "temperature": temperature} for _ in tasks]
    done = [False] * len(tasks)
    scores = [0.0] * len(tasks)
    for _turn in range(2):
        live = [i for i in range(len(tasks)) if not done[i]]
        if not live:
            break
        prompts = []
        for i in live:
            ids = render_ids(convs[i], [CALCULATOR_TOOL])
            have = seqs[i]["token_ids"]
            if ids[: len(have)] != have:  # drift: the re-rendered history differs from what was sampled
                done[i] = True
                continue
            extra = ids[len(have) :]
            seqs[i]["token_ids"] += extra
            seqs[i]["loss_mask"] += [0] * len(extra)
            seqs[i]["logprobs"] += [0.0] * len(extra)
            seqs[i]["versions"] += [-1] * len(extra)
            prompts.append(i)
        outs = sample_batch(model, [seqs[i]["token_ids"] for i in prompts], 24, temperature, stop, generator)
        for i, (ids, lps, finish) in zip(prompts, outs):
            seqs[i]["token_ids"] += ids
            seqs[i]["loss_mask"] += [1] * len(ids)
            seqs[i]["logprobs"] += lps
            seqs[i]["versions"] += [version] * len(ids)
            from .vocab import VOCAB

            text = VOCAB.decode(ids[:-1] if finish == "stop" else ids)
            content, calls = parse_tool_calls(text)
            if calls and finish == "stop":
                call = calls[0]["function"]
                try:
                    expression = json.loads(call["arguments"]).get("expression", "")
                except (json.JSONDecodeError, AttributeError):
                    expression = ""
                result = calculate(expression) if call["name"] == "calculator" and isinstance(expression, str) else None
                convs[i].append({"role": "assistant", "content": content, "tool_calls": [{"id": "c", "type": "function", "function": call}]})
                convs[i].append({"role": "tool", "tool_call_id": "c", "content": result if result is not None else "error: not an expression"})
            else:
                done[i] = True
                scores[i] = 1.0 if answer_of(text) == tasks[i]["answer"] else 0.0
    return scores, seqs


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="rollout_trainer.calc_task", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="data/calc")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--train", type=int, default=2000)
    parser.add_argument("--heldout", type=int, default=200)
    parser.add_argument("--demonstrations", type=int, default=512)
    parser.add_argument("--low", type=int, default=LOW, help="smallest operand")
    parser.add_argument("--high", type=int, default=HIGH, help="largest operand")
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    train = make_tasks(args.seed, args.train, "calc-train", low=args.low, high=args.high)
    heldout = make_tasks(args.seed + 1, args.heldout, "calc-heldout", {operands(t["question"]) for t in train}, args.low, args.high)
    for name, rows in (("train.jsonl", train), ("heldout.jsonl", heldout), ("demonstrations.jsonl", [demonstration(t) for t in train[: args.demonstrations]])):
        with open(os.path.join(args.out, name), "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in rows)
    print(json.dumps({"out": args.out, "train": len(train), "heldout": len(heldout), "demonstrations": min(args.demonstrations, len(train)), "operands": [args.low, args.high]}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
