"""Int8 MoE expert weights behind transformers 5's experts interface, on bitsandbytes primitives.

transformers 5 stores the experts of a MoE layer as fused 3-D parameters (``gate_up_proj``:
``(experts, 2 * intermediate, hidden)``, ``down_proj``: ``(experts, hidden, intermediate)``) and
dispatches their forward through ``ExpertsInterface`` by ``config._experts_implementation``.
bitsandbytes' ``Linear8bitLt`` swap only reaches ``nn.Linear``, so those tensors would stay in full
precision. Here each expert matrix is quantized row-wise (one absmax scale per output row, the
LLM.int8() weight format) with ``bitsandbytes.functional.int8_vectorwise_quant``, and the forward
registered as ``"qweb_int8"`` multiplies with ``int8_linear_matmul`` + ``int8_mm_dequant``, holding
activation outlier columns (|x| >= threshold) back in floating point as LLM.int8() does.

The module keeps its class, activation and gating (``_apply_gate``); only its float parameters are
replaced by int8 buffers ``<name>_int8`` and float32 scales ``<name>_scale``. The names differ from
the originals on purpose: a stock kernel (``grouped_mm``...) selected by mistake fails with
AttributeError instead of multiplying raw int8 codes.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from bitsandbytes import functional as bnb_functional
from torch import nn
from transformers.integrations.moe import ALL_EXPERTS_FUNCTIONS, ExpertsInterface

EXPERTS_IMPLEMENTATION = "qweb_int8"
DEFAULT_THRESHOLD = 6.0  # bitsandbytes' / transformers' default llm_int8_threshold

_PROJECTIONS = ("gate_up_proj", "up_proj", "down_proj")


class UnsupportedExpertsError(ValueError):
    """The experts module has a layout the int8 kernel does not implement."""


def is_experts_module(module: nn.Module) -> bool:
    """Return True for a transformers 5 fused-experts module (float or already int8)."""
    if is_int8_experts(module):
        return True
    down = getattr(module, "down_proj", None)
    return (
        hasattr(module, "has_gate")  # set by @use_experts_implementation
        and isinstance(down, torch.Tensor)
        and down.dim() == 3
    )


def is_int8_experts(module: nn.Module) -> bool:
    """Return True for an experts module converted by `quantize_experts_`."""
    return getattr(module, "qweb_int8_experts", False)


def quantize_rows(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Quantize a 2-D (out, in) matrix to int8 with one float32 absmax scale per row."""
    # bitsandbytes' CUDA kernel takes fp16 only; Linear8bitLt casts weights the same way.
    q, scale, _ = bnb_functional.int8_vectorwise_quant(weight.to(torch.float16).contiguous())
    # An all-zero row has scale 0 and codes from 0/0; zero them so storage is deterministic.
    q[scale == 0] = 0
    return q, scale.float()


def _expert_matrices(module: nn.Module, name: str) -> torch.Tensor:
    """Return a projection as (experts, out, in), undoing the transposed layout some models use."""
    weight = getattr(module, name).detach()
    return weight.transpose(1, 2) if module.is_transposed else weight


@torch.no_grad()
def quantize_experts_(
    module: nn.Module,
    device: torch.device | str,
    *,
    threshold: float = DEFAULT_THRESHOLD,
) -> nn.Module:
    """Replace an experts module's float weights, in place, by int8 rows + scales on `device`."""
    if is_int8_experts(module):
        return module
    if getattr(module, "has_post_expert_norm", False):
        raise UnsupportedExpertsError("experts with a post-expert norm are not supported in int8")
    if getattr(module, "is_concatenated", True) is False:
        raise UnsupportedExpertsError(
            "interleaved gate/up expert weights are not supported in int8"
        )
    device = torch.device(device)
    for name in _PROJECTIONS:
        if not isinstance(getattr(module, name, None), torch.Tensor):
            continue
        weight = _expert_matrices(module, name)
        codes = torch.empty(weight.shape, dtype=torch.int8, device=device)
        scales = torch.empty(weight.shape[:2], dtype=torch.float32, device=device)
        # One expert at a time: the device never holds more than one float expert matrix.
        for expert in range(weight.shape[0]):
            codes[expert], scales[expert] = quantize_rows(weight[expert].to(device))
        delattr(module, name)
        module.register_buffer(f"{name}_int8", codes)
        module.register_buffer(f"{name}_scale", scales)
    for name in ("gate_up_proj_bias", "up_proj_bias", "down_proj_bias"):
        bias = getattr(module, name, None)
        if isinstance(bias, torch.Tensor):
            # Biases are tiny and added after dequantization, so they stay in floating point.
            setattr(module, name, nn.Parameter(bias.detach().to(device), requires_grad=False))
    module.qweb_int8_experts = True
    module.int8_threshold = threshold
    return module


class QuantizedActivations(NamedTuple):
    """Row-quantized activations, plus the float input for the outlier columns held back."""

    x: torch.Tensor
    codes: torch.Tensor
    scale: torch.Tensor
    outlier_cols: torch.Tensor | None

    def rows(self, index: torch.Tensor) -> QuantizedActivations:
        """Select rows; quantization is row-wise, so the selected rows stay valid."""
        return QuantizedActivations(
            self.x[index], self.codes[index], self.scale[index], self.outlier_cols
        )


def quantize_activations(x: torch.Tensor, threshold: float = 0.0) -> QuantizedActivations:
    """Quantize a 2-D activation matrix row-wise, holding back columns with |x| >= threshold."""
    # Quantize a contiguous fp16 copy: the CUDA kernel takes fp16 only, and the CPU kernel zeroes
    # outliers in its input while it works.
    x16 = x.to(torch.float16, copy=True).contiguous()
    codes, scale, outlier_cols = bnb_functional.int8_vectorwise_quant(x16, threshold=threshold)
    if outlier_cols is not None and not outlier_cols.numel():
        outlier_cols = None
    return QuantizedActivations(x, codes, scale, outlier_cols)


def int8_matmul(
    activations: QuantizedActivations,
    codes: torch.Tensor,
    scale: torch.Tensor,
    bias: torch.Tensor | None = None,
) -> torch.Tensor:
    """Compute x @ W.T from quantized activations and int8 row-quantized W (LLM.int8())."""
    x = activations.x
    accumulated = bnb_functional.int8_linear_matmul(activations.codes, codes)
    # Call the op rather than F.int8_mm_dequant: the wrapper always returns fp16, which can
    # overflow for large down-projection outputs; the op takes the output dtype.
    out = torch.ops.bitsandbytes.int8_mm_dequant.default(
        accumulated, activations.scale, scale, dtype=x.dtype
    )
    cols = activations.outlier_cols
    if cols is not None:
        columns = bnb_functional.int8_vectorwise_dequant(codes[:, cols].contiguous(), scale)
        out = out.addmm(x[:, cols], columns.to(x.dtype).t())
    if bias is not None:
        out = out + bias.to(x.dtype)
    return out


def int8_linear(
    x: torch.Tensor,
    codes: torch.Tensor,
    scale: torch.Tensor,
    bias: torch.Tensor | None = None,
    threshold: float = 0.0,
) -> torch.Tensor:
    """Compute x @ W.T for int8 row-quantized W; |x| >= threshold columns stay float."""
    return int8_matmul(quantize_activations(x, threshold), codes, scale, bias)


def int8_experts_forward(
    self: nn.Module,
    hidden_states: torch.Tensor,
    top_k_index: torch.Tensor,
    top_k_weights: torch.Tensor,
) -> torch.Tensor:
    """Experts forward on int8 weights: (token, expert) pairs grouped by expert."""
    num_tokens, hidden_dim = hidden_states.shape
    top_k = top_k_index.size(-1)
    expert_ids = top_k_index.reshape(-1)
    order = torch.argsort(expert_ids, stable=True)
    # One host sync per layer for the per-expert counts; experts with no tokens cost nothing.
    counts = torch.bincount(expert_ids, minlength=self.num_experts).tolist()
    up_name = "gate_up_proj" if self.has_gate else "up_proj"
    up_codes, up_scale = getattr(self, f"{up_name}_int8"), getattr(self, f"{up_name}_scale")
    up_bias = getattr(self, f"{up_name}_bias", None) if self.has_bias else None
    down_bias = getattr(self, "down_proj_bias", None) if self.has_bias else None
    threshold = self.int8_threshold
    # Every expert sees the same token rows, so quantize them once per layer, not once per expert;
    # outlier columns become the union over the batch, which only keeps more in float.
    tokens = quantize_activations(hidden_states, threshold)

    # Accumulate in float32: several experts add into each token.
    pair_out = torch.zeros(
        expert_ids.numel(), hidden_dim, dtype=torch.float32, device=hidden_states.device
    )
    start = 0
    for expert, count in enumerate(counts):
        if count == 0:
            continue
        pairs = order[start : start + count]
        start += count
        if expert >= self.num_experts:
            continue  # expert-parallel sentinel ids sort last and carry zero weight
        h = int8_matmul(
            tokens.rows(pairs // top_k),  # pair p belongs to token p // top_k
            up_codes[expert],
            up_scale[expert],
            None if up_bias is None else up_bias[expert],
        )
        h = self._apply_gate(h) if self.has_gate else self.act_fn(h)
        y = int8_linear(
            h,
            self.down_proj_int8[expert],
            self.down_proj_scale[expert],
            None if down_bias is None else down_bias[expert],
            threshold,
        )
        pair_out[pairs] = y.float()
    weighted = pair_out * top_k_weights.reshape(-1, 1).float()
    return weighted.view(num_tokens, top_k, hidden_dim).sum(dim=1).to(hidden_states.dtype)


def register() -> None:
    """Register the int8 kernel in transformers' global experts interface (idempotent)."""
    if EXPERTS_IMPLEMENTATION not in ALL_EXPERTS_FUNCTIONS:
        ExpertsInterface.register(EXPERTS_IMPLEMENTATION, int8_experts_forward)


def expert_weight_bytes(module: nn.Module) -> int:
    """Return the bytes an experts module's weights occupy, quantization scales included."""
    total = 0
    for name in _PROJECTIONS:
        for suffix in ("", "_int8", "_scale"):
            tensor = getattr(module, name + suffix, None)
            if isinstance(tensor, torch.Tensor):
                total += tensor.numel() * tensor.element_size()
    return total
