"""The CPU a benchmark ran on, in one line. The figures of the benchmarks bound by matrix
products depend on it, and the dev machine has not been the same CPU in every session: on one
(an AMD EPYC taken for Zen 5) oneDNN ran the model's products 1.9-2.9x faster than MKL, on an
AMD EPYC family 25 model 17 (Zen 4, AVX-512 on 256-bit units) 1.0-1.5x, on an Intel Xeon
family 6 model 167 (AVX-512, AMX) both at 149-160 GFLOP/s on the 64-wide shapes
(gemm_rates.py)."""

from __future__ import annotations

import os
import platform


def cpu_line() -> str:
    from dismai_data.physics.cpu import cpu_fields

    fields = cpu_fields()
    if not fields:
        return f"CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs"
    flags = set(fields.get("flags", "").split())
    simd = "avx512f" if "avx512f" in flags else ("avx2" if "avx2" in flags else "no avx2")
    return (f"CPU: {fields.get('model name', '?')}, family {fields.get('cpu family', '?')} model "
            f"{fields.get('model', '?')}, {simd}, {os.cpu_count()} CPUs")
