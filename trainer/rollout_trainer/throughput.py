"""Measures the policy server's throughput under concurrent requests, the way the sampler loads
it: a server process is started (`python -m rollout_trainer.server`), then at each concurrency c,
c client threads each send calc-task chat completions (temperature 1, log-probs, token ids) over
one keep-alive connection for a fixed time. Prints one JSON object: per concurrency the requests
per second, generated tokens per second and the median latency.

    python3 -m rollout_trainer.throughput --checkpoint CKPT --concurrency 1 8 32 --seconds 10
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import threading
import time

from .calc_task import CALCULATOR_TOOL, TASK_PROMPT, make_tasks


def client(port: int, questions: list[str], deadline: float, out: list) -> None:
    """Sends requests until deadline; appends (latency s, completion tokens) per answered request."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    i = 0
    while time.monotonic() < deadline:
        body = {
            "model": "policy",
            "messages": [{"role": "user", "content": TASK_PROMPT + questions[i % len(questions)]}],
            "tools": [CALCULATOR_TOOL],
            "temperature": 1.0,
            "max_tokens": 24,
            "logprobs": True,
            "return_token_ids": True,
        }
        i += 1
        started = time.monotonic()
        conn.request("POST", "/v1/chat/completions", json.dumps(body), {"content-type": "application/json"})
        answer = conn.getresponse()
        data = json.loads(answer.read())
        if answer.status != 200:
            raise RuntimeError(f"the server answered HTTP {answer.status}: {data}")
        out.append((time.monotonic() - started, len(data["choices"][0]["token_ids"])))
    conn.close()


def measure(port: int, concurrency: int, seconds: float, questions: list[str]) -> dict:
    results: list[list] = [[] for _ in range(concurrency)]
    deadline = time.monotonic() + seconds
    started = time.monotonic()
    threads = [threading.Thread(target=client, args=(port, questions[k::concurrency] or questions, deadline, results[k])) for k in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started  # includes the requests still in flight at the deadline
    done = [r for rs in results for r in rs]
    return {
        "concurrency": concurrency,
        "requests": len(done),
        "requestsPerSecond": round(len(done) / elapsed, 2),
        "tokensPerSecond": round(sum(n for _, n in done) / elapsed, 1),
        "medianLatencyMs": round(1000 * statistics.median(lat for lat, _ in done), 1) if done else None,
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="rollout_trainer.throughput", description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", help="served by the server (default: a fresh model)")
    p.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    p.add_argument("--seconds", type=float, default=10.0, help="per concurrency level")
    p.add_argument("--package-dir", default=os.path.dirname(os.path.dirname(os.path.abspath(__file__))), help="the directory holding the rollout_trainer package the server runs from")
    p.add_argument("--server-args", default="", help="extra server flags, space-separated")
    a = p.parse_args(argv)
    command = [sys.executable, "-m", "rollout_trainer.server", "--port", "0"] + (["--checkpoint", a.checkpoint] if a.checkpoint else []) + a.server_args.split()
    server = subprocess.Popen(command, cwd=a.package_dir, stdout=subprocess.PIPE, text=True)
    try:
        line = server.stdout.readline()
        if not line:
            raise SystemExit(f"the server did not start: {' '.join(command)}")
        port = json.loads(line)["port"]
        questions = [t["question"] for t in make_tasks(7, 256, "bench", low=317, high=999)]
        measure(port, 1, 1.0, questions)  # warm-up: the first forward passes are slower
        levels = [measure(port, c, a.seconds, questions) for c in a.concurrency]
    finally:
        server.terminate()
        server.wait(10)
    print(json.dumps({"server": " ".join(command[1:]), "levels": levels}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
