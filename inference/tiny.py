"""Build a tiny random Qwen3-MoE checkpoint with a real byte-level BPE tokenizer (demos, tests)."""

from __future__ import annotations

import json
import sysconfig
from pathlib import Path

IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
END_OF_TEXT = "<|endoftext|>"
SPECIAL_TOKENS = (END_OF_TEXT, IM_START, IM_END)

# Qwen's ChatML layout: a default system turn, one block per message, then the assistant header.
CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{%- if loop.first and message['role'] != 'system' %}"
    "{{- '<|im_start|>system\\nYou are a helpful coding assistant.<|im_end|>\\n' }}"
    "{%- endif %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)

# Stdlib modules read as training text: present in every CPython install, so no download is needed.
_CORPUS_MODULES = (
    "textwrap.py",
    "string.py",
    "functools.py",
    "dataclasses.py",
    "contextlib.py",
    "shlex.py",
    "difflib.py",
    "pathlib.py",
    "json/encoder.py",
    "json/decoder.py",
)

# Some non-ASCII text so merges also cover common multi-byte UTF-8 sequences.
_EXTRA_TEXT = (
    "# Größe, naïve café, déjà vu — «quotes» and ‘single’ ones\n"
    "# 中文注释：读取配置文件并返回结果。日本語のコメント。한국어 주석\n"
    "# Emoji in strings: '🚀 deploy', '✅ done', '❌ failed', '🙂'\n"
    "def grüßen(name: str) -> str:\n    return f'Hallo, {name}! 你好！'\n"
)

DEFAULT_VOCAB_SIZE = 2048


def training_text() -> list[str]:
    """Return the in-repo text the tiny tokenizer is trained on, in a fixed order."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    texts = [_EXTRA_TEXT]
    for name in _CORPUS_MODULES:
        path = stdlib / name
        if path.is_file():
            texts.append(path.read_text(encoding="utf-8"))
    return texts


def build_tokenizer(vocab_size: int = DEFAULT_VOCAB_SIZE):  # -> tokenizers.Tokenizer
    """Train a deterministic byte-level BPE tokenizer with Qwen's special tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tokenizer = Tokenizer(models.BPE())
    # add_prefix_space=False and use_regex=True match GPT-2/Qwen byte-level pre-tokenisation.
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=list(SPECIAL_TOKENS),
        # The full byte alphabet keeps every byte sequence encodable, so any UTF-8 text round-trips.
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(training_text(), trainer=trainer)
    return tokenizer


def _tokenizer_config() -> dict:
    special = {
        token: {
            "content": token,
            "lstrip": False,
            "normalized": False,
            "rstrip": False,
            "single_word": False,
            "special": True,
        }
        for token in SPECIAL_TOKENS
    }
    return {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "added_tokens_decoder": {str(i): special[t] for i, t in enumerate(SPECIAL_TOKENS)},
        "additional_special_tokens": [IM_START, IM_END],
        "bos_token": None,
        "eos_token": IM_END,
        "pad_token": END_OF_TEXT,
        "unk_token": None,
        "clean_up_tokenization_spaces": False,
        "model_max_length": 2048,
        "chat_template": CHAT_TEMPLATE,
    }


def make_tiny_model(
    directory: str | Path,
    *,
    seed: int = 0,
    num_layers: int = 2,
    hidden_size: int = 128,
    num_experts: int = 8,
    experts_per_token: int = 2,
    vocab_size: int = DEFAULT_VOCAB_SIZE,
) -> Path:
    """Write a tiny random Qwen3-MoE checkpoint laid out like a hub download; return its path."""
    import torch
    from transformers import GenerationConfig, Qwen3MoeConfig, Qwen3MoeForCausalLM

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)

    tokenizer = build_tokenizer(vocab_size)
    tokenizer.save(str(directory / "tokenizer.json"))
    (directory / "tokenizer_config.json").write_text(
        json.dumps(_tokenizer_config(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    im_end_id = tokenizer.token_to_id(IM_END)
    eot_id = tokenizer.token_to_id(END_OF_TEXT)

    num_heads = 4
    config = Qwen3MoeConfig(
        vocab_size=tokenizer.get_vocab_size(),
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        moe_intermediate_size=hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=2,
        # Set explicitly: Qwen3 decouples head_dim from hidden_size / heads.
        head_dim=hidden_size // num_heads,
        num_experts=num_experts,
        num_experts_per_tok=experts_per_token,
        norm_topk_prob=True,
        decoder_sparse_step=1,
        mlp_only_layers=[],
        max_position_embeddings=2048,
        tie_word_embeddings=False,
        # Wider than the usual 0.02 so the experts' output dominates the residual stream: with
        # 0.02 a broken expert kernel barely moves the logits and closeness tests miss it.
        initializer_range=0.08,
        bos_token_id=None,
        eos_token_id=im_end_id,
        pad_token_id=eot_id,
        qweb_demo_model=True,
    )

    torch.manual_seed(seed)
    model = Qwen3MoeForCausalLM(config)
    # Real Qwen3 checkpoints ship in bf16; storing the same keeps memory comparisons honest.
    model = model.to(torch.bfloat16)
    model.generation_config = GenerationConfig(
        bos_token_id=None,
        eos_token_id=[im_end_id, eot_id],
        pad_token_id=eot_id,
        do_sample=False,
        max_new_tokens=64,
    )
    model.save_pretrained(directory, safe_serialization=True)
    return directory
