"""Token counts with the served model's tokenizer, so budgets match what the model sees.

Locally that is ``QWEB_MODEL_DIR``'s tokenizer. A remote server's model is counted with
``QWEB_REMOTE_TOKENIZER_DIR`` (the served model's tokenizer files) or, without it, estimated
pessimistically; never with ``QWEB_MODEL_DIR``, which is the demo model there. The server's
``/tokenize`` is not used: a turn counts hundreds of pieces and indexing counts every file, so
a call each would put the model server in the path of every request and every index.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path

from django.conf import settings

logger = logging.getLogger(__name__)


# Large byte-level BPE vocabularies (Qwen's among them) typically give English and source code
# 3.5 to 4 bytes a token and CJK text about one character (3 UTF-8 bytes) a token, so 3 bytes a
# token overcounts most text: an estimated prompt comes out smaller than the budget rather than
# refused by the server. A heuristic, not a bound (dense data such as base64 can beat it); the
# exact count needs QWEB_REMOTE_TOKENIZER_DIR.
PESSIMISTIC_BYTES_PER_TOKEN = 3


class TokenCounter:
    """Counts tokens with a Hugging Face ``tokenizer.json``, or estimates without one.

    The estimate is 4 characters a token, or with ``pessimistic`` 3 UTF-8 bytes a token (a
    remote model whose tokenizer qweb does not have).
    """

    def __init__(self, tokenizer_file: Path | None, *, pessimistic: bool = False) -> None:
        self._tokenizer = None
        self._pessimistic = pessimistic
        self.name = (
            f"estimate ({PESSIMISTIC_BYTES_PER_TOKEN} bytes per token)"
            if pessimistic
            else "estimate (4 characters per token)"
        )
        if tokenizer_file is not None and tokenizer_file.is_file():
            try:
                from tokenizers import Tokenizer

                self._tokenizer = Tokenizer.from_file(str(tokenizer_file))
                self.name = str(tokenizer_file.parent.name)
            except Exception:
                logger.exception("Cannot load %s; token counts are estimates", tokenizer_file)

    @property
    def exact(self) -> bool:
        return self._tokenizer is not None

    def count(self, text: str) -> int:
        return self.count_many([text])[0]

    def count_many(self, texts: list[str]) -> list[int]:
        """Token counts of many texts at once (the tokenizer batches them in parallel)."""
        if self._tokenizer is None and self._pessimistic:
            per = PESSIMISTIC_BYTES_PER_TOKEN
            return [(len(text.encode("utf-8", "replace")) + per - 1) // per for text in texts]
        if self._tokenizer is None:
            return [(len(text) + 3) // 4 for text in texts]
        encodings = self._tokenizer.encode_batch(texts, add_special_tokens=False)
        return [len(encoding.ids) for encoding in encodings]


@functools.cache
def _counter_for(path: str, pessimistic: bool = False) -> TokenCounter:
    return TokenCounter(Path(path) / "tokenizer.json" if path else None, pessimistic=pessimistic)


def tokenizer_dir() -> Path | None:
    """Where the served model's tokenizer is: ``QWEB_MODEL_DIR``, or for a remote server
    ``QWEB_REMOTE_TOKENIZER_DIR`` (None when not set)."""
    if settings.QWEB_INFERENCE_BACKEND == "remote":
        return settings.QWEB_REMOTE_TOKENIZER_DIR
    return settings.QWEB_MODEL_DIR


def token_counter() -> TokenCounter:
    """The counter for the served model (see the module's docstring)."""
    directory = tokenizer_dir()
    remote = settings.QWEB_INFERENCE_BACKEND == "remote"
    return _counter_for(str(directory) if directory else "", remote)
