"""The policy server over real HTTP: vLLM's chat completions with token ids, log-probs and
version spans (log-probs equal to the trainer's recomputation), /tokenize, token-id completions,
tool calls as OpenAI tool_calls whose next prompt extends the sampled ids, the weight-update
sequence loading a safetensors checkpoint (and its refusals), the bearer key."""
import os
import tempfile
import threading
import time
import unittest

import torch

from rollout_trainer.calc_task import CALCULATOR_TOOL, TASK_PROMPT
from rollout_trainer.loss import token_logprobs
from rollout_trainer.model import Policy, save_checkpoint
from rollout_trainer.server import Engine, Request, start
from tests.support import TASK, http, memorized_policy


class ServerTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.model = memorized_policy()
        cls.engine = Engine(cls.model, "0", "policy")
        cls.server = start(cls.engine, 0, api_key="sekret")
        cls.url = f"http://127.0.0.1:{cls.server.server_address[1]}"
        cls.dir = tempfile.mkdtemp()

    @classmethod
    def tearDownClass(cls):
        cls.server.shutdown()
        cls.server.server_close()

    def call(self, method, route, body=None, token="sekret"):
        return http(method, self.url + route, body, token)

    def messages(self):
        return [{"role": "user", "content": TASK_PROMPT + TASK["question"]}]

    def test_models_and_bearer_key(self):
        status, body, _ = self.call("GET", "/v1/models")
        self.assertEqual((status, body["data"][0]["id"]), (200, "policy"))
        status, body, _ = self.call("GET", "/v1/models", token="wrong")
        self.assertEqual(status, 401)
        status, _, _ = self.call("GET", "/health", token=None)
        self.assertEqual(status, 200)

    def test_logprobs_are_those_of_the_sampling_distribution(self):
        for temperature in (1.0, 0.7):
            status, body, headers = self.call("POST", "/v1/chat/completions", {"model": "policy", "messages": self.messages(), "tools": [CALCULATOR_TOOL], "temperature": temperature, "max_tokens": 30, "seed": 5, "return_token_ids": True, "logprobs": True, "top_logprobs": 0})
            self.assertEqual(status, 200, body)
            choice = body["choices"][0]
            prompt, ids = body["prompt_token_ids"], choice["token_ids"]
            sent = [c["logprob"] for c in choice["logprobs"]["content"]]
            self.assertEqual(len(sent), len(ids))
            self.assertEqual(choice["weight_versions"], [{"version": "0", "start": 0, "end": len(ids)}])
            self.assertEqual(headers.get("x-policy-version"), "0")
            full = torch.tensor([prompt + ids])
            with torch.no_grad():
                logp, _ = token_logprobs(self.model(full), full, temperature)
            again = logp[0, len(prompt) - 1 :]
            ratios = torch.exp(again - torch.tensor(sent, dtype=torch.float64))
            self.assertLess(float((ratios - 1).abs().max()), 1e-4)

    def test_concurrent_requests_are_generated_together_with_exact_logprobs(self):
        def request(seed):
            # Prompts of different lengths: rows of the batch are padded differently.
            messages = [{"role": "user", "content": TASK_PROMPT + f"What is {seed + 1} times {10 ** seed}?"}]
            return {"model": "policy", "messages": messages, "tools": [CALCULATOR_TOOL], "temperature": 1.0, "max_tokens": 30, "seed": seed, "return_token_ids": True, "logprobs": True}

        alone = {seed: self.call("POST", "/v1/chat/completions", request(seed))[1] for seed in range(8)}
        together = {}
        threads = [threading.Thread(target=lambda s=seed: together.update({s: self.call("POST", "/v1/chat/completions", request(s))[1]})) for seed in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        self.assertGreater(self.engine.largest_batch, 1)
        for seed in range(8):
            choice = together[seed]["choices"][0]
            # The same seed samples the same tokens whether the request ran alone or in a batch.
            self.assertEqual(choice["token_ids"], alone[seed]["choices"][0]["token_ids"])
            full = torch.tensor([together[seed]["prompt_token_ids"] + choice["token_ids"]])
            with torch.no_grad():
                logp, _ = token_logprobs(self.model(full), full, 1.0)
            sent = torch.tensor([c["logprob"] for c in choice["logprobs"]["content"]], dtype=torch.float64)
            ratios = torch.exp(logp[0, len(together[seed]["prompt_token_ids"]) - 1 :] - sent)
            self.assertLess(float((ratios - 1).abs().max()), 1e-4)

    def test_tokenize_and_token_id_completions_agree_with_chat(self):
        status, tok, _ = self.call("POST", "/tokenize", {"model": "policy", "messages": self.messages(), "tools": [CALCULATOR_TOOL], "add_generation_prompt": True})
        self.assertEqual(status, 200)
        self.assertEqual(tok["count"], len(tok["tokens"]))
        request = {"messages": self.messages(), "tools": [CALCULATOR_TOOL], "temperature": 1.0, "max_tokens": 12, "seed": 11, "return_token_ids": True, "logprobs": True}
        _, chat, _ = self.call("POST", "/v1/chat/completions", request)
        self.assertEqual(chat["prompt_token_ids"], tok["tokens"])
        status, text, _ = self.call("POST", "/v1/completions", {"prompt": tok["tokens"], "temperature": 1.0, "max_tokens": 12, "seed": 11, "return_token_ids": True, "logprobs": 0})
        self.assertEqual(status, 200, text)
        self.assertEqual(text["object"], "text_completion")
        self.assertEqual(text["choices"][0]["token_ids"], chat["choices"][0]["token_ids"])
        self.assertEqual(text["choices"][0]["logprobs"]["token_logprobs"], [c["logprob"] for c in chat["choices"][0]["logprobs"]["content"]])

    def test_tool_call_returned_as_openai_tool_calls_and_next_prompt_extends(self):
        status, body, _ = self.call("POST", "/v1/chat/completions", {"messages": self.messages(), "tools": [CALCULATOR_TOOL], "temperature": 0, "max_tokens": 30, "return_token_ids": True, "logprobs": True})
        self.assertEqual(status, 200)
        choice = body["choices"][0]
        self.assertEqual(choice["finish_reason"], "tool_calls")
        call = choice["message"]["tool_calls"][0]
        self.assertEqual(call["function"], {"name": "calculator", "arguments": '{"expression": "12*34"}'})
        history = self.messages() + [{"role": "assistant", "content": choice["message"]["content"], "tool_calls": [call]}, {"role": "tool", "tool_call_id": call["id"], "content": "408"}]
        _, second, _ = self.call("POST", "/v1/chat/completions", {"messages": history, "tools": [CALCULATOR_TOOL], "temperature": 0, "max_tokens": 30, "return_token_ids": True, "logprobs": True})
        first = body["prompt_token_ids"] + choice["token_ids"]
        self.assertEqual(second["prompt_token_ids"][: len(first)], first)
        self.assertEqual(second["choices"][0]["message"]["content"], "<answer>408</answer>")
        self.assertEqual(second["choices"][0]["finish_reason"], "stop")

    def test_bad_requests_name_the_field(self):
        cases = [
            ({"messages": self.messages(), "temperature": -1}, "temperature"),
            ({"messages": self.messages(), "stream": True}, "stream"),
            ({"messages": [{"role": "robot", "content": "x"}]}, "robot"),
            ({"messages": self.messages(), "model": "other"}, "other"),
            ({"messages": self.messages(), "max_tokens": 0}, "max_tokens"),
        ]
        for body, word in cases:
            status, answer, _ = self.call("POST", "/v1/chat/completions", body)
            self.assertIn(status, (400, 404))
            self.assertIn(word, answer["error"]["message"])
        status, answer, _ = self.call("POST", "/v1/completions", {"prompt": [1, 99999]})
        self.assertEqual(status, 400)
        self.assertEqual(answer["error"]["param"], "prompt")


class WeightUpdateTest(unittest.TestCase):
    def setUp(self):
        torch.manual_seed(1)
        self.engine = Engine(Policy().eval(), "0", "policy")
        self.server = start(self.engine, 0)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.dir = tempfile.mkdtemp()

    def tearDown(self):
        self.server.shutdown()
        self.server.server_close()

    def post(self, route, body=None):
        return http("POST", self.url + route, body if body is not None else {})

    def logprob(self):
        _, body, _ = self.post("/v1/completions", {"prompt": [1, 10, 13], "max_tokens": 1, "seed": 3, "return_token_ids": True, "logprobs": 0})
        return body["choices"][0]["logprobs"]["token_logprobs"][0], body["choices"][0]["token_ids"][0]

    def test_vllm_update_sequence_loads_the_checkpoint(self):
        before = self.logprob()
        torch.manual_seed(2)
        save_checkpoint(Policy(), os.path.join(self.dir, "v1"), "1")
        steps = [
            ("/pause?mode=keep", None, 200),
            ("/start_weight_update", None, 200),
            ("/update_weights", {"update_info": {"path": os.path.join(self.dir, "v1")}}, 200),
            ("/finish_weight_update", {"weight_version": "1"}, 200),
        ]
        for route, body, status in steps:
            got, answer, _ = self.post(route, body)
            self.assertEqual(got, status, (route, answer))
        self.assertEqual(http("GET", self.url + "/weight_info")[1], {"weight_version": "1"})
        self.assertTrue(http("GET", self.url + "/is_paused")[1]["is_paused"])
        self.assertEqual(self.post("/resume")[0], 200)
        after = self.logprob()
        self.assertNotEqual(before, after)

    def test_paused_engine_holds_requests_and_they_run_on_the_new_version(self):
        self.post("/pause?mode=keep")
        result = {}
        thread = threading.Thread(target=lambda: result.update(answer=self.post("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}], "max_tokens": 4, "return_token_ids": True})))
        thread.start()
        time.sleep(0.3)
        self.assertNotIn("answer", result)
        save_checkpoint(Policy(), os.path.join(self.dir, "v2"), "2")
        self.post("/start_weight_update")
        self.post("/update_weights", {"update_info": {"path": os.path.join(self.dir, "v2", "model.safetensors")}})
        self.post("/finish_weight_update", {"weight_version": "2"})
        self.post("/resume")
        thread.join(10)
        status, body, headers = result["answer"]
        self.assertEqual(status, 200)
        self.assertEqual([s["version"] for s in body["choices"][0]["weight_versions"]], ["2"])
        self.assertEqual(headers.get("x-policy-version"), "2")

    def test_a_generation_held_across_an_update_continues_under_the_new_weights_only(self):
        # Driven a token at a time (the scheduler's step) so the update lands mid-generation.
        prompt = [1, 10, 13, 20, 30, 40]
        request = Request(prompt, 8, 1.0, torch.Generator().manual_seed(4), set())
        for _ in range(3):
            self.engine.step([request])
        save_checkpoint(Policy(), os.path.join(self.dir, "v3"), "3")
        self.post("/pause?mode=keep")
        self.post("/start_weight_update")
        self.post("/update_weights", {"update_info": {"path": os.path.join(self.dir, "v3")}})
        self.post("/finish_weight_update", {"weight_version": "3"})
        for _ in range(3):
            self.engine.step([request])
        self.assertEqual(request.versions, ["0"] * 3 + ["3"] * 3)
        full = torch.tensor([prompt + request.out])
        with torch.no_grad():
            logp, _ = token_logprobs(self.engine.model(full), full, 1.0)
        # The tokens after the update: their log-probs are the new weights' over the whole
        # sequence, not a mix with keys and values cached under the old ones.
        after = logp[0, len(prompt) - 1 + 3 :]
        self.assertLess(float((after - torch.tensor(request.logprobs[3:], dtype=torch.float64)).abs().max()), 1e-4)

    def test_out_of_sequence_and_bad_loads_are_refused(self):
        self.assertEqual(self.post("/start_weight_update")[0], 409)
        self.assertEqual(self.post("/pause?mode=sideways")[0], 400)
        self.post("/pause?mode=keep")
        self.assertEqual(self.post("/finish_weight_update", {"weight_version": "1"})[0], 409)
        self.post("/start_weight_update")
        self.assertEqual(self.post("/update_weights", {})[0], 400)
        self.assertEqual(self.post("/finish_weight_update", {"weight_version": "1"})[0], 409)
        self.assertEqual(self.post("/resume")[0], 409)
        with open(os.path.join(self.dir, "broken.safetensors"), "wb") as f:
            f.write(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}      ")
        status, body, _ = self.post("/update_weights", {"update_info": {"path": os.path.join(self.dir, "broken.safetensors")}})
        self.assertEqual(status, 500)
        self.assertIn("not JSON", body["error"]["message"])
        # A failed load may be retried from start_weight_update; the version is unchanged.
        self.assertEqual(http("GET", self.url + "/weight_info")[1], {"weight_version": "0"})
        self.assertEqual(self.post("/start_weight_update")[0], 200)


if __name__ == "__main__":
    unittest.main()
