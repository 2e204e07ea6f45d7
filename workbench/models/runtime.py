"""Inference runtimes for scoring: plain PyTorch, or the same weights compiled by OpenVINO for a CPU.

Why OpenVINO: on a CPU the reward-model forward is compute-bound, and OpenVINO's fused attention / layer-norm
kernels and its AMX bf16 paths are faster than eager PyTorch at the *same* dtype (`benchmarks/bench_rm.py`
measures it; ONNX Runtime was slower than eager PyTorch here). Its rewards match PyTorch's to within
`PARITY_TOLERANCE` (tested in ``tests/test_runtime.py``). Training never uses it: only fixed weights are compiled.
"""

from __future__ import annotations

import importlib.util
import warnings
from collections.abc import Iterable
from typing import Any

import numpy as np
import torch

RUNTIMES = ("auto", "torch", "openvino")
OPENVINO_MAX_PARAMS = 1_000_000_000
"""``auto`` compiles models up to this size: compiling holds a second copy of the weights in memory."""
AUTO_MODEL_TYPES = ("bert",)
"""Architectures ``auto`` compiles: the ones the parity test covers. Others can ask for ``runtime="openvino"``;
``auto`` does not risk them because a failure can be a crash, not an exception (OpenVINO 2026.4 compiling a
tiny Llama classifier at bf16 died with a floating-point exception)."""

PARITY_TOLERANCE = {"fp32": 1e-4, "bf16": 0.05}
"""Largest |reward difference| allowed between OpenVINO and PyTorch, as a fraction of the rewards' spread
(standard deviation) over the inputs; fp32 agrees to float rounding, bf16 to bf16 rounding of activations."""


def openvino_available() -> bool:
    return importlib.util.find_spec("openvino") is not None


def resolve_runtime(runtime: str, device: torch.device, model: torch.nn.Module) -> str:
    """What ``runtime`` means for this model and device: "torch" or "openvino".

    ``auto`` picks OpenVINO on a CPU when it is installed, the architecture is in `AUTO_MODEL_TYPES` and the
    model is small enough to compile twice in memory; asking for ``openvino`` where it cannot run is a clear error.
    """
    if runtime not in RUNTIMES:
        raise ValueError(f"runtime must be one of {list(RUNTIMES)}, got {runtime!r}.")
    if runtime == "torch":
        return "torch"
    problem = ("OpenVINO runs on the CPU; this model is on " + device.type) if device.type != "cpu" else (
        "" if openvino_available() else "the openvino package is not installed (pip install openvino)")
    if runtime == "openvino" and problem:
        raise RuntimeError(f"runtime='openvino' requested but {problem}.")
    if runtime == "auto" and (problem or getattr(getattr(model, "config", None), "model_type", "") not in AUTO_MODEL_TYPES
                              or sum(p.numel() for p in model.parameters()) > OPENVINO_MAX_PARAMS):
        return "torch"
    return "openvino"


class _Logits(torch.nn.Module):
    """(input_ids, attention_mask) -> the first logit, (batch, 1): the plain signature OpenVINO traces."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        extra = {"use_cache": False} if getattr(self.model.config, "use_cache", None) is not None else {}
        return self.model(input_ids=input_ids, attention_mask=attention_mask, **extra).logits[:, :1]


class MeanPooled(torch.nn.Module):
    """(input_ids, attention_mask) -> the L2-normalised mean of the last hidden states over real tokens: what a
    sentence-transformers (Transformer, Pooling mean, Normalize) model computes."""

    def __init__(self, encoder: torch.nn.Module):
        super().__init__()
        self.encoder = encoder

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return torch.nn.functional.normalize(mean, dim=-1)


class OpenVINOModel:
    """A (input_ids, attention_mask) -> (batch, d) module compiled by OpenVINO at one dtype ("fp32" | "bf16").

    Two streams of one thread each (``THROUGHPUT``): on a small model, two batches in flight keep the cores
    busier than one batch on two threads (measured in ``benchmarks/bench_rm.py``).
    """

    def __init__(self, module: torch.nn.Module, dtype: str, *, threads: int | None = None):
        import openvino as ov

        threads = threads or torch.get_num_threads()
        example = (torch.ones(2, 8, dtype=torch.long), torch.ones(2, 8, dtype=torch.long))
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # tracing warnings about Python control flow on shapes
            graph = ov.convert_model(module.eval(), example_input=example,
                                     input=[("input_ids", [-1, -1], ov.Type.i64), ("attention_mask", [-1, -1], ov.Type.i64)])
        self.streams = max(1, min(2, threads))
        config = {"INFERENCE_PRECISION_HINT": {"fp32": "f32", "bf16": "bf16"}[dtype], "INFERENCE_NUM_THREADS": threads,
                  "PERFORMANCE_HINT": "THROUGHPUT", "NUM_STREAMS": self.streams}
        self.compiled = ov.Core().compile_model(graph, "CPU", config)
        self.dim = int(self.compiled.output(0).get_partial_shape()[1].get_length())
        self.dtype = dtype
        self._ov = ov

    def run(self, batches: Iterable[tuple[np.ndarray, np.ndarray, np.ndarray]], n: int) -> np.ndarray:
        """Outputs (n, d) for ``(rows, input_ids, attention_mask)`` batches; ``rows`` say where each result goes."""
        out = np.empty((n, self.dim), dtype=np.float32)
        queue = self._ov.AsyncInferQueue(self.compiled, self.streams)
        queue.set_callback(lambda request, rows: out.__setitem__(rows, request.get_output_tensor(0).data))
        for rows, input_ids, mask in batches:
            queue.start_async({"input_ids": input_ids, "attention_mask": mask}, rows)
        queue.wait_all()
        return out


def openvino_scorer(model: torch.nn.Module, dtype: str, cache: dict[str, Any]) -> OpenVINOModel:
    """A reward model's first logit compiled at ``dtype``, once per model object (kept in ``cache``)."""
    if dtype not in cache:
        cache[dtype] = OpenVINOModel(_Logits(model), dtype)
    return cache[dtype]
