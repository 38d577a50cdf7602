"""The fix that makes DGL-era M3GNet checkpoints (M3GNet-MP-2021.2.8-PES) compute under matgl 4.x
the function they were trained as.

The bug: in M3GNet's graph convolution every directed bond ``i -> j`` carries a node message
``m_ij = GatedMLP([v_i, v_j, e_ij]) * W(rbf_ij)``. The DGL implementation the published weights
were trained with (``update_all(copy_e, sum)``, and matgl's first PyG port) sums the messages
into the **destination** atom ``j``; matgl 4.1.2's ``M3GNetGraphConv.node_update_`` sums them
into the **source** atom ``i``. The weights load unchanged, but feed another function: since
``[v_i, v_j, e_ij]`` is not symmetric, every compound's energy is wrong, while crystals whose
atoms are all equivalent (diamond Si, fcc Cu) are not affected. The rest of matgl 4.1.2's M3GNet
needs no change: with the aggregation switched back the packaged weights reproduce matgl's
published reference energies (``tests/test_matgl_compat.py``).

The fix: :func:`fix_potential` switches the class of each ``M3GNetGraphConv`` of one potential
(other models in the process are untouched) to ``LegacyM3GNetGraphConv``, a subclass whose
``node_update_`` sums into the destination atom. Weights, state-dict keys and devices stay; the
class is importable from this module by name (built on first use, so importing this module does
not import matgl), so the potential still deep-copies and pickles. Calling it twice is harmless.
"""

from __future__ import annotations

from typing import Any

# LegacyM3GNetGraphConv is served by __getattr__ (built on first use), hence not listed here
__all__ = ["fix_potential", "is_fixed"]

_LEGACY_CLASS = None


def _legacy_class():
    """Build (once) the subclass of matgl's ``M3GNetGraphConv`` with DGL aggregation."""
    global _LEGACY_CLASS
    if _LEGACY_CLASS is not None:
        return _LEGACY_CLASS
    import torch
    from matgl.layers._graph_convolution import M3GNetGraphConv
    from matgl.utils.maths import scatter_add

    class LegacyM3GNetGraphConv(M3GNetGraphConv):
        """``M3GNetGraphConv`` whose node update sums bond messages into the destination
        (neighbour) atom, as DGL's ``update_all(copy_e, sum)`` did when the published
        M3GNet weights were trained. Only ``node_update_`` differs from matgl 4.1.2."""

        def node_update_(self, edge_index, edge_feat, node_feat, rbf, u_per_edge, num_nodes):
            src, dst = edge_index[0], edge_index[1]
            parts = [node_feat[src], node_feat[dst], edge_feat]
            if self.include_state:
                assert u_per_edge is not None
                parts.append(u_per_edge)
            mess = self.node_update_func(torch.hstack(parts)) * self.node_weight_func(rbf)
            return scatter_add(mess, dst, dim_size=num_nodes, dim=0)

    LegacyM3GNetGraphConv.__module__ = __name__
    LegacyM3GNetGraphConv.__qualname__ = "LegacyM3GNetGraphConv"
    _LEGACY_CLASS = LegacyM3GNetGraphConv
    return _LEGACY_CLASS


def __getattr__(name: str) -> Any:
    # PEP 562: ``matgl_fix.LegacyM3GNetGraphConv`` resolves (and builds the class) on first use by
    # name (copy/pickle of a fixed module, introspection), while importing this module does not
    # import matgl/torch.
    if name == "LegacyM3GNetGraphConv":
        return _legacy_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _model_of(potential):
    return getattr(potential, "model", potential)


def is_fixed(potential) -> bool:
    """True when every ``M3GNetGraphConv`` of ``potential`` (a matgl ``Potential`` or a bare
    model) already aggregates into the destination atom (and there is at least one)."""
    from matgl.layers._graph_convolution import M3GNetGraphConv

    legacy = _legacy_class()
    convs = [m for m in _model_of(potential).modules() if isinstance(m, M3GNetGraphConv)]
    return bool(convs) and all(isinstance(m, legacy) for m in convs)


def fix_potential(potential):
    """Make a DGL-era M3GNet potential loaded with matgl 4.x compute what it was trained as.

    ``potential``: what ``matgl.load_model`` returned for an M3GNet checkpoint trained with the
    DGL implementation (all of matgl's M3GNet releases up to the DGL backend, in particular
    ``M3GNet-MP-2021.2.8-PES``), or its ``.model``. Changes it in place and returns it.
    Idempotent; a model without M3GNet graph convolutions (TensorNet, CHGNet, ...) is returned
    unchanged. Do not apply it to an M3GNet trained with matgl 4.x's own PyG code, which
    learned the source-atom aggregation.
    """
    from matgl.layers._graph_convolution import M3GNetGraphConv

    legacy = _legacy_class()
    for module in _model_of(potential).modules():
        if type(module) is M3GNetGraphConv:
            module.__class__ = legacy
    return potential
