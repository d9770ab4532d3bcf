from __future__ import annotations

import torch
from transformers import AutoConfig

from inference import int8_experts
from inference.loader import model_info

from .conftest import PROMPTS

# Closeness bounds over every position of PROMPTS (198 tokens) against the float32 model;
# measured with seed 0: mean cosine 0.996, median 0.9997, top-1 agreement 0.88, mean KL 0.003.
# A random router has near-tied expert scores, so int8 noise flips one of the top-2 experts at
# ~5% of positions (cosine there can drop to ~0.76, and attention carries it to later tokens);
# hence bounds on the mean and median, not the minimum, plus a strict bound until routing diverges.
MEAN_COSINE = 0.99
MEDIAN_COSINE = 0.999
TOP1_AGREEMENT = 0.85
MEAN_KL = 0.02
# Until the first position where a router picks different experts (measured min 0.9996).
SAME_ROUTE_COSINE = 0.998
# int8 codes + float32 row scales against the checkpoint's bf16: (hidden + 4) / (2 * hidden) ~ 0.52.
MEMORY_RATIO = 0.55


def _experts_modules(model):
    return [module for module in model.modules() if int8_experts.is_experts_module(module)]


def _logits(model, tokenizer, prompt):
    ids = tokenizer(prompt, return_tensors="pt").input_ids
    with torch.no_grad():
        return model(ids).logits[0].float()


def test_every_expert_weight_is_stored_as_int8(int8_model, tiny_model_dir):
    config = AutoConfig.from_pretrained(tiny_model_dir)
    experts = _experts_modules(int8_model)
    assert len(experts) == config.num_hidden_layers
    int8_bytes = 0
    for module in experts:
        assert not any(True for _ in module.parameters(recurse=False)), (
            "float expert weights remain"
        )
        for name in ("gate_up_proj", "down_proj"):
            codes = getattr(module, f"{name}_int8")
            assert codes.dtype == torch.int8
            assert getattr(module, f"{name}_scale").shape == codes.shape[:2]
            int8_bytes += codes.numel() * codes.element_size()
    per_layer = config.num_experts * 3 * config.moe_intermediate_size * config.hidden_size
    assert int8_bytes == config.num_hidden_layers * per_layer
    assert model_info(int8_model)["kinds"]["experts"]["int8_parameters"] == int8_bytes


def test_int8_model_runs_experts_through_the_registered_kernel(int8_model):
    assert int8_model.config._experts_implementation == int8_experts.EXPERTS_IMPLEMENTATION
    for module in _experts_modules(int8_model):
        assert module.config._experts_implementation == int8_experts.EXPERTS_IMPLEMENTATION


def test_model_info_reports_dtype_per_kind_of_module(int8_model, float32_model):
    info = model_info(int8_model)
    kinds = info["kinds"]
    assert kinds["experts"]["dtypes"] == ["int8"]
    assert kinds["attention"]["dtypes"] == ["int8"]
    for kind in ("router", "embeddings", "lm_head", "norms"):
        assert kinds[kind]["dtypes"] == ["float32"], kind
        assert kinds[kind]["int8_parameters"] == 0
    assert info["total_parameters"] == model_info(float32_model)["total_parameters"]
    assert info["int8_parameters"] == sum(k["int8_parameters"] for k in kinds.values())
    assert info["device_bytes"] < model_info(float32_model)["device_bytes"]
    assert info["demo_model"] is True
    assert info["quantization"] == "int8"


def test_int8_experts_use_at_most_055_of_bf16_memory(int8_model, bfloat16_model):
    int8_bytes = model_info(int8_model)["kinds"]["experts"]["bytes"]  # scales included
    bf16 = model_info(bfloat16_model)["kinds"]["experts"]
    assert bf16["dtypes"] == ["bfloat16"]
    assert int8_bytes / bf16["bytes"] <= MEMORY_RATIO
    assert sum(int8_experts.expert_weight_bytes(m) for m in _experts_modules(int8_model)) == (
        int8_bytes
    )


def test_int8_logits_stay_close_to_full_precision(int8_model, float32_model, tokenizer):
    cosines, agreements, divergences = [], [], []
    for prompt in PROMPTS:
        reference = _logits(float32_model, tokenizer, prompt)
        quantized = _logits(int8_model, tokenizer, prompt)
        cosines.append(torch.nn.functional.cosine_similarity(reference, quantized, dim=-1))
        agreements.append(reference.argmax(-1) == quantized.argmax(-1))
        divergences.append(
            torch.nn.functional.kl_div(
                quantized.log_softmax(-1),
                reference.log_softmax(-1),
                log_target=True,
                reduction="none",
            ).sum(-1)
        )
    cosine = torch.cat(cosines)
    assert cosine.mean() >= MEAN_COSINE
    assert cosine.median() >= MEDIAN_COSINE
    assert torch.cat(agreements).float().mean() >= TOP1_AGREEMENT
    assert torch.cat(divergences).mean() <= MEAN_KL


def test_int8_logits_match_full_precision_until_routing_diverges(
    int8_model, float32_model, tokenizer
):
    def record_routes(model):
        routes = []
        hooks = [
            layer.mlp.gate.register_forward_hook(
                lambda _module, _inputs, output: routes.append(output[2].sort(-1).values)
            )
            for layer in model.model.layers
        ]
        return routes, hooks

    compared, total = 0, 0
    for prompt in PROMPTS:
        reference_routes, reference_hooks = record_routes(float32_model)
        quantized_routes, quantized_hooks = record_routes(int8_model)
        try:
            reference = _logits(float32_model, tokenizer, prompt)
            quantized = _logits(int8_model, tokenizer, prompt)
        finally:
            for hook in reference_hooks + quantized_hooks:
                hook.remove()
        same_route = torch.stack(
            [(a == b).all(-1) for a, b in zip(reference_routes, quantized_routes, strict=True)]
        ).all(0)
        # Attention spreads one token's different experts to every later token.
        before_divergence = same_route.cumprod(0).bool()
        cosine = torch.nn.functional.cosine_similarity(reference, quantized, dim=-1)
        assert (cosine[before_divergence] >= SAME_ROUTE_COSINE).all()
        compared += int(before_divergence.sum())
        total += len(cosine)
    assert compared >= 0.3 * total, "too few positions left to compare"


def test_greedy_generation_with_int8_model_produces_text(int8_model, tokenizer):
    inputs = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Write a function that adds two numbers."}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    prompt_length = inputs["input_ids"].shape[1]
    with torch.no_grad():
        output = int8_model.generate(**inputs, max_new_tokens=24, do_sample=False)
    again = int8_model.generate(**inputs, max_new_tokens=24, do_sample=False)
    new_tokens = output[0, prompt_length:]
    assert 0 < len(new_tokens) <= 24
    assert torch.equal(output, again), "greedy decoding is deterministic"
    assert int(new_tokens.max()) < len(tokenizer)
    text = tokenizer.decode(new_tokens, skip_special_tokens=True)
    assert isinstance(text, str)
    assert text.strip()


def test_int8_linear_holds_outlier_columns_in_float():
    torch.manual_seed(0)
    weight = torch.randn(32, 64) * 0.05
    x = torch.randn(4, 64)
    x[:, 7] = 40.0  # one outlier feature, as LLM.int8() sees in large models
    codes, scale = int8_experts.quantize_rows(weight)
    reference = x @ weight.T
    with_outliers = int8_experts.int8_linear(x, codes, scale, threshold=6.0)
    without = int8_experts.int8_linear(x, codes, scale, threshold=0.0)
    error = (with_outliers - reference).abs().max()
    assert error < 0.05
    assert error < (without - reference).abs().max()
    assert torch.equal(x[:, 7], torch.full((4,), 40.0)), "input is not modified"


def test_int8_model_decodes_the_same_under_continuous_batching(int8_model, tokenizer):
    from transformers import GenerationConfig

    prompts = [
        tokenizer.apply_chat_template(
            [{"role": "user", "content": content}], add_generation_prompt=True, return_dict=True
        )["input_ids"]
        for content in ("hi", "write a parser", "explain 这个函数")
    ]
    config = GenerationConfig(
        max_new_tokens=8,
        do_sample=False,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    batched = int8_model.generate_batch(inputs=prompts, generation_config=config)
    assert len(batched) == len(prompts)
    for output in batched.values():
        alone = int8_model.generate(
            torch.tensor([output.prompt_ids]), max_new_tokens=8, do_sample=False
        )[0, len(output.prompt_ids) :].tolist()
        assert output.generated_tokens == alone[: len(output.generated_tokens)]
        assert output.generated_tokens
