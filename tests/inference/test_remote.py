"""The remote backend against a real `transformers serve` on loopback, and a scripted server for
the failures a real one will not produce on demand (malformed events, silence, missing usage);
the served window against a server listing models as vLLM and SGLang do (tests.model_servers)."""

from __future__ import annotations

import contextlib
import http.client
import inspect
import itertools
import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest

from inference.engine import EngineError, TokenDelta
from inference.remote import RemoteBackend, RemoteError, served_context_window, server_message
from inference.sampling import SamplingParams
from tests.model_servers import QWEN_480B, LoopbackServer, sglang_models, vllm_models

# Prompts whose greedy answers from the tiny model run long (no end-of-sequence token within
# 2000 tokens), so max_new_tokens decides where they end.
LONG = [{"role": "user", "content": "import os\nimport sys\n"}]
OTHER = [{"role": "user", "content": "Write a function that reverses a list."}]
GREEDY = SamplingParams(temperature=0.0, max_new_tokens=40)


# ---------------------------------------------------------------------------- helpers


def collect(
    backend: RemoteBackend,
    request_ids: list[str],
    *,
    timeout: float = 30.0,
    polled: list[TokenDelta] = (),
) -> dict[str, list[TokenDelta]]:
    """Poll until every request has its final event; check seq order and one final event.

    ``polled``: events of these requests that the test already took from `poll`.
    """
    events: dict[str, list[TokenDelta]] = {request_id: [] for request_id in request_ids}
    backlog = [event for event in polled if event.request_id in events]
    deadline = time.monotonic() + timeout
    while backlog or not all(e and e[-1].finished for e in events.values()):
        assert time.monotonic() < deadline, f"requests did not finish: {events}"
        fresh, backlog = (backlog, []) if backlog else (backend.poll(timeout=0.2), [])
        for event in fresh:
            seen = events[event.request_id]
            assert not (seen and seen[-1].finished), f"event after the final one: {event}"
            assert event.seq == len(seen) + 1, f"seq out of order: {event}"
            seen.append(event)
    return events


def text_of(events: list[TokenDelta]) -> str:
    return "".join(event.text for event in events)


def wait_for(backend: RemoteBackend, request_id: str, count: int) -> list[TokenDelta]:
    """Poll until `request_id` has `count` events (others are kept in the returned list too)."""
    seen: list[TokenDelta] = []
    deadline = time.monotonic() + 30
    while sum(event.request_id == request_id for event in seen) < count:
        assert time.monotonic() < deadline, f"{request_id} produced too few events: {seen}"
        seen.extend(backend.poll(timeout=0.2))
    return seen


def non_streamed_answer(served, messages: list[dict], max_tokens: int) -> str:
    """The same greedy request without streaming, straight over HTTP."""
    host, port = served.url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=60)
    body = {
        "model": served.model,
        "messages": messages,
        "temperature": 0.0,
        "max_tokens": max_tokens,
        "stream": False,
    }
    try:
        connection.request(
            "POST", "/v1/chat/completions", json.dumps(body), {"Content-Type": "application/json"}
        )
        response = connection.getresponse()
        assert response.status == 200, response.read()
        return json.loads(response.read())["choices"][0]["message"]["content"]
    finally:
        connection.close()


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def remote_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("qweb-remote")]


@pytest.fixture
def backend(transformers_serve) -> Iterator[RemoteBackend]:
    with RemoteBackend(
        transformers_serve.url, model=transformers_serve.model, timeout_s=30, max_concurrent=4
    ) as remote:
        yield remote


# ---------------------------------------------------------------------------- a scripted server


def chunk(content: str | None = None, finish: str | None = None, usage: dict | None = None) -> str:
    delta = {} if content is None else {"content": content}
    body: dict[str, Any] = {
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    if usage is not None:
        body["usage"] = usage
    return json.dumps(body)


class ScriptedServer(LoopbackServer):
    """An HTTP server whose answer to each POST is `respond(handler, body)`."""

    def __init__(self, respond: Callable[[BaseHTTPRequestHandler, dict], None]) -> None:
        self.requests: list[tuple[dict[str, str], dict]] = []
        self.release = threading.Event()  # set at teardown: handlers waiting on it return
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append((dict(self.headers), body))
                # The client may leave early, as a cancel does.
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    respond(self, body)

            def log_message(self, *args: object) -> None:
                pass

        super().__init__(Handler)

    def close(self) -> None:
        self.release.set()
        super().close()


def send_events(handler: BaseHTTPRequestHandler, events: list[str]) -> None:
    handler.send_response(200)
    handler.send_header("Content-Type", "text/event-stream")
    handler.end_headers()
    for data in events:
        handler.wfile.write(f"data: {data}\n\n".encode())
        handler.wfile.flush()


def send_json(handler: BaseHTTPRequestHandler, status: int, body: dict) -> None:
    payload = json.dumps(body).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(payload)))
    handler.end_headers()
    handler.wfile.write(payload)


@pytest.fixture
def scripted() -> Iterator[Callable[..., ScriptedServer]]:
    servers: list[ScriptedServer] = []

    def start(respond: Callable[[BaseHTTPRequestHandler, dict], None]) -> ScriptedServer:
        servers.append(ScriptedServer(respond))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


# ---------------------------------------------------------------------------- a real server


def local_greedy_answer(model, tokenizer, messages: list[dict], max_new_tokens: int) -> str:
    """What the same checkpoint generates greedily in this process, with the same chat template."""
    import torch

    prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    input_ids = tokenizer(prompt, add_special_tokens=False, return_tensors="pt")["input_ids"]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny model only loses to thread contention on a busy machine
    try:
        with torch.no_grad():
            output = model.generate(input_ids, do_sample=False, max_new_tokens=max_new_tokens)
    finally:
        torch.set_num_threads(threads)
    return tokenizer.decode(output[0, input_ids.shape[-1] :], skip_special_tokens=True)


def test_a_streamed_answer_comes_in_several_deltas_that_add_up_to_the_greedy_answer(
    backend, transformers_serve, bfloat16_model, tokenizer
):
    backend.submit("r1", OTHER, GREEDY)
    events = collect(backend, ["r1"])["r1"]

    streamed = text_of(events)
    assert sum(1 for event in events if event.text) > 5
    # The server loads the checkpoint in its own precision (bf16), as the fixture does.
    assert streamed == local_greedy_answer(bfloat16_model, tokenizer, OTHER, max_new_tokens=40)
    assert events[-1].finished and events[-1].finish_reason == "length"
    assert events[-1].error is None
    # transformers serve's non-streamed answer is the same text, but its response parser trims
    # the leading whitespace that its streamed answer keeps.
    assert non_streamed_answer(transformers_serve, OTHER, max_tokens=40) == streamed.lstrip()


def test_max_new_tokens_ends_the_answer_with_length_and_reports_token_counts(backend, tokenizer):
    backend.submit("r1", LONG, SamplingParams(max_new_tokens=7))
    final = collect(backend, ["r1"])["r1"][-1]

    prompt = tokenizer.apply_chat_template(LONG, tokenize=False, add_generation_prompt=True)
    assert final.finish_reason == "length"
    assert final.completion_tokens == 7
    assert final.prompt_tokens == len(tokenizer(prompt, add_special_tokens=False)["input_ids"])


def test_a_stop_string_ends_the_answer_just_before_it_even_across_deltas(backend):
    backend.submit("full", LONG, GREEDY)
    deltas = [event for event in collect(backend, ["full"])["full"] if event.text]
    full = text_of(deltas)
    # A stop string made of the end of one delta and the start of the next.
    boundary = 0
    for before, after in itertools.pairwise(deltas):
        boundary += len(before.text)
        stop = before.text[-2:] + after.text[:2]
        if len(stop) == 4 and full.find(stop) == boundary - 2 and boundary > 8:
            break
    else:
        pytest.fail(f"no stop string across deltas in {full!r}")

    backend.submit("cut", LONG, SamplingParams(max_new_tokens=40, stop=("never seen", stop)))
    events = collect(backend, ["cut"])["cut"]

    assert text_of(events) == full[: boundary - 2]
    assert events[-1].finish_reason == "stop"


def test_two_concurrent_requests_both_complete_with_their_own_answers(
    backend, bfloat16_model, tokenizer
):
    params = SamplingParams(max_new_tokens=24)
    backend.submit("long", LONG, params)
    backend.submit("other", OTHER, params)
    assert sorted(backend.live_requests()) == ["long", "other"]

    events = collect(backend, ["long", "other"])

    for request_id, messages in (("long", LONG), ("other", OTHER)):
        expected = local_greedy_answer(bfloat16_model, tokenizer, messages, max_new_tokens=24)
        assert text_of(events[request_id]) == expected
    assert [events[r][-1].finish_reason for r in ("long", "other")] == ["length", "length"]
    assert backend.live_requests() == []


def test_cancelling_mid_stream_ends_that_request_at_once_and_the_other_goes_on(backend):
    backend.submit("doomed", LONG, SamplingParams(max_new_tokens=2000))  # ~10 s of generation
    events = wait_for(backend, "doomed", 1)
    backend.submit("survivor", OTHER, SamplingParams(max_new_tokens=30))
    events += wait_for(backend, "doomed", 3)

    started = time.monotonic()
    assert backend.cancel("doomed") is True
    # cancel() queues the final event itself, so it is there at once however busy the machine.
    events.extend(backend.poll(timeout=0))
    final = next((e for e in events if e.request_id == "doomed" and e.finished), None)
    assert final is not None, "no cancelled event when cancel() returned"
    assert final.finish_reason == "cancelled"
    assert backend.cancel("doomed") is False  # already finished

    survivor = collect(backend, ["survivor"], polled=events)["survivor"]
    assert survivor[-1].finish_reason == "length"
    assert survivor[-1].completion_tokens == 30
    # transformers serve generates one request at a time: the survivor could only run this soon
    # because the server stopped the cancelled one when its connection closed.
    assert time.monotonic() - started < 5.0
    assert not [e for e in backend.poll(timeout=0.3) if e.request_id == "doomed"]


def test_shutdown_cancels_what_is_live_and_leaves_no_threads(transformers_serve):
    remote = RemoteBackend(
        transformers_serve.url, model=transformers_serve.model, timeout_s=30, max_concurrent=2
    )
    remote.submit("running", LONG, SamplingParams(max_new_tokens=2000))
    remote.submit("queued", LONG, SamplingParams(max_new_tokens=2000))
    remote.submit("waiting", LONG, SamplingParams(max_new_tokens=2000))  # no thread free yet
    early = wait_for(remote, "running", 1)

    started = time.monotonic()
    remote.shutdown()

    assert time.monotonic() - started < 2.0
    # Events polled while waiting count too: one request may already have ended.
    finals: dict[str, str | None] = {e.request_id: e.finish_reason for e in early if e.finished}
    deadline = time.monotonic() + 2.0
    while len(finals) < 3 and time.monotonic() < deadline:
        # poll() returns what is ready; the last final events may follow a moment later.
        finals |= {e.request_id: e.finish_reason for e in remote.poll(timeout=0.2) if e.finished}
    # Every request ends exactly once; what was still live at shutdown ends "cancelled".
    # (The server serves one request at a time, so which of the first two ran is its choice.)
    ended_before = {e.request_id for e in early if e.finished}
    assert set(finals) == {"running", "queued", "waiting"}
    assert all(finals[r] == "cancelled" for r in finals if r not in ended_before)
    assert finals["waiting"] == "cancelled"
    assert remote_threads() == []
    with pytest.raises(EngineError):
        remote.submit("late", LONG)


def test_a_refused_connection_is_an_error_event_that_says_so():
    with RemoteBackend(
        f"http://127.0.0.1:{closed_port()}", model="m", timeout_s=5, max_concurrent=1
    ) as remote:
        remote.submit("r1", LONG)
        (final,) = collect(remote, ["r1"])["r1"]

    assert final.finish_reason == "error"
    assert "connection refused" in final.error
    assert "127.0.0.1" in final.error


def test_an_http_error_is_an_error_event_carrying_the_servers_message(transformers_serve):
    with RemoteBackend(
        transformers_serve.url, model="no-such-model", timeout_s=30, max_concurrent=1
    ) as remote:
        remote.submit("r1", LONG)
        (final,) = collect(remote, ["r1"])["r1"]

    assert final.finish_reason == "error"
    assert "HTTP 400" in final.error
    # The server's own words: it is pinned to the tiny model and was asked for another.
    assert "no-such-model" in final.error and transformers_serve.model in final.error


# ---------------------------------------------------------------------------- a scripted server


@pytest.mark.parametrize(
    ("events", "expected"),
    [
        (["{not json"], "not JSON"),
        ([chunk("ok"), '{"choices": 5}'], "no choices"),
        ([chunk("ok"), '{"error": {"message": "CUDA out of memory"}}'], "CUDA out of memory"),
        ([chunk("half an ans")], "closed the stream before the answer finished"),
    ],
    ids=["not-json", "no-choices", "error-mid-stream", "cut-short"],
)
def test_a_broken_stream_fails_that_request_and_not_the_others(scripted, events, expected):
    def respond(handler, body):
        if body["messages"][0]["content"] == "break":
            send_events(handler, events)
        else:
            send_events(handler, [chunk("fine"), chunk(finish="stop"), "[DONE]"])

    server = scripted(respond)
    with RemoteBackend(server.url, model="m", timeout_s=5, max_concurrent=2) as remote:
        remote.submit("bad", [{"role": "user", "content": "break"}])
        remote.submit("good", [{"role": "user", "content": "hello"}])
        events_by_id = collect(remote, ["bad", "good"])

    bad = events_by_id["bad"][-1]
    assert bad.finish_reason == "error" and expected in bad.error
    assert text_of(events_by_id["good"]) == "fine"
    assert events_by_id["good"][-1].finish_reason == "stop"


def test_a_server_that_goes_silent_mid_stream_times_out_with_an_error_event(scripted):
    def respond(handler, body):
        send_events(handler, [chunk("Hel")])
        server.release.wait(10)

    server = scripted(respond)
    started = time.monotonic()
    with RemoteBackend(server.url, model="m", timeout_s=0.5, max_concurrent=1) as remote:
        remote.submit("r1", OTHER)
        events = collect(remote, ["r1"])["r1"]

    assert text_of(events) == "Hel"
    assert events[-1].finish_reason == "error"
    assert "sent nothing for 0.5 s" in events[-1].error
    assert time.monotonic() - started < 3


def test_the_request_carries_its_sampling_and_the_key_which_is_never_shown(scripted, caplog):
    key = "sk-qweb-test-secret"

    def respond(handler, body):
        send_json(handler, 401, {"error": {"message": "Invalid API key", "type": "auth"}})

    server = scripted(respond)
    params = SamplingParams(temperature=0.7, top_p=0.9, max_new_tokens=12, stop=("\n\n",), seed=5)
    with (
        caplog.at_level(logging.DEBUG),
        RemoteBackend(f"{server.url}/v1", model="qwen", api_key=key, max_concurrent=1) as remote,
    ):
        remote.submit("r1", OTHER, params)
        (final,) = collect(remote, ["r1"])["r1"]
        shown = repr(remote)

    headers, body = server.requests[0]
    assert headers["Authorization"] == f"Bearer {key}"
    assert body == {
        "model": "qwen",
        "messages": OTHER,
        "stream": True,
        "stream_options": {"include_usage": True},
        "temperature": 0.7,
        "top_p": 0.9,
        "max_tokens": 12,
        "stop": ["\n\n"],
        "seed": 5,
    }
    assert final.finish_reason == "error"
    assert "HTTP 401" in final.error and "Invalid API key" in final.error
    assert key not in final.error and key not in shown and key not in caplog.text


def test_without_usage_from_the_server_tokens_are_counted(scripted):
    def respond(handler, body):
        send_events(handler, [chunk("one two"), chunk(" three"), chunk(finish="stop"), "[DONE]"])

    server = scripted(respond)
    messages = [{"role": "user", "content": "count these four words"}]
    with RemoteBackend(
        server.url, model="m", max_concurrent=1, token_counter=lambda text: len(text.split())
    ) as counted:
        counted.submit("r1", messages)
        final = collect(counted, ["r1"])["r1"][-1]
    with RemoteBackend(server.url, model="m", max_concurrent=1) as uncounted:
        uncounted.submit("r1", messages)
        rough = collect(uncounted, ["r1"])["r1"][-1]

    assert (final.finish_reason, final.prompt_tokens, final.completion_tokens) == ("stop", 4, 3)
    # Without a counter: one token per streamed chunk, and no prompt count.
    assert (rough.prompt_tokens, rough.completion_tokens) == (0, 2)


def test_a_server_that_rejects_stream_options_is_asked_again_without_it(scripted):
    def respond(handler, body):
        if "stream_options" in body:
            send_json(handler, 422, {"detail": "Unexpected fields in the request: stream_options"})
        else:
            usage = {"prompt_tokens": 9, "completion_tokens": 1}
            send_events(handler, [chunk("hi"), chunk(finish="length", usage=usage)])

    server = scripted(respond)
    with RemoteBackend(server.url, model="m", max_concurrent=1) as remote:
        remote.submit("r1", OTHER)
        remote_events = collect(remote, ["r1"])["r1"]
        remote.submit("r2", OTHER)
        collect(remote, ["r2"])

    assert text_of(remote_events) == "hi"
    final = remote_events[-1]
    assert (final.finish_reason, final.prompt_tokens, final.completion_tokens) == ("length", 9, 1)
    assert ["stream_options" in body for _, body in server.requests] == [True, False, False]


def test_a_prompt_that_is_not_chat_messages_is_an_error_event_and_live_ids_are_unique(scripted):
    def respond(handler, body):
        send_events(handler, [chunk("wait")])
        server.release.wait(10)

    server = scripted(respond)
    with RemoteBackend(server.url, model="m", max_concurrent=2) as remote:
        remote.submit("text", "raw text prompt")
        remote.submit("ids", [1, 2, 3])
        remote.submit("live", OTHER)
        with pytest.raises(ValueError, match="still running"):
            remote.submit("live", OTHER)
        with pytest.raises(ValueError):
            remote.submit("", OTHER)
        events = collect(remote, ["text", "ids"])

    for request_id in ("text", "ids"):
        (final,) = events[request_id]
        assert final.finish_reason == "error" and "chat messages" in final.error


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"error": {"message": "model not found", "code": 404}}', "model not found"),
        (b'{"error": "worker died"}', "worker died"),
        (b'{"detail": [{"msg": "field required"}, {"msg": "bad type"}]}', "field required; bad"),
        (b'{"object": "error", "message": "too long"}', "too long"),
        (b"<html>Bad Gateway</html>", "<html>Bad Gateway</html>"),
        (b"", "(empty response body)"),
    ],
)
def test_the_servers_error_message_is_found_in_each_common_shape(body, message):
    assert message in server_message(body)


def test_the_remote_backend_has_the_local_engines_interface():
    from inference.engine import Engine

    for name in ("submit", "cancel", "poll", "live_requests", "is_running", "shutdown"):
        assert inspect.signature(getattr(RemoteBackend, name)) == inspect.signature(
            getattr(Engine, name)
        ), name
    assert hasattr(RemoteBackend, "__enter__") and hasattr(RemoteBackend, "__exit__")


# ---------------------------------------------------------------------------- the served window


@pytest.mark.parametrize("shape", [vllm_models, sglang_models])
def test_the_window_is_the_max_model_len_the_server_lists_for_the_model(model_list_server, shape):
    server = model_list_server(shape(QWEN_480B, 262_144))

    window = served_context_window(f"{server.url}/v1", model=QWEN_480B, api_key="sk-secret")

    assert window == 262_144
    [(path, headers)] = server.requests
    assert path == "/v1/models"
    assert headers["Authorization"] == "Bearer sk-secret"


def test_an_entry_without_a_window_gives_none(model_list_server):
    server = model_list_server(vllm_models(QWEN_480B, 262_144))

    # vLLM lists LoRA adapters without max_model_len.
    assert served_context_window(server.url, model="sql-lora") is None
    assert served_context_window(server.url, model=QWEN_480B) == 262_144


def test_transformers_serve_lists_its_model_without_a_window(transformers_serve):
    assert served_context_window(transformers_serve.url, model=transformers_serve.model) is None


def test_a_model_the_server_does_not_list_is_an_error_naming_what_it_lists(model_list_server):
    server = model_list_server(sglang_models("Qwen/Qwen3-Coder-30B-A3B-Instruct", 65_536))

    with pytest.raises(RemoteError, match="lists no model 'qwen3-480b'") as error:
        served_context_window(server.url, model="qwen3-480b")

    assert "'Qwen/Qwen3-Coder-30B-A3B-Instruct'" in str(error.value)


def test_a_server_that_cannot_be_asked_for_its_models_is_an_error_with_the_reason(
    model_list_server,
):
    refusing = model_list_server({"error": {"message": "invalid API key"}}, status=401)
    not_a_list = model_list_server({"models": []})

    with pytest.raises(RemoteError, match="connection refused"):
        served_context_window(f"http://127.0.0.1:{closed_port()}", model="m")
    with pytest.raises(RemoteError, match="HTTP 401 Unauthorized: invalid API key"):
        served_context_window(refusing.url, model="m", api_key="wrong")
    with pytest.raises(RemoteError, match="did not answer with an OpenAI model list"):
        served_context_window(not_a_list.url, model="m")
