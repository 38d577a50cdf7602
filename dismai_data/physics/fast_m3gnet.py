"""The fast exact M3GNet evaluator: energies and forces of a matgl M3GNet ``Potential``, the
same function with the same weights computed with less work (:class:`FastM3GNetPES`)."""

from __future__ import annotations

from dismai_data.physics.cpu import compiled_products_by_mkl
from dismai_data.physics.fast_m3gnet_layers import LayerProducts
from dismai_data.physics.onednn import onednn_linear_ops, onednn_matmul_usable

__all__ = ["FastM3GNetPES"]

#: With oneDNN products, bonds are padded to a multiple of this (see energies_forces).
_BOND_BUCKET = 256


def _check_supported(potential) -> None:
    """Raise ``NotImplementedError`` naming what :class:`FastM3GNetPES` does not compute in
    ``potential`` (only M3GNet-MP-2021.2.8-PES and M3GNets configured like it)."""
    from matgl.layers._graph_convolution import M3GNetGraphConv
    from matgl.layers._three_body import ThreeBodyInteractions

    model = getattr(potential, "model", None)
    need = ("three_body_interactions", "graph_layers", "basis_expansion", "bond_expansion", "embedding",
            "final_layer")
    if model is None or not all(hasattr(model, a) for a in need):
        raise NotImplementedError("not an M3GNet potential")
    be = model.basis_expansion
    problems = []
    if getattr(model, "include_state", False):
        problems.append("include_state")
    if getattr(model, "is_intensive", False):
        problems.append("intensive readout")
    if be.use_phi or be.use_smooth or be.max_l > 3:
        problems.append(f"three-body basis use_phi={be.use_phi} use_smooth={be.use_smooth} max_l={be.max_l}")
    if getattr(potential, "calc_repuls", False) or getattr(potential, "calc_charge", False) or \
            getattr(potential, "calc_magmom", False):
        problems.append("repulsion/charge/magmom terms")
    for tb in model.three_body_interactions:
        if type(tb) is not ThreeBodyInteractions:
            problems.append(f"three-body block {type(tb).__name__}")
    for gl in model.graph_layers:
        if not isinstance(gl.conv, M3GNetGraphConv) or getattr(gl, "dropout", None) is not None:
            problems.append("graph layer")
    if problems:
        raise NotImplementedError("FastM3GNetPES does not support: " + ", ".join(problems))


def _threebody_terms(be, dtype, device):
    """The non-zero (basis column, monomial) terms of ``Y_l(u_ij . u_ik)`` written over the 10
    monomials of a unit vector: ``(pair_col, pair_mono, pair_coef, fold, y_at_1)`` (see
    :meth:`FastM3GNetPES._atomic`). ``Y_l(x) = alpha_l + beta_l x + gamma_l x^2`` is read off
    matgl's own functions (exact for l <= 2)."""
    import torch

    max_n, max_l = int(be.max_n), int(be.max_l)
    x = torch.tensor([-1.0, 0.0, 1.0, 0.3, -0.7], dtype=torch.float64)
    y = be.shf(x, torch.zeros_like(x)).to(torch.float64)  # (5, max_l)
    vander = torch.stack([torch.ones_like(x), x, x * x], 1)
    coef = torch.linalg.solve(vander[:3], y[:3])  # (3, max_l)
    # The solve leaves ~1e-17 where a coefficient is exactly zero (Y_0 has no x or x^2 term, Y_1
    # no constant or x^2 term), and which of them came out as exactly 0.0 varied with the LAPACK
    # thread count. Zero them, so the same non-zero terms are evaluated on every run.
    coef = torch.where(coef.abs() < 1e-12 * coef.abs().max(), torch.zeros_like(coef), coef)
    if not torch.allclose(vander @ coef, y, atol=1e-9, rtol=0):
        raise NotImplementedError("spherical harmonics are not quadratic in cos(theta)")
    # per basis column c = l * max_n + n (matgl's combine_sbf_shf order for use_phi=False)
    cols = torch.arange(max_l).repeat_interleave(max_n)
    a, b, g = coef[0, cols], coef[1, cols], coef[2, cols]
    # evaluation kernel over the 10 monomials [1, ux, uy, uz, ux2, uy2, uz2, 2uxuy, 2uxuz, 2uyuz]
    kern = torch.stack([a, b, b, b, g, g, g, 2 * g, 2 * g, 2 * g], 1)  # (ncol, 10)
    # keep only the (column, monomial) pairs with a non-zero coefficient
    col, mono = torch.nonzero(kern != 0, as_tuple=True)
    fold = torch.zeros((len(col), kern.shape[0]), dtype=torch.float64)
    fold[torch.arange(len(col)), col] = 1.0  # sums the pairs of each column
    return (col.to(device), mono.to(device), kern[col, mono].to(dtype).to(device), fold.to(dtype).to(device),
            (a + b + g).to(dtype).to(device))


class FastM3GNetPES(LayerProducts):
    """Energies and forces of a matgl M3GNet ``Potential`` -- the same function with the same
    weights (the potential's own modules are called wherever they are not the bottleneck),
    computed with less work. Used by the batched relaxation engine; the tests check it against
    matgl's ``PESCalculator`` on the same structures. Rewrites, all exact in exact arithmetic
    (float32 rounding differs only):

    * **Three-body block without the line graph.** matgl evaluates
      ``sbf(r_ik) Y_l(cos theta_jik) a(v_k) f(r_ij) f(r_ik)`` on every triple of bonds ``i->j``,
      ``i->k`` and sums onto bond ``i->j``. With ``use_phi=False`` and ``max_l <= 3``, ``Y_l`` is
      a polynomial of degree <= 2 in ``cos theta = u_ij . u_ik``, so ``sum_{k != j} B_ik
      Y_l(u_ij . u_ik) = alpha_l M0_i + beta_l u_ij . M1_i + gamma_l u_ij^T M2_i u_ij - B_ij
      Y_l(1)`` with per-atom moments ``M0_i = sum_k B_ik``, ``M1_i = sum_k B_ik u_ik``,
      ``M2_i = sum_k B_ik u_ik u_ik^T`` and ``B_ik = sbf(r_ik) a(v_k) f(r_ik)``: work per bond
      instead of per triple.
    * **Split first layer of the gated MLPs.** ``W [v_i, v_j, e_ij] = (W_a v)_i + (W_b v)_j +
      W_c e_ij``: the node parts are computed once per atom and gathered.
    * **Three-body block on the bonds within its cutoff only** (``threebody_subset``: None =
      where exact, the default). Beyond the three-body cutoff ``f = 0`` exactly, so such a bond
      adds nothing to the moments and its update (a gated MLP without bias) maps its zero input
      to exactly 0; checked once at construction, otherwise the block runs on every bond.
    * **Matrix products through oneDNN** (``onednn``: None = oneDNN where usable, except compiled
      on an Intel CPU: :func:`~dismai_data.physics.cpu.compiled_products_by_mkl`): every linear
      layer on bonds, forward and backward, goes through ``dismai::onednn_linear``
      (:mod:`dismai_data.physics.onednn`); elsewhere ``F.linear``.

    ``compile=True`` evaluates the same function through ``torch.compile`` (float32 rounding
    differs, forces by ~1e-5 eV/Å). Bond vectors come in as float64 and are rounded to float32
    once; forces are ``-dE/dr`` through a per-atom displacement. A potential configured otherwise
    raises ``NotImplementedError`` naming what differs, and callers then use matgl's own forward.
    """

    def __init__(self, potential, compile: bool = False, onednn: bool | None = None,
                 threebody_subset: bool | None = None):
        _check_supported(potential)
        model = potential.model
        be = model.basis_expansion
        self.potential = potential
        self.model = model
        self.max_n, self.max_l = int(be.max_n), int(be.max_l)
        self.threebody_cutoff = float(model.threebody_cutoff)
        param = next(model.parameters())
        self.dtype, self.device = param.dtype, param.device
        (self._pair_col, self._pair_mono, self._pair_coef, self._fold,
         self._y_at_1) = _threebody_terms(be, self.dtype, self.device)
        self._agg_dst = self._aggregation(model)
        units = model.graph_layers[0].conv.edge_update_func.layers[0].in_features
        self._n_node = int(model.embedding.layer_node_embedding.embedding_dim)
        if units != 3 * self._n_node:
            raise NotImplementedError("edge update input is not [v_i, v_j, e_ij]")
        self.onednn = self._choose_onednn(onednn, compile)
        self.compiled = False
        self._tb_subset = self._choose_threebody_subset(threebody_subset)
        self._forward = self._atomic
        if compile:
            self._compile()

    @staticmethod
    def _aggregation(model) -> list[bool]:
        """Per graph layer: True where its node update sums into the destination atom (the
        class :func:`~dismai_data.physics.matgl_fix.fix_potential` installs)."""
        from matgl.layers._graph_convolution import M3GNetGraphConv

        agg_dst = [type(gl.conv).node_update_ is not M3GNetGraphConv.node_update_ for gl in model.graph_layers]
        for gl, dst in zip(model.graph_layers, agg_dst):
            if dst and type(gl.conv).__name__ != "LegacyM3GNetGraphConv":
                raise NotImplementedError(f"unknown node update {type(gl.conv).__name__}")
        return agg_dst

    def _choose_onednn(self, onednn: bool | None, compile: bool) -> bool:
        usable = onednn_matmul_usable(self.device, self.dtype)
        if onednn and not usable:
            raise NotImplementedError("oneDNN float32 matrix products are not usable here")
        if onednn is None:  # the default: see compiled_products_by_mkl
            onednn = usable and not (compile and compiled_products_by_mkl())
        if onednn:
            onednn_linear_ops()  # register the operator now (not inside a traced call)
        return bool(onednn)

    def _choose_threebody_subset(self, threebody_subset: bool | None) -> bool:
        """The three-body update of a bond beyond the three-body cutoff (input exactly 0) is
        exactly 0 when the gated MLP maps 0 to 0 (no bias, SiLU * sigmoid); then the block runs
        on the bonds within that cutoff only (see :meth:`_atomic`)."""
        import torch

        with torch.no_grad():
            zero = torch.zeros((1, self.max_n * self.max_l), dtype=self.dtype, device=self.device)
            exact = all(bool((self._gated(tb.update_network_bond, zero) == 0).all())
                        for tb in self.model.three_body_interactions)
        if threebody_subset and not exact:
            raise NotImplementedError("the three-body update does not map 0 to 0: it runs on every bond")
        return exact if threebody_subset is None else bool(threebody_subset)

    def _compile(self) -> None:
        """Evaluate :meth:`_atomic` through ``torch.compile(dynamic=True)`` (inductor's fused
        C++ kernels on CPU; one compilation per process serves every batch size). The
        compiled graph works on a private copy of the model whose parameters do not require
        gradients: AOTAutograd's backward would otherwise also compute the weight gradients,
        which a force call never needs. The first call compiles (inductor caches on disk);
        where compiling fails (no C++ compiler, an unsupported platform)
        :meth:`energies_forces` says so once in the log and goes on eagerly."""
        import copy

        import torch

        # tensors an earlier forward left on the model (matgl keeps ``model.feature_dict``) are
        # non-leaves of an old autograd graph, which deepcopy refuses: copy them detached
        memo: dict = {}

        def detach_nonleaves(obj, depth=0):
            if isinstance(obj, torch.Tensor):
                if not obj.is_leaf:
                    memo[id(obj)] = obj.detach()
            elif isinstance(obj, dict) and depth < 8:
                for v in obj.values():
                    detach_nonleaves(v, depth + 1)
            elif isinstance(obj, (list, tuple)) and depth < 8:
                for v in obj:
                    detach_nonleaves(v, depth + 1)

        for module in self.model.modules():
            detach_nonleaves(vars(module))
        self.model = copy.deepcopy(self.model, memo).requires_grad_(False)
        self._forward = torch.compile(self._atomic, dynamic=True)
        self.compiled = True

    def energies_forces(self, node_type, src, dst, bond_vec, node_graph, n_graphs, offsets=None):
        """Energies (n_graphs,) and forces (N, 3) of a batch of graphs.

        node_type: (N,) element indices; src, dst: (E,) bonds ``src -> dst`` sorted by src as
        matgl's graphs are (any order works); bond_vec: (E, 3) float64 or float32 vectors from
        ``src`` to the periodic image of ``dst`` (every bond within the cutoff, both
        directions); node_graph: (N,) graph index of each atom; offsets: (n_graphs,) element
        reference energies (``potential.element_refs``), computed here when None."""
        import torch

        dev, dt = self.device, self.dtype
        node_type = node_type.to(dev)
        node_graph = node_graph.to(dev, torch.long)
        n_nodes = int(node_type.shape[0])
        src, dst, vec0, mask = self._padded_bonds(src.to(dev, torch.long), dst.to(dev, torch.long),
                                                  bond_vec.to(dev).to(dt))
        if getattr(self.potential, "element_refs", None) is None:
            offsets = torch.zeros(n_graphs, dtype=dt, device=dev)
        elif offsets is None:
            offsets = self.element_offsets(node_type, node_graph, n_graphs)
        offsets = offsets.to(dev).to(dt).reshape(n_graphs)
        tb = self._threebody_bonds(vec0) if self._tb_subset else None
        disp = torch.zeros((n_nodes, 3), dtype=dt, device=dev, requires_grad=True)
        with torch.enable_grad():
            atomic = self._atomic_or_eager(node_type, src, dst, vec0, disp, mask, tb)
            # per-graph sums outside the compiled graph (inductor miscompiles the scatter into a
            # buffer of one graph)
            energies = torch.zeros(n_graphs, dtype=atomic.dtype, device=dev).index_add(0, node_graph, atomic)
            energies = self.potential.data_std * energies + self.potential.data_mean + offsets
            (grad,) = torch.autograd.grad(energies.sum(), disp)
        return energies.detach(), -grad

    def _padded_bonds(self, src, dst, vec0):
        """``(src, dst, vec0, mask)``: with oneDNN products, the bonds padded to a multiple of
        ``_BOND_BUCKET`` with inert bonds (atom 0 to itself, 2 cutoffs long, messages masked to
        exact zeros; oneDNN builds a kernel for each new row count, and this way the shapes
        repeat) and the mask (1 real, 0 padding); otherwise unchanged and no mask."""
        import torch

        pad = (-int(src.shape[0])) % _BOND_BUCKET if self.onednn else 0
        if pad:
            far = 2.0 * float(self.model.cutoff)
            src = torch.cat((src, src.new_zeros(pad)))
            dst = torch.cat((dst, dst.new_zeros(pad)))
            vec0 = torch.cat((vec0, vec0.new_tensor([far, 0.0, 0.0]).expand(pad, 3)))
        if not self.onednn:
            return src, dst, vec0, None
        # a mask also where no padding was needed: the compiled graph is specialised on whether
        # mask is None, and a step whose bond count happens to be a multiple of the bucket
        # would recompile it
        mask = torch.ones((int(src.shape[0]), 1), dtype=self.dtype, device=self.device)
        if pad:
            mask[-pad:] = 0.0
        return src, dst, vec0, mask

    def _atomic_or_eager(self, *args):
        """:meth:`_atomic` through the compiled graph where compiled; a compilation that fails
        is logged once and evaluation goes on eagerly from then on."""
        try:
            return self._forward(*args)
        except Exception as exc:
            if not self.compiled:
                raise
            import logging

            logging.getLogger(__name__).warning(
                "FastM3GNetPES: torch.compile failed (%s: %s); evaluating eagerly from now on",
                type(exc).__name__, str(exc).splitlines()[0] if str(exc) else "")
            self.compiled = False
            self._forward = self._atomic
            return self._forward(*args)

    def _threebody_bonds(self, vec0):
        """Indices of the bonds within the three-body cutoff (float32 lengths, as :meth:`_atomic`
        computes them at zero displacement; a margin of 1e-4 Å: a bond included beyond the
        cutoff contributes exact zeros), padded with one bond beyond it to a multiple of
        ``_BOND_BUCKET`` where oneDNN runs the products (repeating shapes); all bonds where
        none lies beyond the cutoff (never None: the compiled graph is specialised on that)."""
        import torch

        dist = torch.norm(vec0, dim=1)
        inside = dist <= self.threebody_cutoff + 1e-4
        far = torch.nonzero(~inside).reshape(-1)
        if far.numel() == 0:  # (with oneDNN the bonds are already a multiple of the bucket)
            return torch.arange(int(vec0.shape[0]), device=vec0.device)
        idx = torch.nonzero(inside).reshape(-1)
        pad = (-int(idx.shape[0])) % _BOND_BUCKET if self.onednn else 0
        if pad:
            idx = torch.cat((idx, far[:1].expand(pad)))
        return idx

    def _atomic(self, node_type, src, dst, vec0, disp, mask=None, tb_idx=None):
        """The model's per-atom outputs (N,) as a function of the per-atom displacement
        ``disp`` (what :meth:`energies_forces` sums per graph, scales and differentiates);
        tensors already on the model's device and dtype. ``mask`` (E, 1): 1 for real bonds,
        0 for padding bonds, whose node messages are then exact zeros (their three-body terms
        already are: they lie beyond the three-body cutoff, where ``polynomial_cutoff`` is 0),
        so they change no atom's features, energy or force. ``tb_idx``: the bonds within the
        three-body cutoff (:meth:`_threebody_bonds`; None: all bonds). The three-body block runs
        on those only: beyond the cutoff ``polynomial_cutoff`` is exactly 0 (and flat), so such
        a bond adds nothing to the moments, its update's input is exactly 0 and the update (a
        gated MLP without bias, SiLU(0) * sigmoid(0) = 0) is exactly 0 -- what running the block
        on every bond gives, on about half of them."""
        import torch
        from matgl.utils.cutoff import polynomial_cutoff

        model, dev, dt = self.model, self.device, self.dtype
        n_nodes = node_type.shape[0]
        vec = vec0 + disp.index_select(0, dst) - disp.index_select(0, src)
        dist = torch.norm(vec, dim=1)
        rbf = model.bond_expansion(dist)
        u = vec / dist[:, None]
        # three-body quantities on the bonds within its cutoff (tb_idx) or on all of them
        if tb_idx is None:
            d3, u3, src3, dst3 = dist, u, src, dst
        else:
            d3, u3 = dist.index_select(0, tb_idx), u.index_select(0, tb_idx)
            src3, dst3 = src.index_select(0, tb_idx), dst.index_select(0, tb_idx)
        w3 = polynomial_cutoff(d3, self.threebody_cutoff)
        sbf = model.basis_expansion.sbf(d3) * w3[:, None]  # (E3, ncol): sbf(r) f(r)
        ux, uy, uz = u3[:, 0], u3[:, 1], u3[:, 2]
        mono = torch.stack([torch.ones_like(ux), ux, uy, uz, ux * ux, uy * uy, uz * uz, ux * uy, ux * uz, uy * uz],
                           1)  # (E3, 10)
        mono = mono.index_select(1, self._pair_mono)  # (E3, K) monomial of each pair
        evalk = mono * self._pair_coef  # (E3, K) coefficient x monomial of the receiving bond
        emb = model.embedding
        if getattr(emb, "ntypes_node", None) is not None and getattr(emb, "dim_edge_embedding", None) is not None \
                and hasattr(emb.layer_edge_embedding, "layers"):
            node_feat = emb.layer_node_embedding(node_type)
            edge_feat = self._seq(emb.layer_edge_embedding.layers, rbf)
        else:
            node_feat, edge_feat, _ = emb(node_type, rbf, None)
        for t, (tb, gl) in enumerate(zip(model.three_body_interactions, model.graph_layers)):
            # three-body: moments per atom, evaluated per bond
            b = sbf * tb.update_network_atom(node_feat).index_select(0, dst3)  # (E3, ncol)
            moments = torch.zeros((n_nodes, mono.shape[1]), dtype=dt, device=dev)
            moments = moments.index_add(0, src3, b.index_select(1, self._pair_col) * mono)  # (N, K)
            s = (moments.index_select(0, src3) * evalk) @ self._fold - b * self._y_at_1
            upd = self._gated(tb.update_network_bond, s * w3[:, None])
            edge_feat = edge_feat + upd if tb_idx is None else edge_feat.index_add(0, tb_idx, upd)
            # graph convolution (M3GNetGraphConv.forward, include_state=False)
            conv = gl.conv
            edge_feat = edge_feat + self._gated_split(conv.edge_update_func, node_feat, src, dst,
                                                      edge_feat) * self._seq([conv.edge_weight_func], rbf)
            mess = self._gated_split(conv.node_update_func, node_feat, src, dst,
                                     edge_feat) * self._seq([conv.node_weight_func], rbf)
            if mask is not None:
                mess = mess * mask
            agg = dst if self._agg_dst[t] else src
            node_feat = node_feat + torch.zeros_like(node_feat).index_add(0, agg, mess)
        return model.final_layer(node_feat).view(-1)

    def element_offsets(self, node_type, node_graph, n_graphs):
        """Per-graph element reference energies from the potential's own ``AtomRef``."""
        import torch
        from torch_geometric.data import Data

        g = Data(node_type=node_type.to(self.device), batch=node_graph.to(self.device, torch.long),
                 num_nodes=int(node_type.shape[0]))
        with torch.no_grad():
            out = self.potential.element_refs(g)
        return out.reshape(n_graphs)

