from __future__ import annotations

import itertools
import threading
import time
from dataclasses import replace

import pytest

from inference.detok import REPLACEMENT_CHARACTER
from inference.engine import Engine, EngineError, TokenDelta
from inference.sampling import SamplingParams

from .conftest import PROMPTS

GREEDY_TOKENS = 48
BLOCK_BYTES = 2 * 2 * 2 * 32 * 4 * 256  # layers x (K, V) x kv heads x head_dim x fp32 x page


def collect(
    engine: Engine, request_ids, seen: dict | None = None, timeout: float = 60.0
) -> dict[str, list[TokenDelta]]:
    """Poll until every request has its finished event; check each stream is well formed."""
    events: dict[str, list[TokenDelta]] = {
        rid: list((seen or {}).get(rid, [])) for rid in request_ids
    }
    pending = {rid for rid in request_ids if not any(e.finished for e in events[rid])}
    deadline = time.monotonic() + timeout
    while pending:
        assert time.monotonic() < deadline, f"no finished event for {sorted(pending)}"
        for event in engine.poll(timeout=1.0):
            assert event.request_id in pending, f"event after the end: {event}"
            events[event.request_id].append(event)
            if event.finished:
                pending.discard(event.request_id)
    for rid, stream in events.items():
        assert [e.seq for e in stream] == list(range(1, len(stream) + 1)), rid
        assert [e.finished for e in stream] == [False] * (len(stream) - 1) + [True], rid
    return events


def run(engine: Engine, requests: dict[str, tuple]) -> dict[str, list[TokenDelta]]:
    for rid, (prompt, params) in requests.items():
        engine.submit(rid, prompt, params)
    return collect(engine, list(requests))


def token_ids(stream: list[TokenDelta]) -> list[int]:
    return [token for event in stream for token in event.token_ids]


def text(stream: list[TokenDelta]) -> str:
    return "".join(event.text for event in stream)


def assert_no_events_for(engine: Engine, request_id: str, seconds: float = 0.3) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for event in engine.poll(timeout=0.05):
            assert event.request_id != request_id, f"event after the end: {event}"


@pytest.fixture(scope="module")
def engine(float32_model, tokenizer):
    with Engine(float32_model, tokenizer, kv_cache_bytes=64 * BLOCK_BYTES) as running:
        yield running


@pytest.fixture(scope="module")
def greedy_alone(engine):
    """Each prompt's greedy tokens when it is the only request in the engine."""
    params = SamplingParams(max_new_tokens=GREEDY_TOKENS)
    streams = {}
    for i, prompt in enumerate(PROMPTS):
        streams[i] = run(engine, {f"alone-{i}": (prompt, params)})[f"alone-{i}"]
    return streams


def test_batched_greedy_decoding_gives_each_prompt_the_tokens_it_gets_alone(engine, greedy_alone):
    params = SamplingParams(max_new_tokens=GREEDY_TOKENS)
    streams = run(engine, {f"batch-{i}": (p, params) for i, p in enumerate(PROMPTS)})
    for i in range(len(PROMPTS)):
        assert token_ids(streams[f"batch-{i}"]) == token_ids(greedy_alone[i]), PROMPTS[i]
        assert text(streams[f"batch-{i}"]) == text(greedy_alone[i])


def test_requests_sample_with_their_own_temperature_top_p_and_seed(engine, greedy_alone):
    prompt = PROMPTS[1]
    hot = {"temperature": 1.0, "max_new_tokens": 32}
    streams = run(
        engine,
        {
            "greedy": (prompt, SamplingParams(max_new_tokens=32)),
            "hot-7": (prompt, SamplingParams(seed=7, **hot)),
            "hot-7-again": (prompt, SamplingParams(seed=7, **hot)),
            "hot-8": (prompt, SamplingParams(seed=8, **hot)),
            "nucleus-of-one": (prompt, SamplingParams(seed=9, top_p=1e-6, **hot)),
        },
    )
    greedy = token_ids(greedy_alone[1])[:32]
    assert token_ids(streams["greedy"]) == greedy
    assert token_ids(streams["hot-7"]) == token_ids(streams["hot-7-again"])
    assert token_ids(streams["hot-7"]) != greedy
    assert token_ids(streams["hot-7"]) != token_ids(streams["hot-8"])
    assert token_ids(streams["nucleus-of-one"]) == greedy
    # A seeded request samples the same tokens whoever it shares the batch with.
    alone = run(engine, {"hot-7-alone": (prompt, SamplingParams(seed=7, **hot))})
    assert token_ids(alone["hot-7-alone"]) == token_ids(streams["hot-7"])


def test_max_new_tokens_finishes_the_request_with_length(engine, tokenizer, greedy_alone):
    stream = run(engine, {"short": (PROMPTS[0], SamplingParams(max_new_tokens=5))})["short"]
    last = stream[-1]
    assert (last.finish_reason, last.error) == ("length", None)
    assert token_ids(stream) == token_ids(greedy_alone[0])[:5]
    assert (last.completion_tokens, last.prompt_tokens) == (
        5,
        len(tokenizer(PROMPTS[0])["input_ids"]),
    )


def test_an_end_of_sequence_token_finishes_the_request_with_stop(engine, tokenizer):
    # Measured: greedy decoding of this prompt ends with <|im_end|> after 229 tokens.
    stream = run(engine, {"eos": (PROMPTS[6], SamplingParams(max_new_tokens=300))})["eos"]
    assert stream[-1].finish_reason == "stop"
    assert token_ids(stream)[-1] == tokenizer.eos_token_id
    assert stream[-1].completion_tokens < 300
    assert "<|im_end|>" not in text(stream)


def test_a_stop_string_spanning_two_deltas_ends_the_text_right_before_it(engine, greedy_alone):
    reference = greedy_alone[2]
    full = text(reference)
    stop, offset = None, 0
    for before, after in itertools.pairwise(reference):
        offset += len(before.text)
        candidate = before.text[-2:] + after.text[:2]
        if len(candidate) == 4 and full.find(candidate) == offset - 2:
            stop = candidate
            break
    assert stop is not None, "no delta boundary to put a stop string across"
    stream = run(engine, {"stopped": (PROMPTS[2], SamplingParams(max_new_tokens=48, stop=[stop]))})
    stream = stream["stopped"]
    assert text(stream) == full[: full.find(stop)]
    assert stream[-1].finish_reason == "stop"
    assert stream[-1].completion_tokens < len(token_ids(reference))
    assert_no_events_for(engine, "stopped")


def test_cancelling_stops_one_request_promptly_and_the_others_finish(engine, greedy_alone):
    params = SamplingParams(max_new_tokens=GREEDY_TOKENS)
    engine.submit("long", PROMPTS[3], SamplingParams(max_new_tokens=1500))
    engine.submit("other-0", PROMPTS[0], params)
    engine.submit("other-4", PROMPTS[4], params)
    seen: dict[str, list[TokenDelta]] = {"long": [], "other-0": [], "other-4": []}
    while not seen["long"]:
        for event in engine.poll(timeout=5):
            seen[event.request_id].append(event)
    assert engine.cancel("long")
    assert not engine.cancel("long")  # already over
    streams = collect(engine, ["long", "other-0", "other-4"], seen)
    cancelled = streams["long"][-1]
    assert (cancelled.finish_reason, cancelled.finished) == ("cancelled", True)
    assert cancelled.completion_tokens < 1500
    for rid, index in (("other-0", 0), ("other-4", 4)):
        assert token_ids(streams[rid]) == token_ids(greedy_alone[index])
    deadline = time.monotonic() + 5
    while engine.stats()["active"] and time.monotonic() < deadline:
        time.sleep(0.02)
    assert engine.stats()["active"] == 0, "the cancelled request still holds its KV cache"
    assert engine.stats()["kv_free_fraction"] > 0.99


def test_a_prompt_beyond_the_context_window_gets_an_error_and_others_finish(
    engine, tokenizer, greedy_alone
):
    filler = tokenizer(PROMPTS[5])["input_ids"] * 200
    params = SamplingParams(max_new_tokens=GREEDY_TOKENS)
    streams = run(
        engine,
        {
            "before": (PROMPTS[0], params),
            "too-long": (filler[:2100], params),
            "no-room-to-answer": (filler[:2040], SamplingParams(max_new_tokens=100)),
            "after": (PROMPTS[1], params),
        },
    )
    for rid in ("too-long", "no-room-to-answer"):
        (event,) = streams[rid]
        assert (event.finish_reason, event.text) == ("error", "")
        assert "context window of 2048 tokens" in event.error
    assert "2100 tokens" in streams["too-long"][0].error
    assert token_ids(streams["before"]) == token_ids(greedy_alone[0])
    assert token_ids(streams["after"]) == token_ids(greedy_alone[1])


@pytest.mark.parametrize(
    ("prompt", "message"),
    [([], "the prompt is empty"), ([10**6], "outside the vocabulary"), ([1.5], "token ids")],
)
def test_an_unusable_prompt_gets_an_error_event(engine, prompt, message):
    (event,) = run(engine, {"bad": (prompt, SamplingParams())})["bad"]
    assert event.finish_reason == "error"
    assert message in event.error


def test_streamed_text_never_splits_a_character_and_adds_up_to_the_decode(engine, tokenizer):
    # The random tiny model emits byte tokens often: unfinished and invalid UTF-8 sequences.
    params = SamplingParams(temperature=1.5, max_new_tokens=150)
    streams = run(
        engine, {f"bytes-{seed}": (PROMPTS[4], replace(params, seed=seed)) for seed in range(4)}
    )
    held_back = 0
    for stream in streams.values():
        ids: list[int] = []
        emitted = ""
        for event in stream:
            # Points inside this event where text ended mid-character and had to wait.
            for end in range(len(ids) + 1, len(ids) + len(event.token_ids)):
                held_back += tokenizer.decode(
                    ids + list(event.token_ids[: end - len(ids)])
                ).endswith(REPLACEMENT_CHARACTER)
            ids.extend(event.token_ids)
            emitted += event.text
            decoded = tokenizer.decode(ids, skip_special_tokens=True)
            if event.finished:
                assert emitted == decoded
            else:
                # Exactly the decode minus an unfinished tail: a U+FFFD in a delta is one the
                # model really produced (an invalid sequence), never a split character.
                assert emitted == decoded.rstrip(REPLACEMENT_CHARACTER)
    assert held_back, "text never ended mid-character; the test proved nothing"


def test_chat_messages_go_through_the_chat_template(engine, tokenizer):
    messages = [{"role": "user", "content": "Explain this 函数"}]
    rendered = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    ids = tokenizer(rendered, add_special_tokens=False)["input_ids"]
    params = SamplingParams(max_new_tokens=8)
    streams = run(engine, {"chat": (messages, params), "ids": (ids, params)})
    assert streams["chat"][-1].prompt_tokens == len(ids)
    assert tokenizer.decode(ids).endswith("<|im_end|>\n<|im_start|>assistant\n")
    assert token_ids(streams["chat"]) == token_ids(streams["ids"])


def test_a_request_id_is_reusable_once_its_request_is_over(engine):
    engine.submit("reused", PROMPTS[0], SamplingParams(max_new_tokens=200))
    with pytest.raises(ValueError, match="still running"):
        engine.submit("reused", PROMPTS[0], SamplingParams(max_new_tokens=4))
    engine.cancel("reused")
    engine.submit("reused", PROMPTS[1], SamplingParams(max_new_tokens=4))
    events = []
    while len([e for e in events if e.finished]) < 2:
        events.extend(engine.poll(timeout=5))
    finished = [e for e in events if e.finished]
    assert [e.finish_reason for e in finished] == ["cancelled", "length"]
    assert finished[1].completion_tokens == 4


def test_kv_cache_memory_is_bounded_by_the_setting(int8_model, tokenizer):
    page = 16
    block = BLOCK_BYTES * page // 256
    limit = 6 * block + block // 2
    with Engine(int8_model, tokenizer, kv_cache_bytes=limit, page_size=page) as small:
        cache = small._manager.batch_processor.cache
        allocated = cache.cache_tensor.numel() * cache.cache_tensor.element_size()
        assert allocated <= limit
        assert small.info.kv_cache_bytes == allocated
        assert small.info.num_blocks == 4  # the other two are the manager's padding blocks
        assert small.info.max_request_tokens == 4 * page
        # Three requests of 4 blocks each share 4 blocks: the manager preempts and re-runs them.
        params = SamplingParams(max_new_tokens=40)
        streams = run(
            small,
            {
                **{f"fits-{i}": (PROMPTS[i], params) for i in (0, 2, 3)},
                "too-big": (PROMPTS[1], SamplingParams(max_new_tokens=60)),
            },
        )
        (event,) = streams["too-big"]
        assert event.finish_reason == "error"
        assert "KV cache, which holds 64 tokens per request" in event.error
        for i in (0, 2, 3):
            assert streams[f"fits-{i}"][-1].finish_reason in ("length", "stop")
            assert streams[f"fits-{i}"][-1].error is None
    with pytest.raises(ValueError, match="less than 3 KV blocks"):
        Engine(int8_model, tokenizer, kv_cache_bytes=2 * BLOCK_BYTES)


def test_shutdown_cancels_live_requests_and_stops_every_engine_thread(int8_model, tokenizer):
    before = set(threading.enumerate())
    engine = Engine(int8_model, tokenizer)
    engine.submit("running", PROMPTS[0], SamplingParams(max_new_tokens=1500))
    assert engine.poll(timeout=10)
    started = time.monotonic()
    engine.shutdown()
    assert time.monotonic() - started < 5
    leftovers = [t for t in set(threading.enumerate()) - before if t.is_alive()]
    assert not [t for t in leftovers if not t.daemon or t.name.startswith("qweb")], leftovers
    assert not engine._manager.is_running()
    events = engine.poll(timeout=0.1)
    assert events[-1].finish_reason == "cancelled" and events[-1].finished
    with pytest.raises(EngineError):
        engine.submit("late", PROMPTS[0], SamplingParams())
    engine.shutdown()  # idempotent
