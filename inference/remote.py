"""Relay generation to an OpenAI-compatible server (vLLM, SGLang, ``transformers serve``).

When one GPU is not enough (Qwen3-Coder-480B-A35B across eight GPUs, or many users), the worker
keeps its loop and swaps the local `inference.engine.Engine` for a `RemoteBackend`: same
``submit`` / ``poll`` / ``cancel`` / ``shutdown`` and the same `TokenDelta` events, so the worker
cannot tell them apart.

Each request is one ``POST {base_url}/v1/chat/completions`` with ``stream: true``, read as
server-sent events on a thread of a bounded pool (``max_concurrent`` requests on the wire; the
rest wait their turn). What the relay adds on top of the server:

- Stop strings are sent to the server *and* enforced here, hiding the stop text, because servers
  differ (vLLM cuts before the stop string; ``transformers serve`` streams it).
- Token counts come from the server's ``usage`` (asked for with ``stream_options.include_usage``);
  a server that sends none, or a stream cut short by a stop string, falls back to counting:
  ``token_counter`` if one was given, else one completion token per streamed chunk and no prompt
  count.
- Cancelling shuts the socket down: the request gets its "cancelled" event at once and the server
  sees the client go away and stops generating.
- Anything that goes wrong (connection refused, HTTP 4xx/5xx, a malformed event, a timeout, a
  stream that ends early) becomes one "error" event for that request, with the server's own message
  where it sent one; other requests are unaffected.

`served_context_window` asks the server for the served model's context window (``GET
/v1/models``, ``max_model_len`` on vLLM and SGLang), so prompts are sized for the model that
answers them.

The API key is sent as ``Authorization: Bearer`` and appears in no message, log line or repr.
No Django here, and nothing beyond the standard library on the wire (``http.client``).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import socket
import ssl
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from inference.detok import StopStringMatcher
from inference.events import EngineError, FinishReason, Prompt, StreamingBackend, TokenDelta
from inference.params import SamplingParams

logger = logging.getLogger(__name__)

CHAT_COMPLETIONS = "/v1/chat/completions"
MODELS = "/v1/models"
MAX_MODELS_BODY_BYTES = 4 * 1024 * 1024
MAX_LINE_BYTES = 1024 * 1024  # one SSE line; a server sending more is not speaking SSE
MAX_ERROR_BODY_BYTES = 64 * 1024
_POLL_INTERVAL = 0.05

# Server finish reasons that mean "the model ended the answer" in qweb's terms.
_STOP_REASONS = frozenset({"stop", "eos", "tool_calls", "function_call", "content_filter"})


class RemoteError(Exception):
    """Why one remote request failed; the message is one line meant for people."""


class _StreamOver(Exception):
    """The request already has its final event (a client-side stop string, or a cancel)."""


def _one_line(text: Any, limit: int = 300) -> str:
    line = " ".join(str(text).split())
    return line[:limit] or (type(text).__name__ if isinstance(text, BaseException) else "")


def server_message(body: bytes) -> str:
    """Pull the human message out of an error body, whatever the server's error shape.

    OpenAI/vLLM/SGLang: ``{"error": {"message": ...}}``; FastAPI (``transformers serve``):
    ``{"detail": "..."}`` or a list of validation errors; some servers: ``{"error": "..."}`` or
    ``{"message": ...}``; otherwise the body's text.
    """
    text = body.decode("utf-8", errors="replace")
    try:
        data = json.loads(text)
    except ValueError:
        return _one_line(text) or "(empty response body)"
    message: Any = None
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict):
            message = error.get("message") or error.get("detail")
        elif isinstance(error, str):
            message = error
        if message is None and "detail" in data:
            detail = data["detail"]
            if isinstance(detail, list):  # FastAPI request validation errors
                message = "; ".join(
                    str(item.get("msg", item)) if isinstance(item, dict) else str(item)
                    for item in detail
                )
            else:
                message = detail
        if message is None:
            message = data.get("message")
    return _one_line(message if message is not None else text) or "(empty response body)"


def _network_error(error: BaseException, url: str, host: str) -> str | None:
    """One line for people about a failed exchange with ``url``; None if not a network error."""
    if isinstance(error, ConnectionRefusedError):
        return f"cannot connect to {url}: connection refused"
    if isinstance(error, socket.gaierror):
        return f"cannot resolve {host}: {_one_line(error.strerror or error)}"
    if isinstance(error, ssl.SSLError):
        return f"TLS error talking to {url}: {_one_line(error)}"
    if isinstance(error, (http.client.HTTPException, ConnectionError)):
        return f"{url} dropped the connection: {_one_line(error) or type(error).__name__}"
    if isinstance(error, OSError):
        return f"network error talking to {url}: {_one_line(error.strerror or error)}"
    return None


@dataclass(frozen=True)
class _Endpoint:
    """Where a server is: ``base_url`` may end in ``/v1`` (as OpenAI clients are configured)."""

    https: bool
    host: str
    port: int
    prefix: str  # the path before ``/v1``, without a trailing slash

    @classmethod
    def parse(cls, base_url: str) -> _Endpoint:
        parts = urlsplit(base_url.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("base_url must be an http:// or https:// URL with a host")
        https = parts.scheme == "https"
        return cls(
            https=https,
            host=parts.hostname,
            port=parts.port or (443 if https else 80),
            prefix=parts.path.rstrip("/").removesuffix("/v1"),
        )

    def url(self, path: str) -> str:
        """For messages: without any user:password@ the base URL may carry."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self.https else 'http'}://{host}:{self.port}{path}"


def served_context_window(
    base_url: str, *, model: str, api_key: str | None = None, timeout_s: float = 10.0
) -> int | None:
    """The context window (prompt and answer, in tokens) the server reports for ``model``.

    One ``GET {base_url}/v1/models``. vLLM and SGLang give each entry ``max_model_len`` (the
    window they serve with: ``--max-model-len`` / ``--context-length``, else the model's own);
    ``transformers serve`` and plain OpenAI-compatible proxies give none, and then this returns
    None. Raises `RemoteError` with the reason when the server cannot be asked, answers with an
    error or with something else than a model list, or lists no model named ``model``.
    """
    endpoint = _Endpoint.parse(base_url)
    path = endpoint.prefix + MODELS
    url = endpoint.url(path)
    if endpoint.https:
        conn: http.client.HTTPConnection = http.client.HTTPSConnection(
            endpoint.host, endpoint.port, timeout=timeout_s, context=ssl.create_default_context()
        )
    else:
        conn = http.client.HTTPConnection(endpoint.host, endpoint.port, timeout=timeout_s)
    headers = {"Accept": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    try:
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        body = response.read(MAX_MODELS_BODY_BYTES + 1)
    except TimeoutError:
        raise RemoteError(f"{url} sent no answer within {timeout_s:g} s") from None
    except (OSError, http.client.HTTPException) as error:
        raise RemoteError(_network_error(error, url, endpoint.host) or _one_line(error)) from None
    finally:
        conn.close()
    if response.status != 200:
        raise RemoteError(
            f"{url} answered HTTP {response.status} {response.reason}: {server_message(body)}"
        )
    try:
        if len(body) > MAX_MODELS_BODY_BYTES:
            raise ValueError
        entries = json.loads(body)["data"]
        if not isinstance(entries, list):
            raise TypeError
    except (ValueError, KeyError, TypeError):
        raise RemoteError(f"{url} did not answer with an OpenAI model list") from None
    named = [entry for entry in entries if isinstance(entry, dict)]
    for entry in named:
        if entry.get("id") == model:
            window = entry.get("max_model_len")
            valid = isinstance(window, int) and not isinstance(window, bool) and window > 0
            return window if valid else None
    listed = ", ".join(repr(entry.get("id")) for entry in named[:10]) or "nothing"
    raise RemoteError(f"{url} lists no model {model!r} (it lists {listed})")


class _Request:
    __slots__ = (
        "chunks",
        "completion_tokens",
        "conn",
        "done",
        "messages",
        "params",
        "prompt_tokens",
        "raw_text",
        "request_id",
        "seq",
        "server_finish",
        "sock",
        "stops",
    )

    def __init__(self, request_id: str, params: SamplingParams) -> None:
        self.request_id = request_id
        self.messages: list[dict[str, Any]] = []
        self.params = params
        self.seq = 0
        self.done = False
        self.conn: http.client.HTTPConnection | None = None
        self.sock: socket.socket | None = None  # kept apart: a response may own it alone
        self.stops = StopStringMatcher(params.stop)
        self.raw_text = ""  # everything the server streamed, stop text included
        self.chunks = 0  # content chunks received: the token count of last resort
        self.server_finish: str | None = None
        self.prompt_tokens: int | None = None  # from the server's usage, when it sends it
        self.completion_tokens: int | None = None


class RemoteBackend(StreamingBackend):
    """Serve generation requests by relaying them to an OpenAI-compatible chat server.

    ``RemoteBackend("http://gpu-pool:8000", model="Qwen/Qwen3-Coder-480B-A35B-Instruct")``; use it
    as a context manager or call `shutdown`. ``base_url`` may end in ``/v1`` (as OpenAI clients
    are configured) or not. ``timeout_s`` bounds connecting and each wait for the next bytes of a
    response, not the whole answer. A request id may be reused once its request finished.
    """

    def __init__(
        self,
        base_url: str,
        *,
        model: str,
        api_key: str | None = None,
        timeout_s: float = 120.0,
        max_concurrent: int = 32,
        token_counter: Callable[[str], int] | None = None,
    ) -> None:
        endpoint = _Endpoint.parse(base_url)
        if not model:
            raise ValueError("model must name the served model")
        if not timeout_s > 0:
            raise ValueError(f"timeout_s must be above 0, not {timeout_s!r}")
        if isinstance(max_concurrent, bool) or not isinstance(max_concurrent, int):
            raise ValueError(f"max_concurrent must be an int, not {max_concurrent!r}")
        if max_concurrent < 1:
            raise ValueError(f"max_concurrent must be at least 1, not {max_concurrent}")
        self._https, self._host, self._port = endpoint.https, endpoint.host, endpoint.port
        self._path = endpoint.prefix + CHAT_COMPLETIONS
        self.url = endpoint.url(self._path)
        self.model = model
        self._api_key = api_key
        self._timeout_s = float(timeout_s)
        self._max_concurrent = max_concurrent
        self._token_counter = token_counter
        self._ssl_context = ssl.create_default_context() if self._https else None
        # A server that rejects stream_options is asked again without it, and never again with it.
        self._send_stream_options = True

        super().__init__()
        self._pool = ThreadPoolExecutor(
            max_workers=max_concurrent, thread_name_prefix="qweb-remote"
        )

    def __repr__(self) -> str:  # the key stays out of logs and tracebacks
        return (
            f"RemoteBackend({self.url!r}, model={self.model!r}, "
            f"max_concurrent={self._max_concurrent}, api_key={'set' if self._api_key else None})"
        )

    # ------------------------------------------------------------------ public API (as Engine)

    def submit(self, request_id: str, prompt: Prompt, params: SamplingParams | None = None) -> None:
        """Queue a request. Its events (deltas, then one finished event) arrive through `poll`.

        ``prompt`` must be chat messages (``[{"role", "content"}, ...]``): the server applies its
        own chat template. Token ids or raw text get a single error event, as an unservable prompt
        does in the local engine; a request id that is still live, or a backend that was shut
        down, raises.
        """
        params = params or SamplingParams()
        if not isinstance(request_id, str) or not request_id:
            raise ValueError("request_id must be a non-empty string")
        with self._lock:
            if self._closing:
                raise EngineError("the remote backend is shut down")
            if request_id in self._live:
                raise ValueError(f"request {request_id!r} is still running")
            request = _Request(request_id, params)
            self._live[request_id] = request
            try:
                request.messages = self._messages(prompt)
            except (TypeError, ValueError) as error:
                self._finish(request, FinishReason.ERROR, _one_line(error))
                return
        self._pool.submit(self._run, request)

    def cancel(self, request_id: str) -> bool:
        """Stop a request now: emits its final "cancelled" event and drops the connection, which
        makes the server stop generating. Returns False if the request is unknown or finished."""
        with self._lock:
            request = self._live.get(request_id)
            if request is None:
                return False
            self._finish(request, FinishReason.CANCELLED)
            self._abort(request)
        return True

    def is_running(self) -> bool:
        return not self._closing

    def shutdown(self, *, drain: bool = False, timeout: float = 30.0) -> None:
        """Stop the backend and its threads. Idempotent.

        With ``drain=True`` live requests may finish first (up to ``timeout`` seconds); the rest are
        cancelled and get their "cancelled" event.
        """
        deadline = self._begin_shutdown(wait_for_live=drain, timeout=timeout)
        if deadline is None:
            return
        with self._lock:
            for request in list(self._live.values()):
                self._finish(request, FinishReason.CANCELLED)
                self._abort(request)
        # Every socket is shut down, so the threads return at once (one still connecting may
        # take up to timeout_s).
        self._pool.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            self._closed = True

    # ------------------------------------------------------------------ events

    @staticmethod
    def _messages(prompt: Prompt) -> list[dict[str, Any]]:
        if isinstance(prompt, str) or not isinstance(prompt, Sequence):
            raise TypeError("the remote backend takes chat messages, not raw text or token ids")
        messages = list(prompt)
        if not messages or not all(isinstance(m, Mapping) for m in messages):
            raise TypeError("the remote backend takes chat messages, not raw text or token ids")
        messages = [dict(m) for m in messages]
        for position, message in enumerate(messages, start=1):
            if not isinstance(message.get("role"), str) or "content" not in message:
                raise ValueError(f"message {position} needs a role and content")
        json.dumps(messages)  # not JSON-able is this request's error (TypeError), not the pool's
        return messages

    def _emit(self, request: _Request, text: str, **final: Any) -> None:
        request.seq += 1
        self._events.put(TokenDelta(request.request_id, request.seq, text, (), **final))

    def _finish(
        self, request: _Request, reason: FinishReason, error: str | None = None, text: str = ""
    ) -> None:
        """Emit the last event and forget the request. Call with the lock held."""
        request.done = True
        if self._live.get(request.request_id) is request:
            del self._live[request.request_id]
        prompt_tokens, completion_tokens = self._usage(request)
        if error is not None:
            logger.warning("remote request %s failed: %s", request.request_id, error)
        self._emit(
            request,
            text,
            finished=True,
            finish_reason=reason,
            error=error,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
        )

    def _usage(self, request: _Request) -> tuple[int, int]:
        prompt, completion = request.prompt_tokens, request.completion_tokens
        counter = self._token_counter
        if prompt is None:
            prompt = 0
            if counter is not None and request.messages:
                try:
                    prompt = sum(counter(str(m.get("content") or "")) for m in request.messages)
                except Exception:
                    logger.exception("token_counter failed")
        if completion is None:
            completion = request.chunks
            if counter is not None and request.raw_text:
                try:
                    completion = counter(request.raw_text)
                except Exception:
                    logger.exception("token_counter failed")
        return prompt, completion

    # ------------------------------------------------------------------ one request's stream

    def _run(self, request: _Request) -> None:
        try:
            self._relay(request)
        except _StreamOver:
            pass
        except Exception as error:  # each request's failure is its own event, never the pool's
            with self._lock:
                if request.done:  # cancelled: whatever the cut socket raised is moot
                    return
            message = self._describe(error)
            with self._lock:
                if not request.done:
                    self._finish(request, FinishReason.ERROR, message)
        finally:
            self._detach(request)

    def _describe(self, error: BaseException) -> str:
        if isinstance(error, RemoteError):
            return str(error)
        described = _network_error(error, self.url, self._host)
        if described is not None:
            return described
        logger.exception("remote request failed unexpectedly")
        return f"internal error: {_one_line(error)}"

    def _body(self, request: _Request) -> bytes:
        params = request.params
        body: dict[str, Any] = {
            "model": self.model,
            "messages": request.messages,
            "stream": True,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "max_tokens": params.max_new_tokens,
        }
        if self._send_stream_options:
            body["stream_options"] = {"include_usage": True}
        if params.stop:
            body["stop"] = list(params.stop)
        if params.seed is not None:
            body["seed"] = params.seed
        if request.messages and request.messages[-1].get("role") == "assistant":
            # A retried job continues its partial answer (vLLM and SGLang understand these).
            body["continue_final_message"] = True
            body["add_generation_prompt"] = False
        return json.dumps(body, ensure_ascii=False).encode("utf-8")

    def _headers(self) -> dict[str, str]:
        headers = {
            "Content-Type": "application/json",
            "Accept": "text/event-stream",
            "Cache-Control": "no-cache",
        }
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        return headers

    def _open(self, request: _Request) -> http.client.HTTPConnection:
        """Connect and register the connection so `cancel` can cut it; raise if already over."""
        if self._https:
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                self._host, self._port, timeout=self._timeout_s, context=self._ssl_context
            )
        else:
            conn = http.client.HTTPConnection(self._host, self._port, timeout=self._timeout_s)
        with self._lock:
            if request.done:
                raise _StreamOver
            request.conn = conn
        try:
            conn.connect()
        except TimeoutError:
            raise RemoteError(
                f"cannot connect to {self.url}: no answer within {self._timeout_s:g} s"
            ) from None
        with self._lock:
            if request.done:  # cancelled while connecting: the socket was not there to cut
                raise _StreamOver
            request.sock = conn.sock
        return conn

    def _relay(self, request: _Request) -> None:
        with self._lock:
            if request.done:  # cancelled while waiting for a thread
                return
        for attempt in range(2):
            conn = self._open(request)
            try:
                conn.request("POST", self._path, body=self._body(request), headers=self._headers())
                response = conn.getresponse()
            except TimeoutError:
                self._raise_if_over(request)
                raise RemoteError(
                    f"{self.url} sent no response within {self._timeout_s:g} s"
                ) from None
            except (OSError, http.client.HTTPException):
                self._raise_if_over(request)
                raise
            if response.status == 200:
                break
            body = self._read_error_body(response)
            self._raise_if_over(request)
            message = server_message(body)
            if (
                attempt == 0
                and self._send_stream_options
                and response.status in (400, 422)
                and "stream_options" in message
            ):
                logger.info("%s rejects stream_options; counting tokens without it", self.url)
                self._send_stream_options = False
                self._detach(request)
                continue
            raise RemoteError(
                f"{self.url} answered HTTP {response.status} {response.reason}: {message}"
            )
        content_type = (response.getheader("Content-Type") or "").split(";")[0].strip().lower()
        if content_type == "application/json":
            self._relay_json(request, response)
        elif content_type == "text/event-stream":
            self._relay_sse(request, response)
        else:
            raise RemoteError(
                f"{self.url} answered with {content_type or 'no content type'}, not an event stream"
            )

    def _read_error_body(self, response: http.client.HTTPResponse) -> bytes:
        try:
            return response.read(MAX_ERROR_BODY_BYTES)
        except (OSError, http.client.HTTPException):
            return b""

    def _raise_if_over(self, request: _Request) -> None:
        with self._lock:
            if request.done:
                raise _StreamOver

    def _relay_sse(self, request: _Request, response: http.client.HTTPResponse) -> None:
        data_lines: list[str] = []
        over = False
        while not over:
            try:
                line = response.readline(MAX_LINE_BYTES + 1)
            except TimeoutError:
                self._raise_if_over(request)
                raise RemoteError(
                    f"{self.url} sent nothing for {self._timeout_s:g} s in the middle of a stream"
                ) from None
            except (OSError, http.client.HTTPException):
                self._raise_if_over(request)
                raise
            self._raise_if_over(request)
            if not line:  # end of the stream
                if data_lines:
                    self._on_event(request, "\n".join(data_lines))
                break
            if len(line) > MAX_LINE_BYTES:
                raise RemoteError(f"malformed event stream from {self.url}: a line over 1 MiB")
            try:
                text = line.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError:
                raise RemoteError(
                    f"malformed event stream from {self.url}: a line is not UTF-8"
                ) from None
            if not text:  # a blank line ends an event
                if data_lines:
                    over = self._on_event(request, "\n".join(data_lines))
                    data_lines = []
                continue
            if text.startswith(":"):  # comment / keep-alive
                continue
            field, _, value = text.partition(":")
            if field == "data":
                data_lines.append(value[1:] if value.startswith(" ") else value)
            # event:, id:, retry: and unknown fields carry nothing for chat completions.
        self._end(request)

    def _on_event(self, request: _Request, data: str) -> bool:
        """Handle one event's data; True when the stream is over ([DONE])."""
        if data.strip() == "[DONE]":
            return True
        try:
            chunk = json.loads(data)
        except ValueError:
            raise RemoteError(
                f"malformed event from {self.url}: not JSON: {_one_line(data, 120)!r}"
            ) from None
        if not isinstance(chunk, dict):
            raise RemoteError(f"malformed event from {self.url}: not a JSON object")
        if chunk.get("error"):
            message = server_message(json.dumps(chunk).encode())
            raise RemoteError(f"{self.url} failed mid-stream: {message}")
        self._take_usage(request, chunk.get("usage"))
        choices = chunk.get("choices")
        if choices is None and "usage" in chunk:
            return False
        if not isinstance(choices, list):
            raise RemoteError(f"malformed event from {self.url}: no choices")
        for choice in choices:
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta")
            content = delta.get("content") if isinstance(delta, dict) else None
            if content:
                if not isinstance(content, str):
                    raise RemoteError(f"malformed event from {self.url}: content is not text")
                self._on_text(request, content)
            if choice.get("finish_reason"):
                request.server_finish = str(choice["finish_reason"])
        return False

    def _take_usage(self, request: _Request, usage: Any) -> None:
        if not isinstance(usage, dict):
            return
        for key in ("prompt_tokens", "completion_tokens"):
            value = usage.get(key)
            if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
                setattr(request, key, value)

    def _on_text(self, request: _Request, content: str) -> None:
        request.raw_text += content
        request.chunks += 1
        text, stopped = request.stops.push(content)
        with self._lock:
            if request.done:
                raise _StreamOver
            if stopped:
                # The server may not stop by itself: leaving makes it stop. Usage is counted,
                # since the server's usage event will not be read.
                self._finish(request, FinishReason.STOP, text=text)
                raise _StreamOver
            if text:
                self._emit(request, text)

    def _end(self, request: _Request) -> None:
        """The stream ended ([DONE] or the server closed it): emit the final event."""
        text, _ = request.stops.push("", final=True)
        reason = request.server_finish
        with self._lock:
            if request.done:
                return
            if reason is None:
                self._finish(
                    request,
                    FinishReason.ERROR,
                    f"{self.url} closed the stream before the answer finished",
                    text=text,
                )
            elif reason == "length":
                self._finish(request, FinishReason.LENGTH, text=text)
            elif reason in _STOP_REASONS:
                self._finish(request, FinishReason.STOP, text=text)
            else:  # vLLM's "abort", or anything else that is not a normal end
                self._finish(
                    request,
                    FinishReason.ERROR,
                    f"{self.url} ended the answer with {reason!r}",
                    text=text,
                )

    def _relay_json(self, request: _Request, response: http.client.HTTPResponse) -> None:
        """A server that ignored ``stream: true`` and sent one whole completion."""
        try:
            data = json.loads(response.read())
            choice = data["choices"][0]
            content = choice["message"].get("content") or ""
            request.server_finish = choice.get("finish_reason") or "stop"
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            raise RemoteError(f"malformed completion from {self.url}") from None
        self._take_usage(request, data.get("usage"))
        if content:
            self._on_text(request, content)
        self._end(request)

    def _detach(self, request: _Request) -> None:
        with self._lock:
            conn, request.conn, request.sock = request.conn, None, None
        if conn is not None:
            conn.close()

    @staticmethod
    def _abort(request: _Request) -> None:
        """Cut a request's connection from another thread (call with the lock held): the reader
        wakes up and the server sees the client go away.

        Only shut down here; the reading thread closes the socket (`_detach`), so a descriptor is
        never closed under a blocked recv. The plain socket method is used on TLS sockets too, so
        the TLS object the reader is using is left alone.
        """
        if request.sock is None:
            return
        with contextlib.suppress(OSError):  # already closed
            socket.socket.shutdown(request.sock, socket.SHUT_RDWR)
