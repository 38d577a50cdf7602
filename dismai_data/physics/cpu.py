"""The CPU this process runs on, from ``/proc/cpuinfo``, and the choice of matrix-product library
that depends on it (:func:`compiled_products_by_mkl`)."""

from __future__ import annotations

__all__ = ["cpu_fields", "cpu_vendor", "compiled_products_by_mkl", "hardware", "cpu_of"]


def cpu_fields() -> dict[str, str]:
    """The fields of the first processor in ``/proc/cpuinfo`` (``vendor_id``, ``model name``,
    ``cpu family``, ``model``, ``flags``, ...), or ``{}`` where it cannot be read."""
    fields: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if not line.strip():
                    break  # the end of the first processor's block
                key, _, value = line.partition(":")
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    return fields


def hardware() -> str:
    """This machine in one line, as scores record where they were computed:
    ``"<model name> (family F model M), N cores, no GPU"``. Family and model tell apart CPUs
    that share a model name (``AMD EPYC`` is Zen 4 on one machine, Zen 5 on another)."""
    import os
    import platform

    f = cpu_fields()
    cpu = f.get("model name") or platform.processor() or platform.machine()
    if "cpu family" in f and "model" in f:
        cpu = f"{cpu} (family {f['cpu family']} model {f['model']})"
    return f"{cpu}, {os.cpu_count()} cores, no GPU"


def cpu_of(hardware_line: str) -> str:
    """The CPU part of a :func:`hardware` line (what precedes ``, N cores``)."""
    import re

    m = re.match(r"(.*?), \d+ cores\b", hardware_line or "")
    return (m.group(1) if m else hardware_line or "").strip()


def cpu_vendor() -> str:
    """The CPU vendor string of this machine (``GenuineIntel``, ``AuthenticAMD``, ...), or
    ``""`` where it cannot be read."""
    return cpu_fields().get("vendor_id", "")


def compiled_products_by_mkl() -> bool:
    """True where a compiled :class:`~dismai_data.physics.fast_m3gnet.FastM3GNetPES` runs its matrix
    products through torch's own ``mm``/``addmm`` (MKL's sgemm in the PyPI CPU build) instead of
    oneDNN: an Intel CPU and a torch with MKL. There MKL is as fast as oneDNN and inductor calls
    it directly, without the custom operator, the bond padding and the copies oneDNN needs; on
    AMD CPUs MKL was slower, so oneDNN stays the default (and in eager evaluation everywhere).
    Depends on the vendor only: the same on every run of a machine."""
    import torch

    return torch.backends.mkl.is_available() and cpu_vendor() == "GenuineIntel"
