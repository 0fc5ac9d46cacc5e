"""Where a model runs and in what number format: the device picker and bf16 autocast."""
from __future__ import annotations

import contextlib

import torch

PRECISIONS = ("auto", "bf16", "fp32")


def pick_device(name: str) -> torch.device:
    """``auto`` is the GPU when PyTorch sees one, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for, but PyTorch sees no CUDA GPU")
    return torch.device(name)


def bf16_is_fast(device: torch.device) -> bool:
    """bfloat16 has hardware support here: a GPU that says so, or a CPU with AVX512-BF16 or AMX
    (elsewhere PyTorch emulates it on the CPU, slower than float32)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        cpu = torch.backends.cpu
        capability = cpu.get_cpu_capability() if hasattr(cpu, "get_cpu_capability") else ""
        checks = [getattr(torch.cpu, n, None) for n in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
        return any(check() for check in checks if check is not None) and capability != "DEFAULT"
    return False


def resolve_precision(name: str, device: torch.device) -> str:
    """``bf16`` or ``fp32``; ``auto`` takes bf16 where the hardware runs it natively."""
    if name not in PRECISIONS:
        raise ValueError(f"unknown precision {name!r}; choose {', '.join(PRECISIONS)}")
    if name == "auto":
        return "bf16" if bf16_is_fast(device) else "fp32"
    return name


def autocast(device: torch.device, precision: str):
    """Mixed precision for a forward pass: bf16 autocast, or nothing for fp32."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
