from __future__ import annotations

import copy

import pytest
import torch
from transformers import AutoConfig
from transformers.models.qwen3_moe.modeling_qwen3_moe import Qwen3MoeExperts

from inference import int8_experts


@pytest.fixture
def float_experts(tiny_model_dir):
    config = AutoConfig.from_pretrained(tiny_model_dir)
    config._experts_implementation = "eager"
    torch.manual_seed(0)
    experts = Qwen3MoeExperts(config)
    with torch.no_grad():
        experts.gate_up_proj.normal_(std=0.05)
        experts.down_proj.normal_(std=0.05)
    return experts


def _routing(num_tokens: int, num_experts: int, top_k: int = 2):
    generator = torch.Generator().manual_seed(1)
    scores = torch.rand(num_tokens, num_experts, generator=generator)
    weights, index = scores.softmax(-1).topk(top_k, dim=-1)
    return index, weights / weights.sum(-1, keepdim=True)


def test_int8_experts_match_float_experts_with_outlier_features(float_experts):
    int8_experts.register()
    quantized = copy.deepcopy(float_experts)
    int8_experts.quantize_experts_(quantized, "cpu")
    quantized.config = copy.copy(float_experts.config)
    quantized.config._experts_implementation = int8_experts.EXPERTS_IMPLEMENTATION

    hidden = torch.randn(24, float_experts.hidden_dim, generator=torch.Generator().manual_seed(2))
    hidden[:, 5] = 30.0  # an outlier feature dimension, past the 6.0 threshold
    index, weights = _routing(24, float_experts.num_experts)
    with torch.no_grad():
        reference = float_experts(hidden, index, weights)
        result = quantized(hidden, index, weights)
    cosine = torch.nn.functional.cosine_similarity(reference, result, dim=-1)
    assert cosine.min() > 0.999
    relative = (result - reference).norm() / reference.norm()
    assert relative < 0.02


def test_stock_kernel_on_int8_experts_fails_loudly(float_experts):
    quantized = copy.deepcopy(float_experts)
    int8_experts.quantize_experts_(quantized, "cpu")
    quantized.config = copy.copy(float_experts.config)
    quantized.config._experts_implementation = "batched_mm"
    index, weights = _routing(4, float_experts.num_experts)
    with pytest.raises(AttributeError):
        quantized(torch.randn(4, float_experts.hidden_dim), index, weights)
