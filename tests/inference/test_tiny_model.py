from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from transformers import AutoConfig, AutoModelForCausalLM

from inference.tiny import END_OF_TEXT, IM_END, IM_START, make_tiny_model


def _digest(directory: Path) -> dict[str, str]:
    return {
        path.name: hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(directory.iterdir())
    }


def test_tiny_model_is_laid_out_like_a_hub_checkpoint(tiny_model_dir):
    names = {path.name for path in tiny_model_dir.iterdir()}
    assert {
        "config.json",
        "generation_config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
    } <= names
    tokenizer_config = json.loads((tiny_model_dir / "tokenizer_config.json").read_text())
    assert "<|im_start|>assistant" in tokenizer_config["chat_template"]


def test_tiny_model_is_a_qwen3_moe_marked_as_a_demo(tiny_model_dir, tokenizer):
    config = AutoConfig.from_pretrained(tiny_model_dir)
    assert config.architectures == ["Qwen3MoeForCausalLM"]
    assert config.qweb_demo_model is True
    assert config.head_dim * config.num_attention_heads == config.hidden_size
    assert (config.num_experts, config.num_experts_per_tok) == (8, 2)
    assert config.vocab_size == len(tokenizer)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    assert type(model).__name__ == "Qwen3MoeForCausalLM"


def test_tiny_model_is_deterministic_for_a_seed(tiny_model_dir, tmp_path):
    assert _digest(make_tiny_model(tmp_path / "again", seed=0)) == _digest(tiny_model_dir)


@pytest.mark.parametrize(
    "text",
    [
        "naïve café, déjà vu — «Größe»",
        "中文注释：读取配置文件。日本語のコメント。한국어",
        "emoji 🚀✅❌🙂 and a family 👩‍👩‍👧 with zero-width joiners",
        "math 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 ∑∫√ and combining e\u0301",
        "def f(x):\n\treturn x  # trailing spaces   \n",
    ],
)
def test_tokenizer_round_trips_multi_byte_utf8(tokenizer, text):
    ids = tokenizer.encode(text, add_special_tokens=False)
    assert tokenizer.decode(ids) == text


def test_special_tokens_are_single_ids(tokenizer):
    for token in (IM_START, IM_END, END_OF_TEXT):
        ids = tokenizer.encode(token, add_special_tokens=False)
        assert ids == [tokenizer.convert_tokens_to_ids(token)]
    assert tokenizer.eos_token == IM_END
    assert tokenizer.pad_token == END_OF_TEXT


def test_chat_template_renders_qwen_chatml(tokenizer):
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Explain this 函数"}],
        tokenize=False,
        add_generation_prompt=True,
    )
    assert text == (
        "<|im_start|>system\nYou are a helpful coding assistant.<|im_end|>\n"
        "<|im_start|>user\nExplain this 函数<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
