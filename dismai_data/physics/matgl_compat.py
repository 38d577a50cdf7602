"""Former home of the matgl fix and the fast M3GNet evaluator, kept for its importers: the code
is in :mod:`.matgl_fix` (:func:`fix_potential`), :mod:`.fast_m3gnet` (:class:`FastM3GNetPES`),
:mod:`.onednn` (the oneDNN products) and :mod:`.cpu` (the CPU vendor)."""

from __future__ import annotations

from typing import Any

from dismai_data.physics import matgl_fix
from dismai_data.physics.cpu import compiled_products_by_mkl, cpu_fields, cpu_vendor
from dismai_data.physics.fast_m3gnet import FastM3GNetPES
from dismai_data.physics.matgl_fix import fix_potential, is_fixed
from dismai_data.physics.onednn import onednn_matmul_usable

__all__ = ["fix_potential", "is_fixed", "FastM3GNetPES", "onednn_matmul_usable", "compiled_products_by_mkl",
           "cpu_fields", "cpu_vendor"]


def __getattr__(name: str) -> Any:
    if name == "LegacyM3GNetGraphConv":  # built on first use: see matgl_fix
        return matgl_fix.LegacyM3GNetGraphConv
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
