"""Fixtures for inference tests: one tiny Qwen3-MoE checkpoint per session, loaded both ways."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from inference.loader import load_model

PROMPTS = (
    "def fibonacci(n):\n    if n < 2:\n        return n\n",
    "import os\nimport sys\n\nfrom pathlib import Path\n",
    "class Config:\n    def __init__(self, path):\n        self.path = path\n",
    "for i in range(10):\n    print(i, end=' ')\n",
    "# 中文注释：读取配置 🚀\nresult = {'größe': 3, 'café': True}\n",
    "with open('data.json', encoding='utf-8') as handle:\n    data = json.load(handle)\n",
    "@dataclass\nclass Point:\n    x: float\n    y: float\n",
    "try:\n    value = int(text)\nexcept ValueError:\n    value = None\n",
)


@pytest.fixture(scope="session")
def tokenizer(tiny_model_dir: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


@pytest.fixture(scope="session")
def int8_model(tiny_model_dir: Path):
    return load_model(tiny_model_dir, quantize="int8")


@pytest.fixture(scope="session")
def float32_model(tiny_model_dir: Path):
    return load_model(tiny_model_dir, quantize="none", dtype=torch.float32)


@pytest.fixture(scope="session")
def bfloat16_model(tiny_model_dir: Path):
    """The checkpoint's own precision: the fair baseline for memory comparisons."""
    return load_model(tiny_model_dir, quantize="none", dtype=torch.bfloat16)
