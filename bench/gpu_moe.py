"""Qwen3-Coder-30B-A3B shapes, random weights, one GPU: memory and decode tokens/s, bf16 vs int8.

Run from the repository root on a CUDA machine (prints one JSON object on stdout, progress on
stderr; nothing is downloaded)::

    python3 bench/gpu_moe.py                      # 48 layers, 1/8/32 concurrent, ~3-5 min on H100
    python3 bench/gpu_moe.py --layers 8           # a quick run with fewer layers
    python3 bench/gpu_moe.py --cpu-smoke          # tiny config on CPU: the code path, not figures

What it does, in one process:

1. Builds ``Qwen3MoeForCausalLM`` with the published Qwen3-Coder-30B-A3B-Instruct configuration
   (``QWEN3_CODER_30B_A3B`` below; ``--layers N`` keeps the first N of its 48 layers) directly on
   the GPU in bf16 with random weights (transformers' own initialisation, seed 0).
2. ``bf16`` phase: weight memory (``torch.cuda.memory_allocated`` and
   ``inference.loader.model_info``), then decode with ``inference.engine.Engine`` (qweb's
   continuous-batching engine) at each ``--concurrency`` level: that many requests of
   ``--prompt-tokens`` random token ids each, greedy, exactly ``--new-tokens`` new tokens (no
   end-of-sequence id, so none stops early).
3. Quantizes the same model in place with the loader's ``quantize_model_`` (experts int8 with
   per-row scales, attention ``Linear8bitLt``, router / embeddings / lm_head kept in bf16 — what
   ``load_model(quantize="int8")`` does after reading a checkpoint), which frees the bf16 experts:
   the two precisions run one after the other, so a 80 GB H100 holds the ~61 GB bf16 model and
   never both. Logits of one prompt before and after are compared (cosine, top-1 agreement).
4. ``int8`` phase: the same memory and decode figures.

Decode figures per concurrency level: ``tokens_per_s`` = all new tokens / (submit → last token);
``decode_tokens_per_s`` = tokens produced after every request had its first token / that span
(prefill excluded); ``per_request_tokens_per_s`` = decode_tokens_per_s / requests, and its inverse
``ms_per_token``. The engine's event timestamps are taken as the benchmark's poll receives them.

Without CUDA it prints ``{"error": ...}`` and exits with status 2, unless ``--cpu-smoke``, which
runs the same steps on the CPU with a tiny configuration (float32) to prove the path end to end.
The device machine needs transformers 5.24 and bitsandbytes 0.50 (see bench/README.md for
carrying them as wheels).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import sys
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# Qwen3-Coder-30B-A3B-Instruct, from its published config.json:
# https://huggingface.co/Qwen/Qwen3-Coder-30B-A3B-Instruct/blob/main/config.json
# (Qwen3MoeForCausalLM; values as read from verbatim copies of that file, e.g. the
# RTP-LLM/Qwen3-Coder-30B-A3B-Instruct-RTPurbo and shailesh83/Qwen3-Coder-int8 mirrors).
# intermediate_size is the dense MLP width, unused here: every layer is sparse
# (decoder_sparse_step 1, mlp_only_layers []).
QWEN3_CODER_30B_A3B: dict[str, Any] = {
    "vocab_size": 151936,
    "hidden_size": 2048,
    "intermediate_size": 5472,
    "moe_intermediate_size": 768,
    "num_hidden_layers": 48,
    "num_attention_heads": 32,
    "num_key_value_heads": 4,
    "head_dim": 128,
    "num_experts": 128,
    "num_experts_per_tok": 8,
    "norm_topk_prob": True,
    "decoder_sparse_step": 1,
    "mlp_only_layers": [],
    "max_position_embeddings": 262144,
    "rope_theta": 10000000,
    "rms_norm_eps": 1e-06,
    "hidden_act": "silu",
    "attention_bias": False,
    "tie_word_embeddings": False,
    "initializer_range": 0.02,
    "bos_token_id": 151643,
    "eos_token_id": 151645,
}
CONFIG_SOURCE = "https://huggingface.co/Qwen/Qwen3-Coder-30B-A3B-Instruct/blob/main/config.json"

# --cpu-smoke: the same architecture, small enough for a laptop CPU in seconds.
TINY: dict[str, Any] = {
    **QWEN3_CODER_30B_A3B,
    "vocab_size": 1024,
    "hidden_size": 64,
    "intermediate_size": 128,
    "moe_intermediate_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 16,
    "num_experts": 8,
    "num_experts_per_tok": 2,
    "max_position_embeddings": 2048,
    "bos_token_id": None,
    "eos_token_id": None,
}

GIB = 1024**3


def _log(message: str) -> None:
    print(f"[bench/gpu_moe] {message}", file=sys.stderr, flush=True)


def _version(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def _fail(message: str, code: int = 2) -> None:
    print(json.dumps({"benchmark": "gpu_moe", "error": message}, indent=2))
    raise SystemExit(code)


def _synthetic_tokenizer(vocab_size: int) -> Any:
    """A fast tokenizer whose every id decodes to a word ("t123"), so each token is one event.

    The real Qwen tokenizer cannot be downloaded on the device machine; the engine only needs
    ``len(tokenizer)``, ``decode`` and no end-of-sequence id.
    """
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {f"t{i}": i for i in range(vocab_size)}
    backend = Tokenizer(models.WordLevel(vocab, "t0"))  # "t0" stands in for unknown words
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=backend)


class Device:
    """CUDA memory readings, or nothing on the CPU smoke path."""

    def __init__(self, device: Any) -> None:
        import torch

        self.torch = torch
        self.device = device
        self.cuda = device.type == "cuda"

    def sync(self) -> None:
        if self.cuda:
            self.torch.cuda.synchronize(self.device)

    def release(self) -> None:
        gc.collect()
        if self.cuda:
            self.torch.cuda.synchronize(self.device)
            self.torch.cuda.empty_cache()

    def reset_peak(self) -> None:
        if self.cuda:
            self.torch.cuda.reset_peak_memory_stats(self.device)

    def readings(self) -> dict[str, int | None]:
        if not self.cuda:
            return {
                "allocated_bytes": None,
                "peak_allocated_bytes": None,
                "device_used_bytes": None,
            }
        free, total = self.torch.cuda.mem_get_info(self.device)
        return {
            "allocated_bytes": int(self.torch.cuda.memory_allocated(self.device)),
            "peak_allocated_bytes": int(self.torch.cuda.max_memory_allocated(self.device)),
            # Everything on the card: the caching allocator's reserve, CUDA context, cuBLAS.
            "device_used_bytes": int(total - free),
        }


def build_model(config_values: dict[str, Any], device: Any, dtype: Any) -> Any:
    import torch
    from transformers import GenerationConfig, Qwen3MoeConfig, Qwen3MoeForCausalLM

    config = Qwen3MoeConfig(**config_values)
    torch.manual_seed(0)
    with torch.device(device):
        model = Qwen3MoeForCausalLM._from_config(config, dtype=dtype)
    model.eval().requires_grad_(False)
    # No end-of-sequence id: every request runs exactly max_new_tokens.
    model.generation_config = GenerationConfig(
        bos_token_id=None, eos_token_id=None, pad_token_id=0, do_sample=False
    )
    return model


def memory_figures(model: Any, device: Device) -> dict[str, Any]:
    from inference.loader import model_info

    info = model_info(model)
    experts = info["kinds"].get("experts", {})
    return {
        "quantization": info["quantization"],
        "experts_implementation": info["experts_implementation"],
        "total_parameters": info["total_parameters"],
        "int8_fraction_of_parameters": round(info["int8_fraction"], 4),
        "weight_bytes_model_info": info["device_bytes"],
        "expert_bytes": experts.get("bytes", 0),
        "expert_dtypes": experts.get("dtypes", []),
        "expert_scale_dtypes": experts.get("scale_dtypes", []),
        "bytes_by_kind": {kind: values["bytes"] for kind, values in info["kinds"].items()},
        **{f"after_load_{key}": value for key, value in device.readings().items()},
    }


def probe_logits(model: Any, prompt: Any) -> Any:
    import torch

    with torch.no_grad():
        return model(input_ids=prompt).logits[0, -16:].float().cpu()


def compare_logits(reference: Any, quantized: Any) -> dict[str, Any]:
    import torch

    cosine = torch.nn.functional.cosine_similarity(reference, quantized, dim=-1)
    agree = (reference.argmax(-1) == quantized.argmax(-1)).float().mean()
    return {
        "positions": int(reference.shape[0]),
        "cosine_mean": round(float(cosine.mean()), 5),
        "cosine_min": round(float(cosine.min()), 5),
        "top1_agreement": round(float(agree), 4),
    }


def decode_run(
    engine: Any, requests: int, prompt_tokens: int, new_tokens: int, vocab: int, seed: int
) -> dict[str, Any]:
    import torch

    from inference.sampling import SamplingParams

    generator = torch.Generator().manual_seed(seed)
    prompts = [
        torch.randint(0, vocab, (prompt_tokens,), generator=generator).tolist()
        for _ in range(requests)
    ]
    ids = [f"r{seed}-{i}" for i in range(requests)]
    started = time.monotonic()
    for request_id, prompt in zip(ids, prompts, strict=True):
        engine.submit(request_id, prompt, SamplingParams(max_new_tokens=new_tokens))
    first: dict[str, float] = {}
    arrivals: list[tuple[float, int]] = []
    done = 0
    reasons = []
    while done < requests:
        batch = engine.poll(timeout=5.0)
        now = time.monotonic()
        for event in batch:
            if event.token_ids:
                first.setdefault(event.request_id, now)
                arrivals.append((now, len(event.token_ids)))
            if event.finished:
                done += 1
                reasons.append(event.finish_reason)
                if event.finish_reason == "error":
                    raise RuntimeError(f"engine error: {event.error}")
        if now - started > 600:
            raise RuntimeError("a decode run took over 600 s")
    ended = max(t for t, _ in arrivals)
    total = sum(n for _, n in arrivals)
    all_started = max(first.values())
    decode_tokens = sum(n for t, n in arrivals if t > all_started)
    span = ended - all_started
    decode_rate = decode_tokens / span if span > 0 else None
    firsts = [first[i] - started for i in ids]
    return {
        "requests": requests,
        "tokens": total,
        "seconds": round(ended - started, 4),
        "tokens_per_s": round(total / (ended - started), 2),
        "decode_tokens_per_s": None if decode_rate is None else round(decode_rate, 2),
        "per_request_tokens_per_s": (
            None if decode_rate is None else round(decode_rate / requests, 2)
        ),
        "ms_per_token": None if not decode_rate else round(1000 * requests / decode_rate, 2),
        "first_token_s_median": round(statistics.median(firsts), 4),
        "first_token_s_max": round(max(firsts), 4),
        "finish_reasons": sorted(set(reasons)),
    }


def run_phase(
    name: str,
    model: Any,
    tokenizer: Any,
    device: Device,
    arguments: argparse.Namespace,
    deadline: float,
) -> dict[str, Any]:
    from inference.engine import Engine

    _log(f"{name}: starting the engine")
    device.release()
    device.reset_peak()
    engine = Engine(model, tokenizer, kv_cache_bytes=int(arguments.kv_gib * GIB))
    runs: dict[str, Any] = {}
    try:
        info = engine.info
        vocab = model.config.vocab_size
        decode_run(engine, 1, 16, 4, vocab, seed=999)  # warm-up: kernels, cuBLAS handles
        for level in arguments.concurrency:
            if time.monotonic() > deadline:
                runs[str(level)] = {"skipped": "time budget (--budget-s) used up"}
                continue
            _log(f"{name}: {level} concurrent x {arguments.new_tokens} tokens")
            runs[str(level)] = decode_run(
                engine, level, arguments.prompt_tokens, arguments.new_tokens, vocab, seed=level
            )
        device.sync()
        readings = device.readings()
    finally:
        engine.shutdown()
        del engine
        device.release()
    return {
        "engine": {
            "kv_cache_bytes": info.kv_cache_bytes,
            "num_blocks": info.num_blocks,
            "page_size": info.page_size,
            "max_batch_tokens": info.max_batch_tokens,
            "max_request_tokens": info.max_request_tokens,
            "device": info.device,
        },
        "decode": runs,
        "during_decode_peak_allocated_bytes": readings["peak_allocated_bytes"],
        "during_decode_device_used_bytes": readings["device_used_bytes"],
    }


def run(arguments: argparse.Namespace) -> dict[str, Any]:
    import torch

    wall_started = time.monotonic()
    deadline = wall_started + arguments.budget_s
    if arguments.cpu_smoke:
        torch_device = torch.device("cpu")
        dtype = torch.float32  # the CPU compute dtype qweb's loader uses
        values = dict(TINY)
    else:
        torch_device = torch.device("cuda", torch.cuda.current_device())
        dtype = torch.bfloat16
        values = dict(QWEN3_CODER_30B_A3B)
    if arguments.layers:
        values["num_hidden_layers"] = arguments.layers
    device = Device(torch_device)

    from inference.loader import quantize_model_

    _log(f"building {values['num_hidden_layers']} layers on {torch_device} in {dtype}")
    started = time.monotonic()
    model = build_model(values, torch_device, dtype)
    device.sync()
    build_seconds = time.monotonic() - started
    tokenizer = _synthetic_tokenizer(values["vocab_size"])
    probe = torch.randint(
        0, values["vocab_size"], (1, 64), generator=torch.Generator().manual_seed(1)
    ).to(torch_device)

    phases: dict[str, Any] = {}
    full_name = "bf16" if dtype == torch.bfloat16 else "float32"
    phases[full_name] = {"dtype": str(dtype).removeprefix("torch.")}
    phases[full_name]["memory"] = memory_figures(model, device)
    reference = probe_logits(model, probe)
    if arguments.skip_full_precision:
        phases[full_name]["decode"] = "skipped (--skip-full-precision)"
    else:
        phases[full_name].update(
            run_phase(full_name, model, tokenizer, device, arguments, deadline)
        )

    _log("quantizing the experts and attention to int8 in place")
    started = time.monotonic()
    quantize_model_(model, torch_device)
    model.qweb_quantization = "int8"
    device.sync()
    quantize_seconds = time.monotonic() - started
    device.release()
    phases["int8"] = {"dtype": f"int8 experts/attention, {str(dtype).removeprefix('torch.')} rest"}
    phases["int8"]["memory"] = memory_figures(model, device)
    logits = compare_logits(reference, probe_logits(model, probe))
    phases["int8"].update(run_phase("int8", model, tokenizer, device, arguments, deadline))

    full_memory, int8_memory = phases[full_name]["memory"], phases["int8"]["memory"]
    comparison: dict[str, Any] = {
        "expert_bytes_int8_over_full": round(
            int8_memory["expert_bytes"] / full_memory["expert_bytes"], 4
        ),
        "weight_bytes_int8_over_full": round(
            int8_memory["weight_bytes_model_info"] / full_memory["weight_bytes_model_info"], 4
        ),
    }
    if device.cuda:
        comparison["allocated_int8_over_full"] = round(
            int8_memory["after_load_allocated_bytes"] / full_memory["after_load_allocated_bytes"],
            4,
        )
    full_decode = phases[full_name].get("decode")
    if isinstance(full_decode, dict):
        for level, run_figures in phases["int8"]["decode"].items():
            other = full_decode.get(level, {})
            if run_figures.get("decode_tokens_per_s") and other.get("decode_tokens_per_s"):
                comparison[f"decode_tokens_per_s_int8_over_full_{level}"] = round(
                    run_figures["decode_tokens_per_s"] / other["decode_tokens_per_s"], 3
                )

    machine: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "versions": {
            name: _version(name) for name in ("torch", "transformers", "bitsandbytes", "tokenizers")
        },
    }
    if device.cuda:
        properties = torch.cuda.get_device_properties(torch_device)
        machine["gpu"] = properties.name
        machine["gpu_memory_bytes"] = int(properties.total_memory)
        machine["cuda"] = torch.version.cuda
    return {
        "benchmark": "gpu_moe",
        "mode": "cpu-smoke" if arguments.cpu_smoke else "cuda",
        "config": {**values, "source": CONFIG_SOURCE, "layers_of_48": values["num_hidden_layers"]},
        "settings": {
            "concurrency": arguments.concurrency,
            "prompt_tokens": arguments.prompt_tokens,
            "new_tokens": arguments.new_tokens,
            "kv_cache_gib": arguments.kv_gib,
            "greedy": True,
            "budget_s": arguments.budget_s,
        },
        "build_seconds": round(build_seconds, 2),
        "quantize_seconds": round(quantize_seconds, 2),
        "phases": phases,
        "comparison": comparison,
        "int8_vs_full_logits": logits,
        "machine": machine,
        "wall_seconds": round(time.monotonic() - wall_started, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=None, help="first N of the 48 layers")
    parser.add_argument(
        "--concurrency",
        type=lambda text: [int(part) for part in text.split(",")],
        default=None,
        help="comma-separated concurrent request counts (default 1,8,32; smoke 1,2,4)",
    )
    parser.add_argument("--prompt-tokens", type=int, default=None, help="default 128 (smoke 16)")
    parser.add_argument("--new-tokens", type=int, default=None, help="default 128 (smoke 8)")
    parser.add_argument("--kv-gib", type=float, default=None, help="KV cache (default 2 GiB)")
    parser.add_argument(
        "--budget-s", type=float, default=420.0, help="skip decode runs after this many seconds"
    )
    parser.add_argument(
        "--skip-full-precision", action="store_true", help="no bf16 decode runs (memory only)"
    )
    parser.add_argument(
        "--cpu-smoke", action="store_true", help="tiny config on the CPU: proves the code path"
    )
    arguments = parser.parse_args()
    smoke = arguments.cpu_smoke
    arguments.concurrency = arguments.concurrency or ([1, 2, 4] if smoke else [1, 8, 32])
    arguments.prompt_tokens = arguments.prompt_tokens or (16 if smoke else 128)
    arguments.new_tokens = arguments.new_tokens or (8 if smoke else 128)
    arguments.kv_gib = arguments.kv_gib or (1 / 16 if smoke else 2.0)
    if arguments.layers is not None and not 1 <= arguments.layers <= 48:
        parser.error("--layers must be between 1 and 48")

    try:
        import torch
    except ImportError:
        _fail("PyTorch is not installed")
    if not smoke and not torch.cuda.is_available():
        _fail(
            "CUDA is not available: bench/gpu_moe.py measures a GPU. "
            "Use --cpu-smoke to check the code path on the CPU."
        )
    try:
        import bitsandbytes  # noqa: F401
        from transformers.generation import ContinuousBatchingConfig  # noqa: F401
    except ImportError as error:
        _fail(
            f"{error}: the engine needs transformers 5.24 and bitsandbytes 0.50 "
            "(bench/README.md says how to carry them to the device machine as wheels)"
        )
    try:
        report = run(arguments)
    except torch.cuda.OutOfMemoryError as error:
        _fail(f"out of GPU memory ({' '.join(str(error).split())[:300]}); try --layers N")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
