"""Energies and forces of a batch of structures being relaxed, from ONE evaluation of the batched
graph: the fast exact M3GNet path (:class:`~dismai_data.physics.fast_m3gnet.FastM3GNetPES`, eager
or compiled) where it supports the potential, else matgl's own forward."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from dismai_data.physics.relax.fire import Relaxation

logger = logging.getLogger(__name__)


def fast_evaluator(potential, compile: bool = False):
    """The :class:`~dismai_data.physics.fast_m3gnet.FastM3GNetPES` of ``potential`` (cached on it;
    ``compile``: the one evaluated through ``torch.compile``, cached separately), or None
    where the potential is not an M3GNet it supports (then matgl's forward is used)."""
    attr = "_dismai_fast_compiled" if compile else "_dismai_fast"
    fast = getattr(potential, attr, None)
    if fast is None:
        from dismai_data.physics.fast_m3gnet import FastM3GNetPES

        try:
            fast = FastM3GNetPES(potential, compile=compile)
        except NotImplementedError as exc:
            logger.info("relax: matgl forward (fast M3GNet path not applicable: %s)", exc)
            fast = False
        try:
            object.__setattr__(potential, attr, fast)
        except Exception:  # pragma: no cover - exotic module subclasses
            pass
    return fast or None


def fast_mode(fast):
    """Check an engine ``fast`` option: True (the fast exact path, eager), ``"compile"`` (the
    same path through torch.compile) or False (matgl's own forward)."""
    if fast is True or fast is False or fast == "compile":
        return fast
    raise ValueError(f"fast must be True, False or 'compile', got {fast!r}")


def evaluate(potential, batch: Sequence[Relaxation], compile: bool = False) -> tuple[np.ndarray, list[np.ndarray]]:
    """Energies and float32 forces of every structure in ``batch`` from ONE evaluation of
    the batched graph: :class:`~dismai_data.physics.fast_m3gnet.FastM3GNetPES` (the same M3GNet
    function with less work, checked against matgl's calculator in the tests) when it
    supports the potential, else matgl's own forward (:func:`evaluate_matgl`)."""
    import torch

    fast = fast_evaluator(potential, compile=compile)
    if fast is None:
        return evaluate_matgl(potential, batch)
    node_types, srcs, dsts, vecs, graph_of, offsets = [], [], [], [], [], []
    start = 0
    for k, r in enumerate(batch):
        src, dst, vec = r.bonds()
        node_types.append(r.node_type)
        srcs.append(src + start)
        dsts.append(dst + start)
        vecs.append(vec)
        graph_of.append(np.full(r.n, k, dtype=np.int64))
        if getattr(r, "_energy_offset", None) is None:  # element reference energy: fixed per structure
            r._energy_offset = (fast.element_offsets(r.node_type, torch.zeros(r.n, dtype=torch.long), 1)
                                if getattr(potential, "element_refs", None) is not None else torch.zeros(1))
        offsets.append(r._energy_offset.reshape(1))
        start += r.n
    energies, forces = fast.energies_forces(
        torch.cat(node_types), torch.from_numpy(np.concatenate(srcs)), torch.from_numpy(np.concatenate(dsts)),
        torch.from_numpy(np.concatenate(vecs)), torch.from_numpy(np.concatenate(graph_of)), len(batch),
        offsets=torch.cat(offsets))
    return _per_structure(energies, forces, batch)


def _per_structure(energies, forces, batch: Sequence[Relaxation]) -> tuple[np.ndarray, list[np.ndarray]]:
    """Batched model outputs (tensors) as numpy energies and one force array per structure."""
    energies = energies.detach().cpu().numpy().reshape(-1)
    forces = forces.detach().cpu().numpy()
    out, start = [], 0
    for r in batch:
        out.append(forces[start:start + r.n])
        start += r.n
    return energies, out


def evaluate_matgl(potential, batch: Sequence[Relaxation]) -> tuple[np.ndarray, list[np.ndarray]]:
    """Energies (float32 values as Python floats) and float32 forces of every structure in
    ``batch`` from ONE call of matgl's potential on the batched graph."""
    import matgl
    import torch
    from torch_geometric.data import Batch, Data

    device = potential.data_mean.device
    datas, lats = [], []
    for r in batch:
        src, dst, images, frac = r.graph_arrays()
        d = Data(num_nodes=r.n, edge_index=torch.from_numpy(np.stack([src, dst])).to(matgl.int_th))
        d.pbc_offset = torch.from_numpy(images).to(matgl.float_th)
        d.node_type = r.node_type
        d.frac_coords = torch.from_numpy(frac).to(matgl.float_th)
        datas.append(d)
        lats.append(r.cell)
    g = Batch.from_data_list(datas)
    lat = torch.from_numpy(np.stack(lats)).to(matgl.float_th)
    if device.type != "cpu":
        g = g.to(device)
        lat = lat.to(device)
    state_attr = None
    if getattr(potential.model, "include_state", False):
        state_attr = torch.zeros((len(batch), 2), dtype=matgl.float_th, device=device)
    energies, forces = potential(g, lat, state_attr)[:2]
    return _per_structure(energies, forces, batch)
