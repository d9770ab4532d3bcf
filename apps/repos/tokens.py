"""Token counts with the configured model's tokenizer, so budgets match what the model sees."""

from __future__ import annotations

import functools
import logging
from pathlib import Path

from django.conf import settings

logger = logging.getLogger(__name__)


class TokenCounter:
    """Counts tokens with a Hugging Face ``tokenizer.json``, or estimates without one."""

    def __init__(self, tokenizer_file: Path | None) -> None:
        self._tokenizer = None
        self.name = "estimate (4 characters per token)"
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
        if self._tokenizer is None:
            return [(len(text) + 3) // 4 for text in texts]
        encodings = self._tokenizer.encode_batch(texts, add_special_tokens=False)
        return [len(encoding.ids) for encoding in encodings]


@functools.cache
def _counter_for(path: str) -> TokenCounter:
    return TokenCounter(Path(path) / "tokenizer.json")


def token_counter() -> TokenCounter:
    """The counter for the configured model (``QWEB_MODEL_DIR``)."""
    return _counter_for(str(settings.QWEB_MODEL_DIR))
