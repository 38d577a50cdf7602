"""The CPU this process runs on, from ``/proc/cpuinfo``, and the choice of matrix-product library
that depends on it (:func:`compiled_products_by_mkl`)."""

from __future__ import annotations

__all__ = ["cpu_fields", "cpu_vendor", "compiled_products_by_mkl"]


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
