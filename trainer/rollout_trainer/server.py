"""The policy server: the toy policy behind the subset of vLLM's HTTP API that rollout's inference
pool uses for a `tokens: exact`, `weightUpdates: vllm` model group, so the pool drives it exactly
as it drives vLLM:

- `GET /v1/models`, `GET /health`
- `POST /v1/chat/completions` (messages, tools, temperature, max_tokens, seed; `return_token_ids`
  → top-level `prompt_token_ids` and per-choice `token_ids`; `logprobs` → `logprobs.content`;
  per-choice `weight_versions` spans; tool calls parsed as vLLM's hermes parser does)
- `POST /tokenize`, `POST /v1/completions` with a token-id prompt
- `GET /weight_info`, `GET /is_paused`, and the update sequence `POST /pause?mode=keep|wait` →
  `/start_weight_update` → `/update_weights {update_info: {path}}` → `/finish_weight_update
  {weight_version}` → `/resume`, loading a safetensors checkpoint written by the trainer.

Requests in flight are generated as one batch (continuous batching: one forward pass advances
every request by a token; each keeps its own temperature, seed, stops and log-probs), with a
key/value cache per request, dropped when new weights load. Sampling
holds the weights token by token: a paused engine (mode=keep) holds requests between tokens, so a request that straddles an update reports each token's version in its spans. Each
log-prob is that of the sampled token under softmax(logits / temperature), the distribution it
was drawn from. `python3 -m rollout_trainer.server --port 0` prints the address it listens on.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import torch

from .model import Policy, load_checkpoint, load_weights
from .vocab import IM_END, PAD_ID, VOCAB, TemplateError, parse_tool_calls, render_ids
from .lifetime import exit_with_stdin

STOP_IDS = {IM_END, PAD_ID}


class ApiError(Exception):
    def __init__(self, status: int, message: str, param: str | None = None, code: str = "bad_request"):
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code


class Request:
    """One generation in flight: its tokens so far, its own sampling state, and the event its
    HTTP thread waits on."""

    def __init__(self, prompt: list[int], max_tokens: int, temperature: float, generator: torch.Generator, stop_ids: set[int]):
        self.ids = list(prompt)
        self.max_tokens, self.temperature, self.generator, self.stop_ids = max_tokens, temperature, generator, stop_ids
        self.out: list[int] = []
        self.logprobs: list[float] = []
        self.versions: list = []
        self.finish = "length"
        self.error: Exception | None = None
        self.done = threading.Event()
        self.cache: list | None = None  # per layer (keys, values) of ids[:-1] after the first step
        self.epoch = -1  # the engine's weights epoch the cache was computed under


class Engine:
    """The model, its served version and the weight-update state machine (vLLM's phases:
    serving → paused → updating → loaded → paused → serving; a failed load leaves `failed`).

    Generation is batched continuously, as vLLM's scheduler does: HTTP threads enqueue requests,
    and one scheduler thread advances every request in flight by one token per forward pass
    (rows padded on the right, so causal attention keeps each row's logits those of its own
    tokens), each row sampled with its own temperature, generator and stops. A request that
    arrives mid-generation joins at the next token. The step runs under the lock, only while
    serving: a pause holds every request between two tokens."""

    def __init__(self, model: Policy, version: str | None, served: str, max_batch: int = 64):
        self.model = model
        self.version = version
        self.served = served
        self.phase = "serving"
        self.cond = threading.Condition()
        self.max_batch = max_batch
        self.waiting: list[Request] = []
        self.scheduler: threading.Thread | None = None
        self.largest_batch = 0  # the most requests one forward pass has advanced (a statistic)
        self.epoch = 0  # counts weight loads: a cache from an older epoch is recomputed

    def generate(self, prompt: list[int], max_tokens: int, temperature: float, seed, stop_ids: set[int]):
        if len(prompt) >= self.model.config.max_len:
            raise ApiError(400, f"the prompt has {len(prompt)} tokens; this model's context is {self.model.config.max_len}", "messages", "context_length_exceeded")
        generator = torch.Generator()
        generator.manual_seed(int(seed) if seed is not None else int.from_bytes(os.urandom(7), "little"))
        request = Request(prompt, max_tokens, temperature, generator, stop_ids)
        with self.cond:
            self.waiting.append(request)
            if self.scheduler is None:
                self.scheduler = threading.Thread(target=self.schedule, name="policy-scheduler", daemon=True)
                self.scheduler.start()
            self.cond.notify_all()
        request.done.wait()
        if request.error is not None:
            raise ApiError(500, f"generation failed: {request.error}", code="generation_failed")
        return request.out, request.logprobs, request.versions, request.finish

    def schedule(self) -> None:
        """The scheduler thread: one batched token step at a time, forever."""
        running: list[Request] = []
        while True:
            with self.cond:
                self.cond.wait_for(lambda: self.phase == "serving" and (running or self.waiting))
                room = self.max_batch - len(running)
                running += self.waiting[:room]
                del self.waiting[:room]
                try:
                    self.step(running)
                except Exception as e:  # a model failure must not leave HTTP threads waiting forever
                    for r in running:
                        r.error = e
                        r.done.set()
                    running = []
                    continue
            still = []
            for r in running:
                if r.finish == "stop" or len(r.out) >= r.max_tokens or len(r.ids) >= self.model.config.max_len:
                    r.done.set()
                else:
                    still.append(r)
            running = still

    def step(self, running: list[Request]) -> None:
        """Samples one token for every request in running (called under the lock, serving).
        A request new to the batch, or whose cache predates the weights, is run whole (prefill);
        the others feed only their last token, against their key/value cache."""
        self.largest_batch = max(self.largest_batch, len(running))
        fresh = [r for r in running if r.cache is None or r.epoch != self.epoch]
        cached = [r for r in running if not (r.cache is None or r.epoch != self.epoch)]
        logits = {}
        if fresh:
            last, caches = self.model.prefill([r.ids for r in fresh])
            for row, r in enumerate(fresh):
                r.cache, r.epoch, logits[id(r)] = caches[row], self.epoch, last[row]
        if cached:
            last = self.model.decode([r.ids[-1] for r in cached], [r.cache for r in cached])
            for row, r in enumerate(cached):
                logits[id(r)] = last[row]
        for r in running:
            row_logits = logits[id(r)].double()
            if r.temperature > 0:
                logp = torch.log_softmax(row_logits / r.temperature, -1)
                token = int(torch.multinomial(logp.exp(), 1, generator=r.generator))
            else:
                logp = torch.log_softmax(row_logits, -1)
                token = int(row_logits.argmax())
            r.out.append(token)
            r.logprobs.append(float(logp[token]))
            r.versions.append(self.version)
            r.ids.append(token)
            if token in r.stop_ids:
                r.finish = "stop"

    def pause(self, mode: str):
        if mode not in ("keep", "wait", "abort"):
            raise ApiError(400, f"mode {mode!r}: pause with mode=keep, wait or abort", "mode")
        with self.cond:
            if self.phase in ("updating", "loaded"):
                raise ApiError(409, "a weight update is in progress; finish it before pausing again", code="conflict")
            if self.phase == "serving":
                self.phase = "paused"
        return {"status": "paused"}

    def resume(self):
        with self.cond:
            if self.phase in ("updating", "loaded"):
                raise ApiError(409, "a weight update is in progress: POST /finish_weight_update first", code="conflict")
            self.phase = "serving"
            self.cond.notify_all()
        return {"status": "resumed"}

    def start_update(self):
        with self.cond:
            if self.phase == "serving":
                raise ApiError(409, "the engine is serving: POST /pause before /start_weight_update", code="conflict")
            if self.phase not in ("paused", "failed"):
                raise ApiError(409, "a weight update is already in progress", code="conflict")
            self.phase = "updating"
        return {"message": "Weight update started"}

    def load(self, body: dict):
        info = body.get("update_info")
        path = info.get("path") if isinstance(info, dict) else None
        if not isinstance(path, str) or not path:
            raise ApiError(400, "Missing 'update_info.path' (the directory to load) in request body", "update_info.path")
        with self.cond:
            if self.phase not in ("updating", "loaded"):
                raise ApiError(409, "no weight update in progress: POST /start_weight_update first", code="conflict")
            file = os.path.join(path, "model.safetensors") if os.path.isdir(path) else path
            try:
                load_weights(self.model, file)
            except (OSError, ValueError) as e:
                self.phase = "failed"
                raise ApiError(500, f"loading weights failed: {e}", "update_info.path", "load_failed") from None
            self.phase = "loaded"
            self.epoch += 1  # requests held across the update continue under the new weights only
        return {"message": "Weights updated"}

    def finish(self, body: dict):
        version = body.get("weight_version")
        if version is not None and not isinstance(version, str):
            raise ApiError(400, "weight_version must be a string", "weight_version")
        with self.cond:
            if self.phase == "updating":
                raise ApiError(409, "no weights loaded: POST /update_weights before finishing", code="conflict")
            if self.phase != "loaded":
                raise ApiError(409, "no weight update in progress: POST /start_weight_update first", code="conflict")
            if version is not None:
                self.version = version
            self.phase = "paused"
        return {"message": "Weight update finished"}


def spans(versions: list) -> list[dict]:
    out: list[dict] = []
    for i, v in enumerate(versions):
        if out and out[-1]["version"] == v:
            out[-1]["end"] = i + 1
        else:
            out.append({"version": v, "start": i, "end": i + 1})
    return out


def _number(body: dict, key: str, default, low: float, high: float, integer: bool = False):
    value = body.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and int(value) != value) or not low <= value <= high:
        kind = "an integer" if integer else "a number"
        raise ApiError(400, f"'{key}' must be {kind} in [{low}, {high}], got {json.dumps(value)}", key)
    return int(value) if integer else float(value)


def _common(body: dict, engine: Engine):
    model = body.get("model")
    if model is not None and model != engine.served:
        raise ApiError(404, f"The model `{model}` does not exist.", "model", "model_not_found")
    if body.get("stream"):
        raise ApiError(400, "this server does not stream; send stream: false", "stream")
    if body.get("n") not in (None, 1):
        raise ApiError(400, "this server answers n = 1 only", "n")
    temperature = _number(body, "temperature", 1.0, 0, 100)
    max_tokens = _number(body, "max_completion_tokens", None, 1, 1 << 20, True)
    if max_tokens is None:
        max_tokens = _number(body, "max_tokens", 64, 1, 1 << 20, True)
    seed = _number(body, "seed", None, -(1 << 63), (1 << 63) - 1, True)
    return temperature, max_tokens, seed


def chat_completion(engine: Engine, body: dict) -> tuple[dict, str | None]:
    temperature, max_tokens, seed = _common(body, engine)
    try:
        prompt = render_ids(body.get("messages"), body.get("tools"), True)
    except TemplateError as e:
        raise ApiError(400, str(e), "messages") from None
    except (AttributeError, TypeError) as e:
        raise ApiError(400, f"malformed messages or tools: {e}", "messages") from None
    ids, logprobs, versions, finish = engine.generate(prompt, max_tokens, temperature, seed, STOP_IDS)
    text = VOCAB.decode(ids[:-1] if finish == "stop" else ids)
    content, calls = parse_tool_calls(text) if body.get("tools") else (text, [])
    message: dict = {"role": "assistant", "content": content, "tool_calls": calls}
    if calls and finish == "stop":
        finish = "tool_calls"
    choice: dict = {"index": 0, "message": message, "finish_reason": finish, "stop_reason": None}
    if body.get("logprobs"):
        choice["logprobs"] = {
            "content": [
                {"token": VOCAB.decode([i]), "logprob": lp, "bytes": list(VOCAB.token_bytes(i)), "top_logprobs": []}
                for i, lp in zip(ids, logprobs)
            ]
        }
    else:
        choice["logprobs"] = None
    answer = _envelope(engine, "chatcmpl-", "chat.completion", choice, prompt, ids)
    if body.get("return_token_ids"):
        answer["prompt_token_ids"] = prompt
        choice["token_ids"] = ids
        if all(v is not None for v in versions):
            choice["weight_versions"] = spans(versions)
    return answer, versions[-1] if versions else engine.version


def _envelope(engine: Engine, id_prefix: str, kind: str, choice: dict, prompt: list, ids: list) -> dict:
    """The OpenAI response around one choice: id, object, model and token usage."""
    return {
        "id": id_prefix + uuid.uuid4().hex,
        "object": kind,
        "created": int(time.time()),
        "model": engine.served,
        "choices": [choice],
        "usage": {"prompt_tokens": len(prompt), "completion_tokens": len(ids), "total_tokens": len(prompt) + len(ids)},
    }


def text_completion(engine: Engine, body: dict) -> tuple[dict, str | None]:
    temperature, max_tokens, seed = _common(body, engine)
    prompt = body.get("prompt")
    if isinstance(prompt, str):
        prompt = VOCAB.encode(prompt)
    if not isinstance(prompt, list) or not prompt or not all(isinstance(i, int) and not isinstance(i, bool) and 0 <= i < VOCAB.size for i in prompt):
        raise ApiError(400, f"'prompt' must be a string or a non-empty list of token ids in [0, {VOCAB.size})", "prompt")
    stop = body.get("stop_token_ids")
    if stop is not None and not (isinstance(stop, list) and all(isinstance(i, int) for i in stop)):
        raise ApiError(400, "'stop_token_ids' must be a list of token ids", "stop_token_ids")
    want_logprobs = body.get("logprobs")
    if want_logprobs is not None and (isinstance(want_logprobs, bool) or not isinstance(want_logprobs, int) or want_logprobs < 0):
        raise ApiError(400, "'logprobs' must be a non-negative integer or null", "logprobs")
    ids, logprobs, versions, finish = engine.generate(prompt, max_tokens, temperature, seed, STOP_IDS | set(stop or []))
    choice: dict = {"index": 0, "text": VOCAB.decode(ids[:-1] if finish == "stop" else ids), "finish_reason": finish, "stop_reason": None}
    choice["logprobs"] = (
        {"tokens": [VOCAB.decode([i]) for i in ids], "token_logprobs": logprobs, "top_logprobs": [{} for _ in ids], "text_offset": [0 for _ in ids]}
        if want_logprobs is not None
        else None
    )
    answer = _envelope(engine, "cmpl-", "text_completion", choice, prompt, ids)
    if body.get("return_token_ids"):
        answer["prompt_token_ids"] = prompt
        choice["prompt_token_ids"] = prompt
        choice["token_ids"] = ids
        if all(v is not None for v in versions):
            choice["weight_versions"] = spans(versions)
    return answer, versions[-1] if versions else engine.version


def tokenize(engine: Engine, body: dict) -> dict:
    if isinstance(body.get("prompt"), str):
        ids = VOCAB.encode(body["prompt"])
    else:
        try:
            ids = render_ids(body.get("messages"), body.get("tools"), body.get("add_generation_prompt", True) is not False)
        except TemplateError as e:
            raise ApiError(400, f"give 'messages' or 'prompt': {e}", "messages") from None
    return {
        "count": len(ids),
        "max_model_len": engine.model.config.max_len,
        "tokens": ids,
        "token_strs": [VOCAB.decode([i]) for i in ids] if body.get("return_token_strs") else None,
    }


def make_handler(engine: Engine, api_key: str | None):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # The headers and the body go out in two writes: with Nagle's algorithm on, the body waits
        # for the ACK of the headers, which a client delays ~40 ms (measured: 54 ms per request
        # at concurrency 1 with it, 13 ms without).
        disable_nagle_algorithm = True

        def log_message(self, *args):  # quiet: a request log line per token call would drown the output
            pass

        def send_json(self, status: int, body, headers: dict | None = None):
            data = json.dumps(body).encode("utf-8")
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def body(self) -> dict:
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length) if length else b""
            if not raw.strip():
                return {}
            try:
                parsed = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError) as e:
                raise ApiError(400, f"the request body is not valid JSON: {e}") from None
            if not isinstance(parsed, dict):
                raise ApiError(400, "the request body must be a JSON object")
            return parsed

        def route(self, method: str):
            url = urlparse(self.path)
            query = parse_qs(url.query)
            try:
                body = self.body() if method == "POST" else {}
                if url.path != "/health" and api_key is not None and self.headers.get("authorization") != f"Bearer {api_key}":
                    raise ApiError(401, "Unauthorized", code="unauthorized")
                key = f"{method} {url.path}"
                headers = {}
                if key == "GET /health":
                    answer = {}
                elif key == "GET /v1/models":
                    answer = {"object": "list", "data": [{"id": engine.served, "object": "model", "created": 0, "owned_by": "rollout_trainer", "max_model_len": engine.model.config.max_len}]}
                elif key in ("POST /v1/chat/completions", "POST /v1/completions"):
                    answer, version = (chat_completion if key.endswith("chat/completions") else text_completion)(engine, body)
                    if version is not None:
                        headers["x-policy-version"] = version
                elif key == "POST /tokenize":
                    answer = tokenize(engine, body)
                elif key == "GET /weight_info":
                    answer = {"weight_version": engine.version}
                elif key == "GET /is_paused":
                    answer = {"is_paused": engine.phase != "serving"}
                elif key == "POST /pause":
                    answer = engine.pause(query.get("mode", ["abort"])[0])
                elif key == "POST /resume":
                    answer = engine.resume()
                elif key == "POST /init_weight_transfer_engine":
                    answer = {"message": "disk backend: nothing to initialise"}
                elif key == "POST /start_weight_update":
                    answer = engine.start_update()
                elif key == "POST /update_weights":
                    answer = engine.load(body)
                elif key == "POST /finish_weight_update":
                    answer = engine.finish(body)
                else:
                    raise ApiError(404, f"no route {key}", code="not_found")
                self.send_json(200, answer, headers)
            except ApiError as e:
                self.send_json(e.status, {"error": {"message": e.message, "type": "invalid_request_error" if e.status < 500 else "server_error", "param": e.param, "code": e.code}})

        def do_GET(self):
            self.route("GET")

        def do_POST(self):
            self.route("POST")

    return Handler


class PolicyHTTPServer(ThreadingHTTPServer):
    # The sampler opens its connections all at once (32 episodes in flight): with the default
    # listen backlog of 5, a client saw a connection reset at concurrency 32; none with this.
    request_queue_size = 256


def start(engine: Engine, port: int = 0, api_key: str | None = None, host: str = "127.0.0.1") -> ThreadingHTTPServer:
    """Serves engine on a thread; the server (its port is server.server_address[1])."""
    server = PolicyHTTPServer((host, port), make_handler(engine, api_key))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main(argv=None):
    parser = argparse.ArgumentParser(prog="rollout_trainer.server", description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", help="a checkpoint directory (model.safetensors + config.json); default a fresh model")
    parser.add_argument("--port", type=int, default=8000, help="0 picks a free port (printed)")
    parser.add_argument("--served-model-name", default="policy")
    parser.add_argument("--api-key", default=os.environ.get("POLICY_API_KEY"), help="bearer token required on every route but /health")
    parser.add_argument("--version", default=None, help="the weight version served at start (default: the checkpoint's, else 0)")
    parser.add_argument("--seed", type=int, default=0, help="initialises a fresh model")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--exit-with-stdin", action="store_true", help="end when standard input closes (the program that started this one ended)")
    parser.add_argument("--max-batch", type=int, default=64, help="requests generated together at most (the rest wait their turn)")
    args = parser.parse_args(argv)
    if args.exit_with_stdin:
        exit_with_stdin()
    if args.max_batch < 1:
        parser.error("--max-batch must be at least 1")
    torch.set_num_threads(args.threads)
    if args.checkpoint:
        model, version = load_checkpoint(args.checkpoint)
    else:
        torch.manual_seed(args.seed)
        model, version = Policy().eval(), None
    engine = Engine(model, args.version or version or "0", args.served_model_name, args.max_batch)
    server = start(engine, args.port, args.api_key)
    print(json.dumps({"url": f"http://127.0.0.1:{server.server_address[1]}/v1", "port": server.server_address[1], "model": args.served_model_name, "version": engine.version, "parameters": model.parameter_count()}), flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        server.shutdown()


if __name__ == "__main__":
    sys.exit(main())
