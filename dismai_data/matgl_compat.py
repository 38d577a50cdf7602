"""Compatibility fix for DGL-era M3GNet checkpoints (M3GNet-MP-2021.2.8-PES) under matgl 4.x.

The bug
-------
In M3GNet's graph convolution every directed bond ``i -> j`` (``edge_index[0] = i`` the
centre atom, ``edge_index[1] = j`` its neighbour) carries a node message
``m_ij = GatedMLP([v_i, v_j, e_ij]) * W(rbf_ij)``, and the messages are summed into atoms.

* The DGL implementation the published weights were trained with
  (``matgl.layers._graph_convolution.M3GNetGraphConv.node_update_`` in matgl <= 1.x, later
  ``_graph_convolution_dgl.py``) does ``graph.update_all(fn.copy_e("mess", "mess"),
  fn.sum("mess", "ve"))``: DGL sums edge messages into the **destination** atom ``j``.
  matgl's first PyG port did the same (``scatter(messages, dst, ...)``).
* matgl 4.1.2's PyG-only ``M3GNetGraphConv.node_update_`` (the "post-#761 aggregation
  convention" in its docstring) does ``scatter_add(mess, src, ...)``: it sums into the
  **source** atom ``i``. The weights file is loaded unchanged (every key matches), but the
  network it feeds is a different function.

Because ``[v_i, v_j, e_ij]`` is not symmetric in ``i`` and ``j``, this changes every atom's
features as soon as the two ends of a bond differ. In a crystal where all atoms are
equivalent (diamond Si, fcc Cu, bcc Li) ``m_ij`` equals ``m_ji`` for the reverse bond, so the
sums over outgoing and incoming bonds coincide and the bug is invisible; in every compound
the energy is wrong. MgO's E(a) also loses its shape (4.0/4.1/4.21/4.3/4.4 A: +0.44,
-1.49, -2.11, -1.84, -1.77 eV/atom before; -5.778, -5.894, -5.951, -5.953, -5.916 after,
with the mean stress going from -43 GPa through zero to +12 GPa). The rest of matgl 4.1.2's
M3GNet (three-body block and line graph, checked line by line against the DGL code;
embedding, readout, AtomRef, data_std/data_mean scaling) needs no change: with only the
aggregation switched back, MoS reproduces matgl's reference to 1e-6 eV.

Evidence (this repository's weights, matgl 4.1.2, CPU, float32; see
``tests/test_matgl_compat.py``):

==============================================  ===========  ===========  ============
structure                                       matgl 4.1.2  fixed        reference
==============================================  ===========  ===========  ============
CsCl-type MoS, a = 4.0 A (total eV)              -7.4539     -10.82436    -10.824362 (*)
Ac-Ala3-NHMe molecule, 42 atoms (total eV)     -187.288     -250.1683    -250.16803 (*)
rock-salt MgO, a = 4.21 A (eV/atom)              -2.114       -5.9505      about -5.9
rock-salt NaCl, a = 5.64 A (eV/atom)             -1.248       -3.3659      about -3.4
zinc-blende SiC, a = 4.36 A (eV/atom)            -5.617       -7.5237      about -7.5
diamond Si, a = 5.43 A (eV/atom)                 -5.4179      -5.4179      -5.419
==============================================  ===========  ===========  ============

(*) matgl's own tests for the pretrained ``M3GNet-MP-2021.2.8-PES``
(``tests/ext/test_ase.py``, ``test_PESCalculator_and_M3GNetCalculator`` and
``test_PESCalculator_mol``; structures from ``tests/conftest.py``).

The cause is in matgl 4.1.2's code, not in the weights file: the files in
``models/weights/M3GNet-MP-2021.2.8-PES`` reproduce matgl's published reference energies
once the messages are summed into the destination atom again.

The fix
-------
:func:`fix_potential` switches the class of each ``M3GNetGraphConv`` inside the given
potential (only that instance; other models in the process are untouched) to
:class:`LegacyM3GNetGraphConv`, a subclass whose ``node_update_`` sums into the destination
atom like the DGL code. Weights, state-dict keys, devices and everything else stay as they
are; the swapped class is importable from this module, so the potential still
deep-copies (``copy.copy`` views such as ``relax._no_stress``). Calling it twice is harmless.
"""

from __future__ import annotations

from typing import Any

__all__ = ["fix_potential", "is_fixed", "LegacyM3GNetGraphConv"]

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
    # PEP 562: ``dismai_data.matgl_compat.LegacyM3GNetGraphConv`` resolves (and builds the
    # class) on first use by name (copy/pickle of a single fixed module, introspection),
    # while importing this module does not import matgl/torch.
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
