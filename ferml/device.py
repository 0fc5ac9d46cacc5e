"""Where a model runs, in what number format, and how its memory is reused: the device
picker, bf16 autocast and glibc's allocator settings for forward passes."""
from __future__ import annotations

import contextlib
import ctypes
import functools

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


# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


@functools.cache
def _glibc():
    try:
        libc = ctypes.CDLL("libc.so.6")
        return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None
    except OSError:  # not glibc (macOS, musl, Windows): its allocator is left as it is
        return None


@functools.cache
def keep_freed_memory() -> bool:
    """Let freed blocks of up to 32 MiB (glibc's largest setting) be reused rather than handed
    back to the kernel. A forward pass allocates and frees every activation of every batch;
    by default glibc maps the large ones afresh each time, and the page faults cost a
    DenseNet at 100 px about a fifth of its inference speed here. Once per process, for the
    process; ``release_freed_memory`` hands the kept memory back after a run."""
    libc = _glibc()
    return bool(libc and libc.mallopt(_M_MMAP_THRESHOLD, 32 << 20) and libc.mallopt(_M_TRIM_THRESHOLD, 1 << 30))


def release_freed_memory() -> None:
    """Hand the memory that ``keep_freed_memory`` kept for reuse back to the system (after a
    run of predictions, so that a long-lived server does not hold it)."""
    libc = _glibc()
    if libc and keep_freed_memory.cache_info().currsize:
        libc.malloc_trim(0)
