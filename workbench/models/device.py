"""Where and how models run: the device, the dtype it supports, autocast, and a content hash of loaded weights.

Every model module (scoring, embedding, training, the fast head) asks here, so nothing needs the scorer just to
pick a device.
"""

from __future__ import annotations

import contextlib
import hashlib

import torch


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` -> cuda when available, else cpu; asking for cuda without one is a clear error."""
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device='cuda' requested but torch sees no CUDA GPU; use device='auto' or 'cpu'.")
    return torch.device("cuda" if device in ("auto", "cuda") and torch.cuda.is_available() else "cpu")


def bf16_supported(device: torch.device) -> bool:
    """True when bf16 runs natively (CUDA with bf16, or a CPU with AVX512-BF16 / AMX)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    cpu = torch.cpu
    return bool(getattr(cpu, "_is_avx512_bf16_supported", lambda: False)() or getattr(cpu, "_is_amx_tile_supported", lambda: False)())


def resolved_dtype(device: torch.device, dtype: str) -> str:
    """What ``dtype`` ("auto" | "bf16" | "fp32") means on ``device``: "bf16" or "fp32" (for tables and caches)."""
    return "bf16" if dtype == "bf16" or (dtype == "auto" and bf16_supported(device)) else "fp32"


def autocast_for(device: torch.device, dtype: str) -> contextlib.AbstractContextManager:
    """bf16 autocast when asked for (or ``auto`` and native), else a no-op context."""
    if resolved_dtype(device, dtype) == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def fingerprint_model(model: torch.nn.Module, extra: str = "") -> str:
    """Content hash of the weights (all of them below 300M parameters, a sample above)."""
    h = hashlib.sha256(extra.encode())
    params = list(model.state_dict().items())
    big = sum(t.numel() for _, t in params) > 300_000_000
    for name, t in params:
        h.update(name.encode())
        h.update(str(tuple(t.shape)).encode())
        flat = t.detach().reshape(-1)
        if big:
            flat = flat[:: max(1, flat.numel() // 4096)]
        h.update(flat.to("cpu", torch.float32).numpy().tobytes())
    return h.hexdigest()[:16]
