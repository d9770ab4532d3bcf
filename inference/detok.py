"""Incremental detokenization and stop-string matching for streamed generation.

Byte-level BPE tokenizers (Qwen's included) often split one multi-byte UTF-8 character across
several tokens. Decoding a prefix that ends inside such a character yields U+FFFD, and emitting it
would put a broken character on the wire that a later delta cannot repair. `IncrementalDetokenizer`
holds back the unfinished tail until it decodes cleanly, so every delta is whole characters and
the concatenated deltas equal the decode of all tokens at once.

`StopStringMatcher` finds stop strings that may span deltas: it holds back the last
``len(longest stop) - 1`` characters until they can no longer begin a stop string.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

REPLACEMENT_CHARACTER = "\ufffd"


class IncrementalDetokenizer:
    """Turn a growing list of token ids into text deltas that never split a character.

    The decode window starts a few tokens back (``prefix_offset``) rather than at the last emitted
    token, so tokenizers whose decoding depends on the previous token (leading-space handling in
    SentencePiece) produce the same text as a full decode. Each step decodes only that window.
    """

    def __init__(self, tokenizer: Any, *, skip_special_tokens: bool = True) -> None:
        self._tokenizer = tokenizer
        self._skip_special_tokens = skip_special_tokens
        self.token_ids: list[int] = []
        self._prefix_offset = 0  # window start; text of [prefix_offset, read_offset) is emitted
        self._read_offset = 0  # tokens before this are fully emitted
        self._emitted_past_read = 0  # characters emitted from tokens at/after read_offset
        self.text = ""  # everything emitted so far

    def _decode(self, ids: Sequence[int]) -> str:
        return self._tokenizer.decode(
            list(ids),
            skip_special_tokens=self._skip_special_tokens,
            clean_up_tokenization_spaces=False,
        )

    def add(self, new_ids: Iterable[int], *, final: bool = False) -> str:
        """Append token ids and return the newly complete text ('' if the tail is unfinished).

        With ``final=True`` the held-back tail is flushed as is: if the model really produced an
        invalid byte sequence, the U+FFFD it decodes to is emitted rather than dropped.
        """
        self.token_ids.extend(new_ids)
        prefix_text = self._decode(self.token_ids[self._prefix_offset : self._read_offset])
        window_text = self._decode(self.token_ids[self._prefix_offset :])
        complete = not window_text.endswith(REPLACEMENT_CHARACTER)
        # The characters before an unfinished tail do not change when the tail is completed
        # (UTF-8 is self-synchronizing), so they can go out now.
        stable = window_text if (complete or final) else window_text.rstrip(REPLACEMENT_CHARACTER)
        start = len(prefix_text) + self._emitted_past_read
        delta = stable[start:] if len(stable) > start else ""
        if complete or final:
            # The window ends on a character boundary: slide it forward.
            self._prefix_offset = self._read_offset
            self._read_offset = len(self.token_ids)
            self._emitted_past_read = 0
        else:
            self._emitted_past_read += len(delta)
        self.text += delta
        return delta


class StopStringMatcher:
    """Cut streamed text at the first stop string, even when it spans several deltas."""

    def __init__(self, stop: Sequence[str]) -> None:
        self.stop = tuple(s for s in stop if s)
        self._hold = max((len(s) for s in self.stop), default=1) - 1
        self._buffer = ""
        self.stopped_on: str | None = None

    def push(self, text: str, *, final: bool = False) -> tuple[str, bool]:
        """Feed new text; return (text safe to emit, whether a stop string was found).

        Once a stop string is found, the returned text ends right before it and nothing more is
        ever returned. With ``final=True`` the held-back characters are released.
        """
        if self.stopped_on is not None:
            return "", True
        self._buffer += text
        cut = -1
        for candidate in self.stop:
            index = self._buffer.find(candidate)
            if index != -1 and (cut == -1 or index < cut):
                cut, self.stopped_on = index, candidate
        if cut != -1:
            out, self._buffer = self._buffer[:cut], ""
            return out, True
        if final or not self._hold:
            out, self._buffer = self._buffer, ""
            return out, False
        # Any stop string starting in the emitted part would already lie wholly in the buffer.
        split = max(0, len(self._buffer) - self._hold)
        out, self._buffer = self._buffer[:split], self._buffer[split:]
        return out, False
