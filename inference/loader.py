"""Load a causal LM from a local directory, optionally with every expert and linear weight in int8.

What is quantized, and why:

- Experts (fused 3-D ``gate_up_proj``/``down_proj``): int8 with per-row scales via
  ``inference.int8_experts``. They are ~95% of a Qwen3-MoE's weights, and bitsandbytes'
  ``nn.Linear`` swap never reaches them, so this is where the memory is.
- Attention projections and any other plain ``nn.Linear`` (dense MLPs, shared experts): bitsandbytes
  ``Linear8bitLt`` (LLM.int8(), outlier threshold 6.0), the same module ``load_in_8bit`` would use.
- Router (``mlp.gate``): full precision. It is tiny (experts x hidden per layer) and its output is
  a discrete top-k choice; int8 error there flips which experts run, which costs far more accuracy
  than the bytes it would save.
- ``lm_head`` and embeddings: full precision, as transformers/bitsandbytes do by default. The
  output projection decides every token, embeddings are a lookup rather than a matmul, and together
  they are about 1-2% of a 30B MoE.
- Norms and biases: full precision (vectors, negligible size).

Weights are read on the host first and moved to ``device`` one module at a time, so the device peak
stays near the int8 size, but the host briefly holds the full-precision model. Only safetensors are
read: pickled ``.bin`` checkpoints can run code on load.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from inference import int8_experts

Quantization = Literal["int8", "none"]

ROUTER_NAMES = frozenset({"gate", "router", "shared_expert_gate"})
KINDS = ("experts", "attention", "router", "embeddings", "lm_head", "norms", "other")


class ModelLoadError(Exception):
    """A model directory cannot be loaded; the message is one line saying why."""


class _DropFp16CastWarning(logging.Filter):
    """Drop bitsandbytes' per-call notice that Linear8bitLt casts activations to fp16."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "will be cast from" not in record.getMessage()


logging.getLogger("bitsandbytes.autograd._functions").addFilter(_DropFp16CastWarning())


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return text[:300] or type(error).__name__


def read_config(directory: str | Path) -> Any:
    """Validate a model directory and return its transformers config, or raise ModelLoadError."""
    from transformers import AutoConfig
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING

    directory = Path(directory)
    if not directory.is_dir():
        raise ModelLoadError(f"model directory {directory} does not exist")
    config_path = directory / "config.json"
    if not config_path.is_file():
        raise ModelLoadError(f"{directory} has no config.json")
    try:
        raw = json.loads(config_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ModelLoadError(f"config.json is not valid JSON: {_one_line(error)}") from error
    if not isinstance(raw, dict) or "model_type" not in raw:
        raise ModelLoadError("config.json has no model_type")
    try:
        config = AutoConfig.from_pretrained(directory, local_files_only=True)
    except (ValueError, KeyError, TypeError, OSError) as error:
        raise ModelLoadError(
            f"unsupported architecture {raw['model_type']!r}: {_one_line(error)}"
        ) from error
    if type(config) not in MODEL_FOR_CAUSAL_LM_MAPPING:
        raise ModelLoadError(f"unsupported architecture {raw['model_type']!r}: not a causal LM")
    if not _weight_files(directory):
        raise ModelLoadError(f"{directory} has no model.safetensors (or safetensors index)")
    return config


def _weight_files(directory: Path) -> list[Path]:
    index = directory / "model.safetensors.index.json"
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
        except (json.JSONDecodeError, KeyError, TypeError) as error:
            raise ModelLoadError(f"safetensors index is malformed: {_one_line(error)}") from error
        shards = sorted({directory / name for name in weight_map.values()})
        missing = [shard.name for shard in shards if not shard.is_file()]
        if missing:
            raise ModelLoadError(f"safetensors index names missing shard {missing[0]}")
        return shards
    single = directory / "model.safetensors"
    return [single] if single.is_file() else []


def default_dtype(device: torch.device) -> torch.dtype:
    """Return the compute dtype: bf16 on accelerators (Qwen's native dtype), fp32 on CPU."""
    return torch.float32 if device.type == "cpu" else torch.bfloat16


def load_model(
    directory: str | Path,
    *,
    quantize: Quantization = "int8",
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = None,
    threshold: float = int8_experts.DEFAULT_THRESHOLD,
) -> nn.Module:
    """Load a causal LM from `directory` onto `device`; experts and linears in int8 if asked."""
    from transformers import AutoModelForCausalLM

    if quantize not in ("int8", "none"):
        raise ValueError(f"quantize must be 'int8' or 'none', not {quantize!r}")
    device = torch.device(device)
    dtype = dtype or default_dtype(device)
    config = read_config(directory)
    try:
        model = AutoModelForCausalLM.from_pretrained(
            directory,
            config=config,
            dtype=dtype,
            use_safetensors=True,
            local_files_only=True,
        )
    except Exception as error:  # safetensors, shape and IO errors all mean "cannot load"
        raise ModelLoadError(f"cannot load weights: {_one_line(error)}") from error
    model.eval().requires_grad_(False)
    if quantize == "int8":
        try:
            quantize_model_(model, device, threshold=threshold)
        except int8_experts.UnsupportedExpertsError as error:
            raise ModelLoadError(str(error)) from error
    model.to(device)
    model.qweb_quantization = quantize
    return model


def _skip_linear(name: str, module: nn.Module, output_embeddings: nn.Module | None) -> bool:
    return module is output_embeddings or name.rsplit(".", 1)[-1] in ROUTER_NAMES


def _int8_linear(module: nn.Linear, device: torch.device, threshold: float) -> nn.Module:
    import bitsandbytes as bnb

    # Build on meta so no throwaway random weight is allocated, then attach the real one.
    with torch.device("meta"):
        new = bnb.nn.Linear8bitLt(
            module.in_features,
            module.out_features,
            bias=module.bias is not None,
            has_fp16_weights=False,
            threshold=threshold,
        )
    new.weight = bnb.nn.Int8Params(
        module.weight.detach().cpu(), requires_grad=False, has_fp16_weights=False
    )
    if module.bias is not None:
        new.bias = nn.Parameter(module.bias.detach().cpu(), requires_grad=False)
    # Int8Params quantizes (row-wise int8 + SCB scales) when moved off the host copy.
    return new.to(device)


@torch.no_grad()
def quantize_model_(
    model: nn.Module, device: torch.device, *, threshold: float = int8_experts.DEFAULT_THRESHOLD
) -> nn.Module:
    """Quantize experts and nn.Linear layers of `model` in place, moving them to `device`."""
    int8_experts.register()
    output_embeddings = model.get_output_embeddings()
    experts_found = False
    for name, module in list(model.named_modules()):
        if int8_experts.is_experts_module(module):
            int8_experts.quantize_experts_(module, device, threshold=threshold)
            experts_found = True
        elif type(module) is nn.Linear and not _skip_linear(name, module, output_embeddings):
            model.set_submodule(name, _int8_linear(module, device, threshold))
    if experts_found:
        model.set_experts_implementation(int8_experts.EXPERTS_IMPLEMENTATION)
        for module in model.modules():
            if int8_experts.is_int8_experts(module):
                # set_experts_implementation skips classes it cannot introspect; force ours.
                module.config._experts_implementation = int8_experts.EXPERTS_IMPLEMENTATION
    return model


def _module_kind(name: str, module: nn.Module, output_embeddings: nn.Module | None) -> str:
    if module is output_embeddings:
        return "lm_head"
    if int8_experts.is_experts_module(module):
        return "experts"
    if isinstance(module, nn.Embedding):
        return "embeddings"
    class_name = type(module).__name__.lower()
    if "norm" in class_name:
        return "norms"
    if name.rsplit(".", 1)[-1] in ROUTER_NAMES or "router" in class_name:
        return "router"
    if "attn" in name or "attention" in name:
        return "attention"
    return "other"


def _tensors(module: nn.Module) -> list[tuple[str, torch.Tensor, str]]:
    """Return (name, tensor, role) for a module's own tensors; role is weight, scale or buffer."""
    found: list[tuple[str, torch.Tensor, str]] = []
    for name, param in module.named_parameters(recurse=False):
        found.append((name, param, "weight"))
        # Linear8bitLt keeps its per-row scales outside the parameter list.
        scb = getattr(param, "SCB", None)
        if isinstance(scb, torch.Tensor):
            found.append((f"{name}.SCB", scb, "scale"))
    state_scb = getattr(getattr(module, "state", None), "SCB", None)
    if isinstance(state_scb, torch.Tensor):
        found.append(("state.SCB", state_scb, "scale"))
    for name, buffer in module.named_buffers(recurse=False):
        if name.endswith("_int8"):
            role = "weight"
        elif name.endswith("_scale"):
            role = "scale"
        else:
            role = "buffer"  # e.g. rotary inv_freq: on the device, but not model parameters
        found.append((name, buffer, role))
    return found


def model_info(model: nn.Module) -> dict[str, Any]:
    """Summarize parameters, int8 parameters, device bytes and dtypes per kind of module."""
    output_embeddings = model.get_output_embeddings()
    kinds: dict[str, dict[str, Any]] = {
        kind: {
            "parameters": 0,
            "int8_parameters": 0,
            "bytes": 0,
            "dtypes": set(),
            "scale_dtypes": set(),
        }
        for kind in KINDS
    }
    seen: set[int] = set()
    devices: set[str] = set()
    for name, module in model.named_modules():
        kind = kinds[_module_kind(name, module, output_embeddings)]
        for _, tensor, role in _tensors(module):
            # Tied weights and bitsandbytes' duplicated SCB references are one allocation.
            key = tensor.data_ptr() if tensor.numel() else id(tensor)
            if key in seen:
                continue
            seen.add(key)
            devices.add(str(tensor.device))
            kind["bytes"] += tensor.numel() * tensor.element_size()
            if role == "weight":
                kind["parameters"] += tensor.numel()
                kind["dtypes"].add(str(tensor.dtype).removeprefix("torch."))
                if tensor.dtype == torch.int8:
                    kind["int8_parameters"] += tensor.numel()
            elif role == "scale":
                kind["scale_dtypes"].add(str(tensor.dtype).removeprefix("torch."))
    summary = {
        kind: {
            **values,
            "dtypes": sorted(values["dtypes"]),
            "scale_dtypes": sorted(values["scale_dtypes"]),
        }
        for kind, values in kinds.items()
        if values["bytes"]
    }
    total = sum(values["parameters"] for values in summary.values())
    int8 = sum(values["int8_parameters"] for values in summary.values())
    return {
        "quantization": getattr(model, "qweb_quantization", "none"),
        "experts_implementation": getattr(model.config, "_experts_implementation", None),
        "devices": sorted(devices),
        "total_parameters": total,
        "int8_parameters": int8,
        "int8_fraction": int8 / total if total else 0.0,
        "device_bytes": sum(values["bytes"] for values in summary.values()),
        "kinds": summary,
        "demo_model": bool(getattr(model.config, "qweb_demo_model", False)),
    }
