"""Per-request sampling for transformers' continuous batching.

What transformers 5's continuous batching offers per request, and what is added here:

- ``max_new_tokens`` and ``eos_token_id`` are per request (``add_request`` arguments).
- With ``ContinuousBatchingConfig(per_request_processors=True)``, temperature, top-k and top-p can
  vary per request through ``logit_processor_kwargs``, but only if the *generation config* already
  enables them (temperature not 1.0, top_p below 1.0): otherwise no processor exists to read them.
- Greedy vs sampling is **not** per request: ``do_sample`` is read once from the generation config
  and the whole batch is either ``argmax``-ed or ``multinomial``-sampled. A temperature of 0 is a
  division by zero there, and there is no per-request seed (one generator for the whole batch).

So qweb installs its own three processors, built on transformers' per-request processor interface
(one int32 argument row per processor, filled on the host for every request in the batch):

1. `PerRequestTemperature` divides by the request's temperature (left as is for temperature 0).
2. `PerRequestTopP` applies nucleus filtering with the request's top_p.
3. `PerRequestDraw` picks the token itself: ``argmax`` for greedy requests, otherwise inverse-CDF
   sampling with a uniform number drawn on the host from the request's own seed and step counter.
   It returns one-hot logits (0 for the chosen token, -inf elsewhere), and the manager runs with
   ``do_sample=False``, so its ``argmax`` returns exactly the token chosen here.

Everything on the device is plain tensor arithmetic on per-request argument tensors, so it stays
valid under CUDA graphs and ``torch.compile``; the random numbers come from the request's seed
rather than the batch, so a seeded request samples the same tokens whoever it is batched with (up
to the batch's own floating-point differences in the logits).
"""

from __future__ import annotations

import random
import secrets
from typing import Any

import torch
from transformers.generation.continuous_batching.cb_logits_processors import (
    ContinuousBatchingLogitsProcessor,
    ContinuousBatchingLogitsProcessorList,
)
from transformers.generation.logits_process import LogitsProcessorList

# SamplingParams and its checks live in the torch-free inference.params (the job service and the
# remote backend use them without loading torch); importable from here as before.
from inference.params import SamplingParams

__all__ = ["SamplingParams", "per_request_processors", "processor_kwargs"]

# Keys stored in RequestState.logit_processor_kwargs; prefixed so they never clash with
# transformers' own per-request processors.
TEMPERATURE = "qweb_temperature"
TOP_P = "qweb_top_p"
SEED = "qweb_seed"
DRAWS = "qweb_draws"  # counter of uniforms drawn so far; lives in the request's own kwargs

GREEDY = -1.0  # uniform value that marks a greedy request for PerRequestDraw


def processor_kwargs(params: SamplingParams) -> dict[str, Any]:
    """The per-request arguments the processors below read from the request state."""
    seed = params.seed if params.seed is not None else secrets.randbits(63)
    return {
        TEMPERATURE: float(params.temperature),
        TOP_P: float(params.top_p),
        SEED: int(seed) & (2**63 - 1),
        DRAWS: 0,
    }


def _as_int32(values: list[float]) -> torch.Tensor:
    # Processor arguments share one int32 tensor; floats travel bit-cast, as transformers' do.
    return torch.tensor(values, dtype=torch.float32).view(torch.int32)


def _fill(int32_row: torch.Tensor, value: float) -> None:
    int32_row.copy_(torch.full_like(int32_row, value, dtype=torch.float32).view(torch.int32))


class PerRequestTemperature(ContinuousBatchingLogitsProcessor):
    supported_kwargs: dict[str, type] = {TEMPERATURE: float}
    ignored_kwargs: tuple[str, ...] = ()

    def fill_defaults(self, int32_tensor: torch.Tensor) -> None:
        _fill(int32_tensor, 1.0)

    def prepare_tensor_args(self, requests_with_new_token: list) -> torch.Tensor:
        temps = [
            r.state.logit_processor_kwargs.get(TEMPERATURE, 0.0) for r in requests_with_new_token
        ]
        # Greedy requests are divided by 1: the draw takes their argmax, which scaling cannot move.
        return _as_int32([t if t > 0 else 1.0 for t in temps])

    def __call__(self, scores: torch.Tensor, tensor_arg: torch.Tensor) -> torch.Tensor:
        temperatures = tensor_arg[: scores.size(0)].view(torch.float32)
        return scores / temperatures.unsqueeze(-1)


class PerRequestTopP(ContinuousBatchingLogitsProcessor):
    supported_kwargs: dict[str, type] = {TOP_P: float}
    ignored_kwargs: tuple[str, ...] = ()

    def fill_defaults(self, int32_tensor: torch.Tensor) -> None:
        _fill(int32_tensor, 1.0)

    def prepare_tensor_args(self, requests_with_new_token: list) -> torch.Tensor:
        return _as_int32(
            [r.state.logit_processor_kwargs.get(TOP_P, 1.0) for r in requests_with_new_token]
        )

    def __call__(self, scores: torch.Tensor, tensor_arg: torch.Tensor) -> torch.Tensor:
        top_p = tensor_arg[: scores.size(0)].view(torch.float32).unsqueeze(-1)
        sorted_scores, sorted_indices = torch.sort(scores, descending=False, dim=-1)
        cumulative = sorted_scores.softmax(dim=-1).cumsum(dim=-1)
        remove = cumulative <= (1 - top_p)
        remove[..., -1:] = False  # the most likely token always stays
        remove = remove.scatter(-1, sorted_indices, remove)
        return scores.masked_fill(remove, float("-inf"))


class PerRequestDraw(ContinuousBatchingLogitsProcessor):
    """Choose each request's token (argmax or seeded sample) and return it as one-hot logits."""

    supported_kwargs: dict[str, type] = {SEED: int, DRAWS: int, TEMPERATURE: float}
    ignored_kwargs: tuple[str, ...] = ()

    def fill_defaults(self, int32_tensor: torch.Tensor) -> None:
        _fill(int32_tensor, GREEDY)

    @staticmethod
    def uniform(seed: int, draw: int) -> float:
        """The request's ``draw``-th uniform number in [0, 1): a pure function of (seed, draw)."""
        # Sampling noise, not a secret: a seeded PRNG is the point.
        return random.Random((seed << 32) ^ draw).random()  # noqa: S311

    def prepare_tensor_args(self, requests_with_new_token: list) -> torch.Tensor:
        values = []
        for request in requests_with_new_token:
            kwargs = request.state.logit_processor_kwargs
            if kwargs.get(TEMPERATURE, 0.0) <= 0:
                values.append(GREEDY)
                continue
            # Runs on the generation thread only; the counter travels with the request's kwargs,
            # so it survives the manager's soft resets (which copy them).
            draw = kwargs.get(DRAWS, 0)
            kwargs[DRAWS] = draw + 1
            values.append(self.uniform(kwargs.get(SEED, 0), draw))
        return _as_int32(values)

    def __call__(self, scores: torch.Tensor, tensor_arg: torch.Tensor) -> torch.Tensor:
        uniforms = tensor_arg[: scores.size(0)].view(torch.float32)
        greedy_choice = scores.argmax(dim=-1)
        cdf = scores.softmax(dim=-1).cumsum(dim=-1)
        target = (uniforms.clamp(min=0) * cdf[:, -1]).unsqueeze(-1).contiguous()
        sampled = torch.searchsorted(cdf, target, right=True).squeeze(-1)
        sampled = sampled.clamp(max=scores.size(-1) - 1)
        chosen = torch.where(uniforms < 0, greedy_choice, sampled)
        one_hot = torch.full_like(scores, float("-inf"))
        return one_hot.scatter(-1, chosen.unsqueeze(-1), 0.0)


def per_request_processors() -> ContinuousBatchingLogitsProcessorList:
    """The processor list to install on a ContinuousBatchingManager before it builds its batches."""
    processors = ContinuousBatchingLogitsProcessorList(
        LogitsProcessorList([PerRequestTemperature(), PerRequestTopP(), PerRequestDraw()]),
        per_request_processors=False,
    )
    # The list only counts argument rows for processors it converted itself.
    processors.tensors_required = 3
    return processors
