"""Tiny-model serving: raw generation vs worker → Redis → Daphne → websocket client; JSON out.

Run from the repository root (needs Redis; prints one JSON object on stdout, progress on stderr)::

    .venv/bin/python bench/inference.py                       # 8 concurrent, 128 tokens, 3 repeats
    .venv/bin/python bench/inference.py --requests 8 --tokens 128 --repeat 3
    .venv/bin/python bench/inference.py --torch-threads 1   # leave a core to the serving path

Everything comes from one run of one process tree:

- this process: Django with ``tests.settings``, a throwaway ``QWEB_DATA_DIR`` and SQLite database
  there (or a created-and-dropped ``qweb_bench_inference_<pid>`` database on the server
  ``DATABASE_URL`` names), the tiny random Qwen3-MoE from ``inference.tiny`` written to a
  temporary folder, the real local backend (``apps.generation.backends.local_backend``: int8
  experts, continuous-batching engine) and, for the full-path runs, an ``InferenceWorker``
  serving from a thread with its real ``run()`` loop;
- a real Daphne (``python -m daphne … qweb.asgi:application``) on a free loopback port, sharing
  the database, the Redis channel layer and cache (``REDIS_URL``, default
  redis://127.0.0.1:6379/0, under a channel prefix unique to this run);
- a websocket client process (autobahn on asyncio — the ``websockets`` package is not installed;
  autobahn comes with Daphne) that follows ``/ws/jobs/<id>/`` with the bench user's session
  cookie and notes when every event arrives.

Measurements (each repeated ``--repeat`` times, interleaved; medians reported, best and all
runs beside them):

1. ``raw.generate_1``: ``model.generate`` (greedy) of one request, on the same int8 model the
   backend serves, prompt rendered with the chat template as the engine does.
   ``raw.engine_1`` / ``raw.engine_N``: the backend's ``Engine`` driven directly (submit, poll),
   one request, then ``--requests`` at once. Tokens/s = completion tokens / (first submit → last
   finished event).
2. ``full_path.1`` / ``full_path.N``: the same chats submitted with
   ``apps.generation.services.job_submit``; tokens/s = completion tokens (from the
   ``job.finished`` event) / (just before the first ``job_submit`` → the client receiving the last
   ``job.finished``). Three delays per websocket delta, all on ``time.monotonic()`` (one
   system-wide clock on Linux, so comparable across the processes):

   - ``transport_ms``: worker hands the delta to the channel layer (the instant before
     ``group_send``) → client receives the frame. Redis, Daphne's consumer and the socket:
     **the ≤ 20 ms p99 target is about this one.**
   - ``token_age_ms``: the engine emits a token's text (its pump thread queues the event) →
     client receives the delta holding it; one sample per token. It includes the worker's
     coalescing (``QWEB_DELTA_MS``, by design up to 50 ms) on top of the transport.
   - ``coalesce_wait_ms``: the part of the token age spent in the worker before the send.

   The worker side is timed by a subclass defined here (``_TimedWorker``) that overrides
   ``_on_event``/``_flush``/``_send`` only to note times, and by a stamping queue put in place of
   the engine's private event queue; no app code is changed. Deltas sent before the client had
   joined the group reach it inside the snapshot and are not timed (``deltas_in_snapshot``).
   ``text_matches`` checks the client's rebuilt text against the stored job text.
3. ``memory``: ``inference.loader.model_info`` of the tiny model loaded with int8 experts and with
   none in bf16 (the checkpoint's own precision; fp32, the CPU compute default, beside it):
   expert bytes with the int8 scales included, and their ratio (target ≤ 0.55).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import queue
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._live import (  # noqa: E402 - needs ROOT on the path
    check_redis,
    cleanup_redis,
    database_url,
    log_tail,
    package_version,
    percentiles,
    session_cookie,
    start_daphne,
    stop_process,
)

# Eight different coding requests; request i of a batch uses PROMPTS[i % 8], one request PROMPTS[0].
PROMPTS = (
    "Write a function that adds two numbers.",
    "Explain what a Python context manager is, with an example.",
    "Refactor this loop into a list comprehension: for x in xs: out.append(x * 2)",
    "How do I read a JSON file into a dict?",
    "Write a dataclass for a point with x and y and a method for its distance to the origin.",
    "What does functools.lru_cache do?",
    "Write a shell-quoting helper for a list of arguments.",
    "Show a minimal unit test for a function that reverses a string.",
)

FINISHED_STATES = {"done", "failed", "cancelled"}

TARGETS = {
    "full_over_raw_generate_min": 0.9,
    "transport_p99_ms_max": 20.0,
    "concurrent_over_single_min": 3.0,
    "expert_bytes_int8_over_bf16_max": 0.55,
}


def _log(message: str) -> None:
    print(f"[bench/inference] {message}", file=sys.stderr, flush=True)


def _messages(index: int) -> list[dict[str, str]]:
    return [{"role": "user", "content": PROMPTS[index % len(PROMPTS)]}]


def _rate_summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    rates = [run["tokens_per_s"] for run in runs]
    summary: dict[str, Any] = {
        "tokens_per_s": round(statistics.median(rates), 2),
        "best_tokens_per_s": round(max(rates), 2),
        "runs_tokens_per_s": [round(rate, 2) for rate in rates],
        "tokens": [run["tokens"] for run in runs],
        "seconds": [round(run["seconds"], 4) for run in runs],
    }
    firsts = [run["first_token_s"] for run in runs if run.get("first_token_s") is not None]
    if firsts:
        summary["first_token_s"] = round(statistics.median(firsts), 4)
    reasons = sorted({reason for run in runs for reason in run.get("finish_reasons", [])})
    if reasons:
        summary["finish_reasons"] = reasons
    return summary


# --------------------------------------------------------------------------- websocket client


def client_main(port: int) -> None:
    """The websocket client process: one JSON command per stdin line, one JSON answer per line.

    A command ``{"jobs": [ids], "timeout": s}`` opens one socket per job at once and answers, for
    each job, every event received with its arrival time (``time.monotonic()``).
    """
    import asyncio

    cookie = os.environ["QWEB_BENCH_COOKIE"]
    for line in sys.stdin:
        command = json.loads(line)
        try:
            answer = asyncio.run(_follow_jobs(port, cookie, command["jobs"], command["timeout"]))
        except Exception as error:  # reported to the parent, which fails the run with it
            answer = {"error": f"{type(error).__name__}: {error}"}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


async def _follow_jobs(port: int, cookie: str, jobs: list[int], timeout: float) -> dict[str, Any]:
    import asyncio

    results = await asyncio.gather(*(_follow_job(port, cookie, job, timeout) for job in jobs))
    return {"jobs": {str(job): result for job, result in zip(jobs, results, strict=True)}}


async def _follow_job(port: int, cookie: str, job_id: int, timeout: float) -> dict[str, Any]:
    import asyncio

    from autobahn.asyncio.websocket import WebSocketClientFactory, WebSocketClientProtocol

    loop = asyncio.get_running_loop()
    finished: asyncio.Future[None] = loop.create_future()
    closed: asyncio.Future[None] = loop.create_future()
    record: dict[str, Any] = {"events": [], "connect_started": time.monotonic()}

    class Follower(WebSocketClientProtocol):
        def onOpen(self) -> None:
            record["opened"] = time.monotonic()

        def onMessage(self, payload: bytes, is_binary: bool) -> None:
            received = time.monotonic()
            event = json.loads(payload)
            kind = event.get("type")
            entry = {"t": received, "type": kind, "seq": event.get("seq")}
            entry["attempt"] = event.get("attempt")
            if kind in {"job.delta", "job.snapshot", "job.rewind"}:
                entry["text"] = event.get("text", "")
            if kind == "job.finished":
                for key in ("state", "finish_reason", "error", "prompt_tokens"):
                    entry[key] = event.get(key)
                entry["completion_tokens"] = event.get("completion_tokens")
            if kind == "job.snapshot":
                entry["state"] = event.get("state")
            record["events"].append(entry)
            # A job that ended before the socket joined its group only shows in the snapshot.
            done = kind == "job.finished" or entry.get("state") in FINISHED_STATES
            if done and not finished.done():
                finished.set_result(None)

        def onClose(self, was_clean: bool, code: int | None, reason: str | None) -> None:
            record["close"] = {"clean": was_clean, "code": code, "reason": reason}
            if not finished.done():
                finished.set_exception(RuntimeError(f"socket closed early: {code} {reason}"))
            if not closed.done():
                closed.set_result(None)

    factory = WebSocketClientFactory(
        f"ws://127.0.0.1:{port}/ws/jobs/{job_id}/",
        origin=f"http://127.0.0.1:{port}",
        headers={"Cookie": cookie},
        loop=loop,
    )
    factory.setProtocolOptions(tcpNoDelay=True)
    factory.protocol = Follower
    transport, protocol = await loop.create_connection(factory, "127.0.0.1", port)
    try:
        await asyncio.wait_for(finished, timeout)
    except Exception as error:
        seen = [(round(e["t"] - record["connect_started"], 3), e["type"]) for e in record["events"]]
        hint = ""
        if "1011" in str(error):
            hint = (
                " (a 1011 close ~5 s after the last event: channels_redis' blocking read outlived "
                "redis-py 8's default socket_timeout of 5 s; see bench/README.md)"
            )
        raise RuntimeError(
            f"job {job_id}: {type(error).__name__} {error}{hint}; "
            f"events (seconds after connect, type): {seen[-10:]}"
        ) from None
    finally:
        protocol.sendClose(code=1000)
        try:
            await asyncio.wait_for(closed, 2.0)
        except TimeoutError:
            transport.close()
    return record


# --------------------------------------------------------------------------- the benchmark


def _prepare_environment(arguments: argparse.Namespace, work: Path) -> dict[str, str]:
    """Point the settings at throwaway places before Django is imported; return the shared env."""
    os.environ["QWEB_DATA_DIR"] = str(work / "data")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    os.environ["REDIS_URL"] = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
    os.environ["QWEB_CHANNEL_PREFIX"] = f"qweb-bench-{os.getpid()}"
    os.environ["QWEB_MODEL_DIR"] = str(work / "model")
    os.environ["QWEB_DEVICE"] = "cpu"
    os.environ["QWEB_QUANTIZE"] = arguments.quantize
    os.environ.setdefault("QWEB_LOG_LEVEL", "WARNING")
    os.environ["QWEB_MAX_NEW_TOKENS"] = str(max(arguments.tokens, 4096))
    if arguments.delta_ms is not None:
        os.environ["QWEB_DELTA_MS"] = str(arguments.delta_ms)
    if arguments.delta_tokens is not None:
        os.environ["QWEB_DELTA_TOKENS"] = str(arguments.delta_tokens)
    sys.path.insert(0, str(ROOT))
    return {
        name: os.environ[name]
        for name in (
            "QWEB_DATA_DIR",
            "DJANGO_SETTINGS_MODULE",
            "REDIS_URL",
            "QWEB_CHANNEL_PREFIX",
            "QWEB_MODEL_DIR",
            "QWEB_DEVICE",
            "QWEB_QUANTIZE",
            "QWEB_LOG_LEVEL",
            "QWEB_MAX_NEW_TOKENS",
        )
    }


class _StampedQueue(queue.Queue):
    """Stands in for the engine's event queue and notes when each event was produced."""

    def __init__(self, stamps: dict[tuple[str, int], float]) -> None:
        super().__init__()
        self.stamps = stamps

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        self.stamps[(item.request_id, item.seq)] = time.monotonic()
        super().put(item, block, timeout)


def _timed_worker_class() -> type:
    from apps.generation.worker import InferenceWorker

    class _TimedWorker(InferenceWorker):
        """The real worker; the overrides only note times, then call the real methods."""

        def __init__(self, *args: Any, produced: dict[tuple[str, int], float], **kwargs: Any):
            super().__init__(*args, **kwargs)
            self.produced = produced
            self.pending: dict[str, list[tuple[float, int]]] = defaultdict(list)
            # (job id, seq) -> token production times, flush time, send start and end
            self.deltas: dict[tuple[int, int], dict[str, Any]] = {}
            self.flush_ms: list[float] = []  # whole _flush: tail_append + group_send
            self.step_ms: list[float] = []  # loop turns while jobs run

        def _on_event(self, event: Any) -> None:
            if event.request_id in self.streams and event.token_ids:
                stamp = self.produced.pop((event.request_id, event.seq), None)
                self.pending[event.request_id].append(
                    (stamp if stamp is not None else time.monotonic(), len(event.token_ids))
                )
            super()._on_event(event)

        def _flush(self, stream: Any) -> None:
            if not stream.buffer:
                super()._flush(stream)
                return
            started = time.monotonic()
            self.deltas[(stream.job_id, stream.seq + 1)] = {
                "tokens": self.pending.pop(stream.request_id, []),
                "flush": started,
            }
            super()._flush(stream)
            self.flush_ms.append((time.monotonic() - started) * 1000)

        def step(self, poll_timeout: float = 0.01) -> None:
            started = time.monotonic()
            super().step(poll_timeout)
            if self.streams:
                self.step_ms.append((time.monotonic() - started) * 1000)

        def _send(self, event: dict[str, Any]) -> None:
            record = None
            if event.get("type") == "job.delta":
                record = self.deltas.get((event["job_id"], event["seq"]))
            if record is not None:
                record["sent"] = time.monotonic()
            super()._send(event)
            if record is not None:
                record["send_returned"] = time.monotonic()

    return _TimedWorker


class Bench:
    """Holds the model, backend, Daphne and the client for the whole run."""

    def __init__(self, arguments: argparse.Namespace, work: Path, env: dict[str, str]) -> None:
        self.arguments = arguments
        self.work = work
        self.env = env
        self.daphne: subprocess.Popen | None = None
        self.client: subprocess.Popen | None = None
        self.backend: Any = None
        self.stamps: dict[tuple[str, int], float] = {}
        self.stamping = False
        self.request_counter = 0

    # ------------------------------------------------------------------ setup

    def build_model(self) -> Path:
        from inference.tiny import make_tiny_model

        return make_tiny_model(self.env["QWEB_MODEL_DIR"], seed=0)

    def load(self) -> None:
        import torch
        from transformers import AutoTokenizer

        from apps.generation.backends import local_backend
        from inference.loader import load_model

        model_dir = Path(self.env["QWEB_MODEL_DIR"])
        self.tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
        # The raw `generate` baseline: the same checkpoint and quantization the backend serves.
        if self.arguments.torch_threads:
            torch.set_num_threads(self.arguments.torch_threads)
        self.model = load_model(model_dir, quantize=self.arguments.quantize, device="cpu")
        self.backend = local_backend()
        self.engine = self.backend.engine
        events = getattr(self.engine, "_events", None)
        if isinstance(events, queue.Queue) and events.empty():
            self.engine._events = _StampedQueue(self.stamps)
            self.stamping = True
        self.torch_threads = torch.get_num_threads()

    def start_services(self, cookie: str) -> None:
        env = {**os.environ, **self.env}
        self.daphne, port = start_daphne(env, self.work / "daphne.log")
        self.port = port
        client_log = (self.work / "client.log").open("wb")
        self.client = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--client", "--port", str(port)],
            cwd=ROOT,
            env={**env, "QWEB_BENCH_COOKIE": cookie},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=client_log,
            text=True,
        )

    def _tail(self, name: str) -> str:
        return log_tail(self.work / name)

    def stop_services(self) -> None:
        if self.client is not None:
            if self.client.stdin:
                self.client.stdin.close()
            try:
                self.client.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.client.kill()
        stop_process(self.daphne)
        if self.backend is not None:
            self.backend.shutdown()

    # ------------------------------------------------------------------ raw runs

    def _render(self, index: int) -> list[int]:
        text = self.tokenizer.apply_chat_template(
            _messages(index), tokenize=False, add_generation_prompt=True
        )
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def run_generate(self, tokens: int) -> dict[str, Any]:
        import torch

        ids = torch.tensor([self._render(0)])
        started = time.monotonic()
        with torch.no_grad():
            out = self.model.generate(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=tokens,
                do_sample=False,
            )
        seconds = time.monotonic() - started
        new = int(out.shape[1] - ids.shape[1])
        return {"tokens": new, "seconds": seconds, "tokens_per_s": new / seconds}

    def run_engine(self, requests: int, tokens: int) -> dict[str, Any]:
        from inference.sampling import SamplingParams

        self.request_counter += 1
        ids = [f"raw-{self.request_counter}-{i}" for i in range(requests)]
        started = time.monotonic()
        for i, request_id in enumerate(ids):
            self.engine.submit(request_id, _messages(i), SamplingParams(max_new_tokens=tokens))
        total = 0
        first = None
        reasons = []
        done = 0
        while done < requests:
            for event in self.engine.poll(timeout=1.0):
                if first is None and event.text:
                    first = time.monotonic() - started
                if event.finished:
                    done += 1
                    total += event.completion_tokens
                    reasons.append(event.finish_reason)
                    if event.finish_reason == "error":
                        raise RuntimeError(f"engine error: {event.error}")
            if time.monotonic() - started > self.arguments.timeout:
                raise RuntimeError("raw engine run timed out")
        seconds = time.monotonic() - started
        self.stamps.clear()
        return {
            "tokens": total,
            "seconds": seconds,
            "tokens_per_s": total / seconds,
            "first_token_s": first,
            "finish_reasons": reasons,
        }

    # ------------------------------------------------------------------ full path

    def run_full(self, requests: int, tokens: int, user_id: int) -> dict[str, Any]:
        from django.db import connection, transaction

        from apps.generation.models import GenerationJob
        from apps.generation.services import job_submit

        worker_class = _timed_worker_class()
        self.stamps.clear()
        worker = worker_class(
            self.engine,
            worker_id=f"bench-{os.getpid()}",
            model_name=self.backend.model_name,
            device=self.backend.device,
            prompt_builder=self.backend.prompt_builder,
            produced=self.stamps,
        )

        def serve() -> None:
            try:
                worker.run(grace_s=5)
            finally:
                connection.close()

        thread = threading.Thread(target=serve, name="bench-worker", daemon=True)
        thread.start()
        try:
            started = time.monotonic()
            # One transaction: the worker sees the whole batch at once, as one claim.
            with transaction.atomic():
                jobs = [
                    job_submit(
                        messages=_messages(i), params={"max_new_tokens": tokens}, user_id=user_id
                    )
                    for i in range(requests)
                ]
            submitted = time.monotonic()
            assert self.client is not None and self.client.stdin and self.client.stdout
            self.client.stdin.write(
                json.dumps({"jobs": [job.pk for job in jobs], "timeout": self.arguments.timeout})
                + "\n"
            )
            self.client.stdin.flush()
            line = self.client.stdout.readline()
            if not line:
                raise RuntimeError(f"the websocket client died:\n{self._tail('client.log')}")
            answer = json.loads(line)
            if "error" in answer:
                raise RuntimeError(
                    f"websocket client: {answer['error']}\ndaphne log:\n{self._tail('daphne.log')}"
                )
        finally:
            worker.stopping.set()
            thread.join(timeout=30)
        stored = {job.pk: job for job in GenerationJob.objects.filter(pk__in=[j.pk for j in jobs])}
        figures = self._full_figures(
            answer["jobs"], stored, worker.deltas, started, submitted, requests
        )
        figures["worker_flush_ms"] = worker.flush_ms
        figures["worker_step_ms"] = worker.step_ms
        return figures

    def _full_figures(
        self,
        followed: dict[str, Any],
        stored: dict[int, Any],
        deltas: dict[tuple[int, int], dict[str, Any]],
        started: float,
        submitted: float,
        requests: int,
    ) -> dict[str, Any]:
        transport, token_age, coalesce, send_call = [], [], [], []
        total_tokens = 0
        last_finished = started
        first_text = None
        in_snapshot = 0
        finished_early = 0
        missed: list[int] = []
        matches = True
        reasons = []
        connect = []
        for job_id_text, record in followed.items():
            job_id = int(job_id_text)
            job = stored[job_id]
            text = ""
            seq = 0
            if "opened" in record:
                connect.append((record["opened"] - record["connect_started"]) * 1000)
            for event in record["events"]:
                kind = event["type"]
                if kind == "job.snapshot":
                    text, seq = event["text"], event["seq"]
                    in_snapshot += seq
                    if event.get("state") in FINISHED_STATES:
                        # Ended before the client joined: its end is known only as this moment.
                        finished_early += 1
                        total_tokens += job.completion_tokens
                        last_finished = max(last_finished, event["t"])
                        reasons.append(job.finish_reason)
                    if event["text"] and (first_text is None or event["t"] < first_text):
                        first_text = event["t"]
                elif kind == "job.rewind":
                    text, seq = event["text"], event["seq"]
                elif kind == "job.delta":
                    if event["seq"] != seq + 1:
                        matches = False
                        missed.extend(range(seq + 1, event["seq"]))
                    text, seq = text + event["text"], event["seq"]
                    if first_text is None or event["t"] < first_text:
                        first_text = event["t"]
                    sent = deltas.get((job_id, event["seq"]))
                    if sent is None or "sent" not in sent:
                        continue
                    transport.append((event["t"] - sent["sent"]) * 1000)
                    send_call.append((sent["send_returned"] - sent["sent"]) * 1000)
                    for produced, count in sent["tokens"]:
                        token_age.extend([(event["t"] - produced) * 1000] * count)
                        coalesce.extend([(sent["sent"] - produced) * 1000] * count)
                elif kind == "job.finished":
                    total_tokens += event["completion_tokens"] or 0
                    last_finished = max(last_finished, event["t"])
                    reasons.append(event["finish_reason"])
                    if event["state"] != "done":
                        raise RuntimeError(f"job {job_id} ended {event['state']}: {event['error']}")
            if seq != job.seq:
                missed.extend(range(seq + 1, job.seq + 1))
            if text != job.text:
                matches = False
        followed_ids = {int(job_id) for job_id in followed}
        last_produced = max(
            (
                produced
                for (job_id, _), record in deltas.items()
                if job_id in followed_ids
                for produced, _ in record["tokens"]
            ),
            default=None,
        )
        seconds = last_finished - started
        return {
            "tokens": total_tokens,
            "seconds": seconds,
            "tokens_per_s": total_tokens / seconds,
            "first_token_s": None if first_text is None else first_text - started,
            # Tokens / (first submit → the engine emitting the last timed token): how fast the
            # engine itself ran while the worker, Daphne and the client shared the machine.
            "engine_tokens_per_s": (
                None if last_produced is None else total_tokens / (last_produced - started)
            ),
            "deltas_missed": len(missed),
            "submit_s": submitted - started,
            "finish_reasons": reasons,
            "transport_ms": transport,
            "token_age_ms": token_age,
            "coalesce_wait_ms": coalesce,
            "group_send_call_ms": send_call,
            "connect_ms": connect,
            "deltas_in_snapshot": in_snapshot,
            "finished_before_client_joined": finished_early,
            "text_matches": matches,
            "requests": requests,
        }


def _full_summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    summary = _rate_summary(runs)
    engine_rates = [run["engine_tokens_per_s"] for run in runs if run["engine_tokens_per_s"]]
    if engine_rates:
        summary["engine_tokens_per_s_meanwhile"] = round(statistics.median(engine_rates), 2)
    summary["deltas_missed"] = sum(run["deltas_missed"] for run in runs)
    for key in (
        "transport_ms",
        "token_age_ms",
        "coalesce_wait_ms",
        "group_send_call_ms",
        "worker_flush_ms",
        "worker_step_ms",
    ):
        summary[key] = percentiles([value for run in runs for value in run[key]])
    summary["websocket_connect_ms"] = percentiles([v for run in runs for v in run["connect_ms"]])
    summary["deltas_timed"] = sum(len(run["transport_ms"]) for run in runs)
    summary["deltas_in_snapshot"] = sum(run["deltas_in_snapshot"] for run in runs)
    summary["finished_before_client_joined"] = sum(
        run["finished_before_client_joined"] for run in runs
    )
    summary["text_matches"] = all(run["text_matches"] for run in runs)
    return summary


def _memory_figures(model_dir: Path) -> dict[str, Any]:
    import torch

    from inference import int8_experts
    from inference.loader import load_model, model_info

    def experts(quantize: str, dtype: Any) -> dict[str, Any]:
        model = load_model(model_dir, quantize=quantize, device="cpu", dtype=dtype)
        info = model_info(model)
        direct = sum(
            int8_experts.expert_weight_bytes(module)
            for module in model.modules()
            if int8_experts.is_experts_module(module)
        )
        kind = info["kinds"]["experts"]
        return {
            "expert_bytes": kind["bytes"],
            "expert_bytes_expert_weight_bytes": direct,
            "expert_parameters": kind["parameters"],
            "expert_dtypes": kind["dtypes"],
            "expert_scale_dtypes": kind["scale_dtypes"],
            "model_device_bytes": info["device_bytes"],
            "int8_fraction_of_parameters": round(info["int8_fraction"], 4),
        }

    # Non-expert weights in bf16 for both, so the whole-model ratio compares like with like.
    int8 = experts("int8", torch.bfloat16)
    bf16 = experts("none", torch.bfloat16)
    fp32 = experts("none", torch.float32)
    return {
        "int8": int8,
        "bf16": bf16,
        "fp32": fp32,
        "expert_bytes_int8_over_bf16": round(int8["expert_bytes"] / bf16["expert_bytes"], 4),
        "expert_bytes_int8_over_fp32": round(int8["expert_bytes"] / fp32["expert_bytes"], 4),
        "model_bytes_int8_over_bf16": round(
            int8["model_device_bytes"] / bf16["model_device_bytes"], 4
        ),
    }


def run(arguments: argparse.Namespace) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="qweb-bench-inference-"))
    env = _prepare_environment(arguments, work)
    redis_version = check_redis(env["REDIS_URL"], "bench/inference.py")
    wall_started = time.monotonic()
    load_before = os.getloadavg()

    import django

    django.setup()

    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection

    from apps.accounts.models import User

    bench = Bench(arguments, work, env)
    old_name = connection.settings_dict["NAME"]
    created_test_db = False
    try:
        if connection.vendor == "sqlite":
            call_command("migrate", verbosity=0, interactive=False)
        else:
            # A name of this run's own: autoclobber must never drop another run's test database.
            bench_db = f"qweb_bench_inference_{os.getpid()}"
            connection.settings_dict.setdefault("TEST", {})["NAME"] = bench_db
            connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
            created_test_db = True
            bench.env["DATABASE_URL"] = database_url(connection.settings_dict)
        _log("building the tiny model")
        bench.build_model()
        bench.load()
        # Staff: the bench's jobs belong to no workspace, and only staff may follow those.
        user = User.objects.create_user(
            "bench@example.com", "bench-password-1", name="Bench", is_staff=True
        )
        cookie = session_cookie(user)
        _log(f"starting Daphne and the websocket client (Redis {redis_version})")
        bench.start_services(cookie)

        n, tokens = arguments.requests, arguments.tokens
        _log("warming up")
        bench.run_generate(8)
        bench.run_engine(1, 8)
        bench.run_engine(n, 8)
        bench.run_full(1, 8, user.pk)
        bench.run_full(n, 8, user.pk)

        runs: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for repeat in range(arguments.repeat):
            _log(f"repeat {repeat + 1}/{arguments.repeat}: generate, engine 1/{n}, full 1/{n}")
            runs["generate_1"].append(bench.run_generate(tokens))
            runs["engine_1"].append(bench.run_engine(1, tokens))
            runs["engine_n"].append(bench.run_engine(n, tokens))
            runs["full_1"].append(bench.run_full(1, tokens, user.pk))
            runs["full_n"].append(bench.run_full(n, tokens, user.pk))

        _log("measuring memory")
        memory = _memory_figures(Path(env["QWEB_MODEL_DIR"]))
        engine_info = bench.engine.info
        model_config = bench.model.config
        database = connection.vendor
    finally:
        bench.stop_services()
        if created_test_db:
            connection.creation.destroy_test_db(old_name, verbosity=0)
        removed = cleanup_redis(env["REDIS_URL"], env["QWEB_CHANNEL_PREFIX"])
        shutil.rmtree(work, ignore_errors=True)

    raw = {
        "generate_1": _rate_summary(runs["generate_1"]),
        "engine_1": _rate_summary(runs["engine_1"]),
        f"engine_{n}": _rate_summary(runs["engine_n"]),
    }
    full = {"1": _full_summary(runs["full_1"]), str(n): _full_summary(runs["full_n"])}
    generate_1 = raw["generate_1"]["tokens_per_s"]
    engine_1 = raw["engine_1"]["tokens_per_s"]
    engine_n = raw[f"engine_{n}"]["tokens_per_s"]
    full_1 = full["1"]["tokens_per_s"]
    full_n = full[str(n)]["tokens_per_s"]
    transport_p99 = percentiles(
        [v for key in ("full_1", "full_n") for run in runs[key] for v in run["transport_ms"]]
    ).get("p99")
    ratios = {
        "full_1_over_raw_generate_1": round(full_1 / generate_1, 3),
        "full_1_over_engine_1": round(full_1 / engine_1, 3),
        f"full_{n}_over_engine_{n}": round(full_n / engine_n, 3),
        f"engine_{n}_over_engine_1": round(engine_n / engine_1, 3),
        f"full_{n}_over_full_1": round(full_n / full_1, 3),
        "engine_1_over_raw_generate_1": round(engine_1 / generate_1, 3),
    }
    targets = {
        "full_over_raw_generate": {
            "target_min": TARGETS["full_over_raw_generate_min"],
            "value": ratios["full_1_over_raw_generate_1"],
            "met": ratios["full_1_over_raw_generate_1"] >= TARGETS["full_over_raw_generate_min"],
            "also_vs_engine": ratios["full_1_over_engine_1"],
            "also_vs_engine_met": ratios["full_1_over_engine_1"]
            >= TARGETS["full_over_raw_generate_min"],
        },
        "transport_p99_ms": {
            "target_max": TARGETS["transport_p99_ms_max"],
            "value": transport_p99,
            "met": transport_p99 is not None and transport_p99 <= TARGETS["transport_p99_ms_max"],
        },
        "concurrent_over_single": {
            "target_min": TARGETS["concurrent_over_single_min"],
            "value": ratios[f"engine_{n}_over_engine_1"],
            "met": ratios[f"engine_{n}_over_engine_1"] >= TARGETS["concurrent_over_single_min"],
            "full_path_value": ratios[f"full_{n}_over_full_1"],
            "full_path_met": ratios[f"full_{n}_over_full_1"]
            >= TARGETS["concurrent_over_single_min"],
        },
        "expert_bytes_int8_over_bf16": {
            "target_max": TARGETS["expert_bytes_int8_over_bf16_max"],
            "value": memory["expert_bytes_int8_over_bf16"],
            "met": memory["expert_bytes_int8_over_bf16"]
            <= TARGETS["expert_bytes_int8_over_bf16_max"],
        },
    }
    return {
        "benchmark": "inference",
        "settings": {
            "requests": n,
            "max_new_tokens": tokens,
            "repeat": arguments.repeat,
            "quantize": arguments.quantize,
            "greedy": True,
            "delta_ms": settings.QWEB_DELTA_MS,
            "delta_tokens": settings.QWEB_DELTA_TOKENS,
            "checkpoint_ms": settings.QWEB_CHECKPOINT_MS,
            "worker_max_jobs": settings.QWEB_WORKER_MAX_JOBS,
            "database": database,
            "channel_layer": settings.CHANNEL_LAYERS["default"]["BACKEND"],
            "redis_version": redis_version,
            "server": "daphne (subprocess, loopback)",
            "websocket_client": f"autobahn {package_version('autobahn')} on asyncio (subprocess)",
            "produce_stamps": "engine event queue" if bench.stamping else "worker poll",
            "prompts": "PROMPTS[i % 8] as one user message, chat template applied",
            "statistic": "median of the repeats (best and all runs beside it)",
        },
        "model": {
            "layers": model_config.num_hidden_layers,
            "hidden_size": model_config.hidden_size,
            "experts": model_config.num_experts,
            "experts_per_token": model_config.num_experts_per_tok,
            "vocab_size": model_config.vocab_size,
            "engine": {
                "kv_cache_bytes": engine_info.kv_cache_bytes,
                "num_blocks": engine_info.num_blocks,
                "page_size": engine_info.page_size,
                "max_batch_tokens": engine_info.max_batch_tokens,
                "device": engine_info.device,
            },
        },
        "raw": raw,
        "full_path": full,
        "ratios": ratios,
        "memory": memory,
        "targets": targets,
        "definitions": {
            "tokens_per_s": "completion tokens / (first submit → last finished event received)",
            "transport_ms": (
                "worker calls group_send for a delta → the websocket client receives it "
                "(Redis + Daphne consumer + socket); the ≤ 20 ms p99 target is about this"
            ),
            "token_age_ms": (
                "engine emits a token's text → client receives the delta holding it (per token); "
                "includes the QWEB_DELTA_MS coalescing, by design up to delta_ms"
            ),
            "coalesce_wait_ms": "engine emits a token's text → worker calls group_send",
            "group_send_call_ms": "duration of the worker's blocking group_send call",
            "first_token_s": "first submit → first text received (snapshot or delta)",
        },
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
            "torch_threads": bench.torch_threads,
            # Other processes share these cores; a load above the core count skews every figure.
            "load_average_1_5_15_before": [round(value, 2) for value in load_before],
            "load_average_1_5_15_after": [round(value, 2) for value in os.getloadavg()],
            "versions": {
                name: package_version(name)
                for name in (
                    "torch",
                    "transformers",
                    "bitsandbytes",
                    "Django",
                    "channels",
                    "channels_redis",
                    "daphne",
                    "autobahn",
                    "redis",
                )
            },
        },
        "redis_keys_removed": removed,
        "wall_seconds": round(time.monotonic() - wall_started, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=8, help="concurrent requests (default 8)")
    parser.add_argument("--tokens", type=int, default=128, help="max_new_tokens (default 128)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each measurement")
    parser.add_argument("--quantize", choices=("int8", "none"), default="int8")
    parser.add_argument("--delta-ms", type=int, default=None, help="QWEB_DELTA_MS for the run")
    parser.add_argument("--delta-tokens", type=int, default=None, help="QWEB_DELTA_TOKENS")
    parser.add_argument("--timeout", type=float, default=120.0, help="per run, seconds")
    parser.add_argument(
        "--torch-threads",
        type=int,
        default=None,
        help=(
            "torch threads for the raw and the full-path runs alike (default: torch's). On a "
            "small CPU box, 1 leaves a core to Daphne, Redis and the client, as a GPU host would"
        ),
    )
    parser.add_argument("--client", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.client:
        client_main(arguments.port)
        return
    if arguments.requests < 1 or arguments.tokens < 1 or arguments.repeat < 1:
        parser.error("--requests, --tokens and --repeat must be at least 1")
    print(json.dumps(run(arguments), indent=2))


if __name__ == "__main__":
    main()
