"""The bridge trainer against a bridge double over real HTTP (docs/training.md's API: bearer
token, next?ack long-poll, 409 for an unknown ack, 410 at the end, /v1/weights, /v1/metrics):
every batch is sampled with the weights the trainer last published, so the importance ratio at
lag 0 must be 1 ± 0.02; the trainer killed with SIGKILL mid-run resumes from its checkpoint and
the bridge's acknowledged step, and no step is trained twice. Also the SFT mode on the
demonstrations format and on `rollout export --format sft` lines."""
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import torch

from rollout_trainer.batch import write_batch
from rollout_trainer.calc_task import demonstration, make_tasks, run_episodes
from rollout_trainer.model import Policy, load_checkpoint, save_checkpoint
from rollout_trainer.train import main as train_main
from rollout_trainer.train import read_sft, read_tasks, sft_example, warm_start
from rollout_trainer.vocab import VOCAB

TRAINER = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOKEN = "bridge-token"


class BridgeDouble:
    """The bridge's HTTP API over `total` steps; step s is sampled on demand from the checkpoint
    published as version s (the init checkpoint for s = 0)."""

    def __init__(self, init: str, total: int):
        self.total, self.published, self.acked = total, {0: init}, []
        self.handed, self.metrics, self.weights = [], [], []
        self.batches: dict[int, bytes] = {}
        self.lock = threading.Lock()
        bridge = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def answer(self, status, body=b"", headers=None, kind="application/json"):
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("content-type", kind)
                self.send_header("content-length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                try:
                    self.wfile.write(data)
                except BrokenPipeError:
                    pass  # the trainer was killed mid-answer: what this test does on purpose

            def authorized(self):
                if self.headers.get("authorization") != f"Bearer {TOKEN}":
                    self.answer(401, {"error": "unauthorized"})
                    return False
                return True

            def do_GET(self):
                if not self.authorized():
                    return
                url = urlparse(self.path)
                query = parse_qs(url.query)
                with bridge.lock:
                    if "ack" in query:
                        ack = int(query["ack"][0])
                        if ack not in bridge.handed:
                            return self.answer(409, {"error": f"step {ack} was never handed out"})
                        if ack not in bridge.acked:
                            bridge.acked.append(ack)
                    step = next((s for s in range(bridge.total) if s not in bridge.acked), None)
                    if step is None:
                        return self.answer(410, {"error": "the run has finished"})
                    if step not in bridge.published:
                        return self.answer(204)
                    blob = bridge.batch(step)
                    bridge.handed.append(step)
                self.answer(200, blob, {"rollout-run": "double", "rollout-step": str(step), "rollout-hash": "x"}, "application/octet-stream")

            def do_POST(self):
                if not self.authorized():
                    return
                body = json.loads(self.rfile.read(int(self.headers.get("content-length") or 0)))
                with bridge.lock:
                    if self.path == "/v1/weights":
                        bridge.weights.append(body)
                        bridge.published[int(body["version"])] = body["path"]
                    elif self.path == "/v1/metrics":
                        bridge.metrics.append(body)
                self.answer(200, {"ok": True})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def batch(self, step: int) -> bytes:
        if step not in self.batches:
            model, _ = load_checkpoint(self.published[step])
            tasks = [t for t in make_tasks(100 + step, 4, "b") for _ in range(4)]
            scores, seqs = run_episodes(model, tasks, 1.0, torch.Generator().manual_seed(step), version=step)
            for i, seq in enumerate(seqs):
                adv = 1.0 if i % 2 else -1.0  # the ratio check does not need real rewards
                seq["advantages"] = [adv if m else 0.0 for m in seq["loss_mask"]]
            self.batches[step] = write_batch(seqs, step, "double")
        return self.batches[step]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class TrainerTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp()
        torch.manual_seed(0)
        self.init = os.path.join(self.dir, "init")
        save_checkpoint(Policy(), self.init, "0")
        with open(os.path.join(self.dir, "token"), "w") as f:
            f.write(TOKEN + "\n")

    def trainer(self, bridge, *extra):
        return subprocess.Popen(
            [sys.executable, "-m", "rollout_trainer.train", "--bridge", bridge.url, "--token-file", os.path.join(self.dir, "token"), "--checkpoints", os.path.join(self.dir, "ckpt"), "--init", self.init, "--wait", "1", *extra],
            cwd=TRAINER, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )

    def test_trains_every_step_once_with_ratio_one_at_lag_zero_and_resumes_after_sigkill(self):
        bridge = BridgeDouble(self.init, total=5)
        try:
            first = self.trainer(bridge)
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and not any(w["version"] == "2" for w in bridge.weights):
                time.sleep(0.02)
            first.send_signal(signal.SIGKILL)
            _, first_err = first.communicate()
            self.assertTrue(any(w["version"] == "2" for w in bridge.weights), first_err)
            second = self.trainer(bridge)
            out, err = second.communicate(timeout=180)
            self.assertEqual(second.returncode, 0, err)
            self.assertEqual(bridge.acked, [0, 1, 2, 3, 4])
            steps = [m["step"] for m in bridge.metrics]
            self.assertEqual(len(steps), len(set(steps)), f"a step was trained twice: {steps}")
            self.assertTrue({2, 3, 4} <= set(steps))
            # After its checkpoint (version v), a step is never handed out again.
            versions = [int(w["version"]) for w in bridge.weights]
            self.assertEqual(versions[-1], 5)
            self.assertEqual(sorted(set(versions)), [1, 2, 3, 4, 5])
            for m in bridge.metrics:
                lag0 = [r for r in m["ratioByLag"] if r["lag"] == 0]
                self.assertEqual(len(lag0), 1)
                self.assertLess(abs(lag0[0]["meanRatio"] - 1), 0.02, m)
                for key in ("loss", "clip_fraction", "mask_fraction", "entropy", "grad_norm", "tokens"):
                    self.assertIn(key, m["metrics"])
            self.assertIn('"event": "start", "version": 2', out)
            with open(os.path.join(self.dir, "ckpt", "version-5", "config.json")) as f:
                self.assertEqual(json.load(f)["version"], "5")
            for w in bridge.weights:
                self.assertTrue(w["checksum"].startswith("sha256:"))
        finally:
            bridge.close()

    def test_a_wrong_token_stops_the_trainer_with_the_status(self):
        bridge = BridgeDouble(self.init, total=1)
        try:
            with open(os.path.join(self.dir, "token"), "w") as f:
                f.write("wrong")
            proc = self.trainer(bridge)
            _, err = proc.communicate(timeout=60)
            self.assertNotEqual(proc.returncode, 0)
            self.assertIn("HTTP 401", err)
        finally:
            bridge.close()


class SftTest(unittest.TestCase):
    def test_sft_learns_the_demonstrations_and_reads_export_lines(self):
        d = tempfile.mkdtemp()
        demos = os.path.join(d, "demos.jsonl")
        with open(demos, "w") as f:
            for t in make_tasks(5, 8, "s"):
                f.write(json.dumps(demonstration(t)) + "\n")
            # `rollout export --format sft`: messages and metadata, no tools.
            line = demonstration(make_tasks(6, 1, "x")[0])
            f.write(json.dumps({"messages": [{"role": "system", "content": "Be brief."}] + line["messages"], "metadata": {"correct": True}}) + "\n")
        examples = read_sft(demos)
        self.assertEqual(len(examples), 9)
        ids, mask = examples[0]
        answer = demonstration(make_tasks(5, 8, "s")[0])["messages"][3]["content"]
        self.assertTrue(VOCAB.decode([i for i, m in zip(ids, mask) if m]).endswith(f"</tool_call><|im_end|>{answer}<|im_end|>"))
        out = os.path.join(d, "warm")
        self.assertEqual(train_main(["--sft", demos, "--out", out, "--steps", "30", "--batch-size", "9", "--lr", "3e-3"]), 0)
        model, version = load_checkpoint(out)
        self.assertEqual(version, "0")
        with open(demos, "a") as f:
            f.write('{"messages": [{"role": "user", "content": "no answer"}]}\n')
        with self.assertRaisesRegex(ValueError, "demos.jsonl:10: no assistant message"):
            read_sft(demos)

    def test_warm_start_stops_at_the_measured_rate_without_changing_the_steps(self):
        tasks = make_tasks(8, 4, "w")
        examples = [sft_example(demonstration(t), t["id"]) for t in tasks]

        def run(steps, stop):
            torch.manual_seed(0)
            model = Policy()
            result = warm_start(model, torch.optim.Adam(model.parameters(), lr=3e-3), examples, random.Random(0), steps, 4, stop)
            return model, result

        stopped, result = run(400, {"tasks": tasks, "at": 0.5, "every": 10, "samples": 16, "seed": 3})
        rates = [e["exactMatch"] for e in result["evaluations"]]
        self.assertLess(result["steps"], 400)
        self.assertEqual(result["steps"], result["evaluations"][-1]["step"])
        self.assertGreaterEqual(rates[-1], 0.5)
        self.assertTrue(all(r < 0.5 for r in rates[:-1]))
        # The evaluations draw their own randomness: the same steps without them, the same weights.
        plain, _ = run(result["steps"], None)
        for (name, a), b in zip(stopped.state_dict().items(), plain.state_dict().values()):
            self.assertTrue(torch.equal(a, b), name)

    def test_task_files_name_the_bad_line(self):
        path = os.path.join(tempfile.mkdtemp(), "tasks.jsonl")
        with open(path, "w") as f:
            f.write(json.dumps(make_tasks(1, 1, "t")[0]) + "\n" + '{"question": "What is 1 times 2?"}\n')
        with self.assertRaisesRegex(ValueError, "tasks.jsonl:2: a task needs a string question and answer"):
            read_tasks(path)


if __name__ == "__main__":
    unittest.main()
