"""Inference runtimes for scoring: plain PyTorch, or the same weights compiled by OpenVINO for a CPU.

Why OpenVINO: on a CPU the reward-model forward is compute-bound, and OpenVINO's fused attention / layer-norm
kernels and its AMX bf16 paths are faster than eager PyTorch at the *same* dtype (`benchmarks/bench_rm.py`
measures it; ONNX Runtime was slower than eager PyTorch here). Its rewards match PyTorch's to within
`PARITY_TOLERANCE` (tested in ``tests/test_runtime.py``). Training never uses it: only fixed weights are compiled.

``int8``: post-training quantization by NNCF (`quantized_model`): weights and activations of the matmuls in int8,
calibrated on real texts, cached on disk per fingerprint of (weights, calibration recipe, NNCF / OpenVINO
versions). It changes the outputs (unlike fp32 / bf16, which only round), so whoever uses it measures what it
keeps (``tests/test_int8.py``, ``benchmarks/bench_clustering.py``).
"""

from __future__ import annotations

import hashlib
import importlib.util
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from workbench.data.files import write_folder_atomic

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


OPENVINO_DTYPES = ("fp32", "bf16", "int8")
INT8_RECIPE = "nncf.quantize:TRANSFORMER:v1"
"""Part of the int8 cache fingerprint: change it when the quantization settings in `quantized_model` change."""


def openvino_available() -> bool:
    return importlib.util.find_spec("openvino") is not None


def int8_problem() -> str:
    """Why an int8 OpenVINO model cannot be built and run here, or "" when it can."""
    if not openvino_available():
        return "the openvino package is not installed (pip install openvino)"
    if importlib.util.find_spec("nncf") is None:
        return "the nncf package is not installed (pip install nncf; it quantizes the model)"
    import openvino as ov

    if "INT8" not in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
        return "OpenVINO reports no INT8 support on this CPU (OPTIMIZATION_CAPABILITIES lacks INT8)"
    return ""


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


def _convert(module: torch.nn.Module) -> Any:
    """The OpenVINO graph of an (input_ids, attention_mask) module, dynamic in batch and length."""
    import openvino as ov

    example = (torch.ones(2, 8, dtype=torch.long), torch.ones(2, 8, dtype=torch.long))
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracing warnings about Python control flow on shapes
        return ov.convert_model(module.eval(), example_input=example,
                                input=[("input_ids", [-1, -1], ov.Type.i64), ("attention_mask", [-1, -1], ov.Type.i64)])


Calibration = Callable[[], list[tuple[np.ndarray, np.ndarray]]]
"""Returns the calibration inputs, ``(input_ids, attention_mask)`` int64 arrays, one text each; called only
when the quantized model is not cached yet."""


def int8_fingerprint(module: torch.nn.Module, recipe: str) -> str:
    """What the cached int8 model depends on: the weights, the calibration ``recipe`` (a name for the texts and
    how they are cut), `INT8_RECIPE` and the NNCF / OpenVINO versions."""
    from importlib.metadata import PackageNotFoundError, version

    from workbench.models.device import fingerprint_model

    def installed(package: str) -> str:  # a missing nncf is reported by `int8_problem`, not here
        try:
            return version(package)
        except PackageNotFoundError:
            return "missing"

    parts = [fingerprint_model(module), recipe, INT8_RECIPE, installed("nncf"), installed("openvino")]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def quantized_model(module: torch.nn.Module, calibration: Calibration, folder: Path) -> Path:
    """``folder/model.xml``: ``module`` converted to OpenVINO and quantized to int8 by NNCF, built once.

    ``nncf.quantize`` with ``ModelType.TRANSFORMER`` (NNCF's setting for BERT-like models: SmoothQuant, then the
    matmuls' weights and activations in int8, the operations its transformer patterns exclude left in float;
    symmetric weights, asymmetric activations) and fast bias correction, calibrated on every input
    ``calibration()`` returns (NNCF's default subset is 300 inputs; the embedder gives 300 real texts).
    Written aside and renamed, so a crash leaves no half-written model; a second call only checks the file.
    """
    if (folder / "model.xml").exists():
        return folder / "model.xml"
    problem = int8_problem()
    if problem:
        raise RuntimeError(f"int8 requested but {problem}.")
    import nncf
    import openvino as ov

    samples = calibration()
    dataset = nncf.Dataset(samples, lambda s: {"input_ids": s[0], "attention_mask": s[1]})
    quantized = nncf.quantize(_convert(module), dataset, model_type=nncf.ModelType.TRANSFORMER, subset_size=len(samples))
    write_folder_atomic(folder, lambda tmp: ov.save_model(quantized, str(tmp / "model.xml"), compress_to_fp16=False),
                        marker="model.xml")
    return folder / "model.xml"


class OpenVINOModel:
    """A (input_ids, attention_mask) -> (batch, d) module compiled by OpenVINO at one dtype ("fp32" | "bf16" | "int8").

    Two streams of one thread each (``THROUGHPUT``): on a small model, two batches in flight keep the cores
    busier than one batch on two threads (measured in ``benchmarks/bench_rm.py``). ``int8`` loads (or first
    builds) the NNCF-quantized model in ``int8_folder`` from ``calibration`` (`quantized_model`); its
    unquantized operations run at bf16 where the CPU has it natively, else fp32. It never falls back: a missing
    ``nncf`` or a CPU without int8 is a `RuntimeError` that says which.
    """

    def __init__(self, module: torch.nn.Module, dtype: str, *, threads: int | None = None,
                 calibration: Calibration | None = None, int8_folder: Path | None = None):
        import openvino as ov

        if dtype not in OPENVINO_DTYPES:
            raise ValueError(f"dtype must be one of {list(OPENVINO_DTYPES)}, got {dtype!r}.")
        threads = threads or torch.get_num_threads()
        core = ov.Core()
        if dtype == "int8":
            problem = int8_problem()
            if problem:
                raise RuntimeError(f"int8 requested but {problem}.")
            if calibration is None or int8_folder is None:
                raise ValueError("dtype='int8' needs calibration= (real inputs) and int8_folder= (where the quantized model is kept).")
            graph = core.read_model(str(quantized_model(module, calibration, int8_folder)))
            hint = "bf16" if "BF16" in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES") else "f32"
        else:
            graph, hint = _convert(module), {"fp32": "f32", "bf16": "bf16"}[dtype]
        self.streams = max(1, min(2, threads))
        config = {"INFERENCE_PRECISION_HINT": hint, "INFERENCE_NUM_THREADS": threads,
                  "PERFORMANCE_HINT": "THROUGHPUT", "NUM_STREAMS": self.streams}
        self.compiled = core.compile_model(graph, "CPU", config)
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
