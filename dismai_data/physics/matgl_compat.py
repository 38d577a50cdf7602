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

__all__ = ["fix_potential", "is_fixed", "LegacyM3GNetGraphConv", "FastM3GNetPES", "onednn_matmul_usable",
           "compiled_products_by_mkl", "cpu_fields", "cpu_vendor"]

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
    # PEP 562: ``dismai_data.physics.matgl_compat.LegacyM3GNetGraphConv`` resolves (and builds the
    # class) on first use by name (copy/pickle of a single fixed module, introspection),
    # while importing this module does not import matgl/torch.
    if name == "LegacyM3GNetGraphConv":
        return _legacy_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


_ONEDNN_LINEAR = None
_ONEDNN_OK = None
#: With oneDNN products, bonds are padded to a multiple of this (see energies_forces).
_BOND_BUCKET = 256


def _onednn_product(x, w, b):
    """``x W^T + b`` by oneDNN (``w``: (out, in); contiguous copies where needed)."""
    import torch

    return torch.ops.mkldnn._linear_pointwise(x.contiguous(), w.contiguous(), b, "none", [], "")


def _onednn_linear_class():
    """Register (once) the operator ``dismai::onednn_linear(x, w, b) = x W^T + b`` through
    oneDNN, with its input gradient ``g W`` (the weights are constants: no weight gradients),
    and return ``(operator, eager_function)``, two callables ``(x, w, b) -> y`` of the same
    product. A ``torch.library`` custom operator, so that
    ``torch.compile`` keeps it as one opaque call (inductor's own lowering of
    ``mkldnn._linear_pointwise`` expects prepacked constant weights) and fuses around it."""
    global _ONEDNN_LINEAR
    if _ONEDNN_LINEAR is not None:
        return _ONEDNN_LINEAR
    import torch

    # explicit schema: this module's annotations are strings (``from __future__ import annotations``)
    @torch.library.custom_op("dismai::onednn_linear", mutates_args=(),
                             schema="(Tensor x, Tensor w, Tensor? b) -> Tensor")
    def onednn_linear(x, w, b):
        return _onednn_product(x, w, b)

    @onednn_linear.register_fake
    def _(x, w, b):
        return x.new_empty((x.shape[0], w.shape[0]))

    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(inputs[1])

    def backward(ctx, grad):
        (w,) = ctx.saved_tensors
        return onednn_linear(grad, w.t().contiguous(), None), None, None

    onednn_linear.register_autograd(backward, setup_context=setup_context)

    class OneDNNLinear(torch.autograd.Function):
        """The same product and input gradient for eager evaluation: an ``autograd.Function``
        that calls oneDNN directly, without the custom operator's Python dispatch (about 80
        microseconds a call, ~120 calls per force call). Not traceable by inductor, which
        lowers ``mkldnn._linear_pointwise`` itself: compiled code uses the operator."""

        @staticmethod
        def forward(ctx, x, w, b):
            ctx.save_for_backward(w)
            return _onednn_product(x, w, b)

        @staticmethod
        def backward(ctx, grad):
            (w,) = ctx.saved_tensors
            return _onednn_product(grad, w.t(), None), None, None

    _ONEDNN_LINEAR = (onednn_linear, OneDNNLinear.apply)
    return _ONEDNN_LINEAR


def onednn_matmul_usable(device=None, dtype=None) -> bool:
    """True where ``torch.ops.mkldnn._linear_pointwise`` runs float32 matrix products on the
    CPU here and agrees with ``torch.nn.functional.linear`` (checked once on a small
    product)."""
    import torch

    if (device is not None and torch.device(device).type != "cpu") or \
            (dtype is not None and dtype != torch.float32):
        return False
    global _ONEDNN_OK
    if _ONEDNN_OK is None:
        try:
            if not torch.backends.mkldnn.is_available():
                raise RuntimeError("oneDNN is not available in this torch build")
            gen = torch.Generator().manual_seed(0)
            x = torch.randn(37, 64, generator=gen)
            w = torch.randn(48, 64, generator=gen)
            b = torch.randn(48, generator=gen)
            y = _onednn_product(x, w, b)
            _ONEDNN_OK = bool(torch.allclose(y, torch.nn.functional.linear(x, w, b), rtol=1e-5, atol=1e-4))
        except Exception:  # no oneDNN, an unsupported CPU: plain torch products
            _ONEDNN_OK = False
    return _ONEDNN_OK


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
    """True where a compiled :class:`FastM3GNetPES` runs its matrix products through torch's own
    ``mm``/``addmm`` (MKL's sgemm in the PyPI CPU build) by default instead of oneDNN: an Intel
    CPU and a torch with MKL. MKL is Intel's library and takes its fast kernels there: on the
    Intel dev CPU (family 6 model 167) MKL and oneDNN ran the model's products at the same
    149-160 GFLOP/s (``benchmarks/gemm_rates.py``), and inductor then calls MKL directly,
    without the custom operator around oneDNN (one opaque call per product), the padding of
    the bonds to oneDNN's bucket and the contiguous copies inductor makes for the operator:
    0.0990 against 0.1160 s of CPU per compiled force call on one interface (minimum of 25;
    medians 0.1027 and 0.1197; ``benchmarks/fast_pes_call.py --n 1 --repeats 25 --compile``),
    the same energy and forces. On AMD CPUs MKL ran the same products 1.0-2.9x slower than
    oneDNN, so oneDNN stays the default there (and in eager evaluation everywhere, where the
    two were equal on the Intel CPU). The choice depends on the vendor only, so it is the
    same on every run of a machine."""
    import torch

    return torch.backends.mkl.is_available() and cpu_vendor() == "GenuineIntel"


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


# --------------------------------------------------------------------------- fast exact evaluation


class FastM3GNetPES:
    """Energies and forces of a matgl M3GNet ``Potential`` -- the same function with the same
    weights (the potential's own modules are called wherever they are not the bottleneck),
    computed with less work. Used by the batched relaxation engine; ``tests/test_relax.py``
    checks it against matgl's ``PESCalculator`` on the same structures.

    Three rewrites, all exact in exact arithmetic (float32 rounding differs only):

    * **Three-body block without the line graph.** matgl builds every triple ``(j, i, k)`` of
      bonds ``i->j``, ``i->k`` within the three-body cutoff (about 680 000 triples for eight
      264-atom interfaces) and evaluates ``sbf(r_ik) Y_l(cos theta_jik) a(v_k) f(r_ij) f(r_ik)``
      on each, then sums onto bond ``i->j``. With ``use_phi=False`` and ``max_l <= 3``,
      ``Y_l`` is a polynomial of degree <= 2 in ``cos theta = u_ij . u_ik`` (unit vectors), so
      ``sum_{k != j} B_ik Y_l(u_ij . u_ik) = alpha_l M0_i + beta_l u_ij . M1_i
      + gamma_l u_ij^T M2_i u_ij - B_ij Y_l(1)`` with per-atom moments
      ``M0_i = sum_k B_ik``, ``M1_i = sum_k B_ik u_ik``, ``M2_i = sum_k B_ik u_ik u_ik^T``
      and ``B_ik = sbf(r_ik) a(v_k) f(r_ik)``. Bonds beyond the three-body cutoff have
      ``f = 0`` exactly (matgl's ``polynomial_cutoff``), which is what the line-graph pruning
      does. Work per bond instead of per triple; ``alpha, beta, gamma`` are read off matgl's
      own spherical-harmonics functions.
    * **Split first layer of the gated MLPs.** The edge and node updates apply
      ``Linear(192 -> 64)`` to ``[v_i, v_j, e_ij]`` on every bond; ``W [v_i, v_j, e_ij] =
      (W_a v)_i + (W_b v)_j + W_c e_ij``, so the node parts are computed once per atom and
      gathered (about 40 % fewer multiply-adds per bond, no concatenated copy).

    * **Three-body block on the bonds within its cutoff only** (``threebody_subset``: None =
      where exact, the default). Beyond the three-body cutoff (4 Å, the bond cutoff is 5 Å)
      ``f = 0`` exactly, so a bond there adds nothing to the moments and the input of its
      bond update is exactly 0, which the update (a gated MLP without bias, SiLU * sigmoid)
      maps to exactly 0; the block (basis, moments, update) then runs on about half the bonds
      and its updates are added to theirs. Checked once at construction (the update of a zero
      input is compared with 0); otherwise the block runs on every bond.
    * **Matrix products through oneDNN** (``onednn``: None = the default, oneDNN where usable,
      except compiled on an Intel CPU: :func:`compiled_products_by_mkl`). The PyPI CPU build
      of torch sends float32 ``F.linear`` to MKL's sgemm. On one of this project's AMD EPYC dev machines (taken for Zen 5) MKL ran the model's shapes (bonds x
      64 -> 64, 9 -> 64) at 54-81 GFLOP/s on one core and oneDNN's kernels at 146-210 GFLOP/s,
      1.9-2.9x faster; on another (family 25 model 17, Zen 4) both ran at 45-86 GFLOP/s, oneDNN
      1.0-1.5x faster (``benchmarks/gemm_rates.py``, which prints the CPU). Every linear layer on bonds, forward and
      backward, goes through the custom operator ``dismai::onednn_linear`` (``x W^T + b``
      and the input gradient ``g W``; no weight gradients). Same products, another summation
      order: float32 rounding differs only. ``onednn_matmul_usable`` checks it once on a small
      product; elsewhere (another device, dtype, a torch without oneDNN) ``F.linear`` is used.

    ``compile=True`` evaluates the same function through ``torch.compile`` (inductor's fused
    C++ kernels around the matrix products; float32 rounding differs, forces by ~1e-5 eV/Å).
    Per force call on one 264-atom interface (``benchmarks/fast_pes_call.py --compile``) it
    took about 1.15-1.2x less CPU than the eager path around oneDNN products on the AMD dev
    CPUs, and 1.54x less (0.0990 against 0.1527 s) on the Intel one, where its products are
    torch's own mm (MKL), which inductor calls directly.

    Bond vectors come in as float64 (exact periodic images from the caller) and are rounded
    to float32 once; forces are ``-dE/dr`` through a per-atom displacement. Only the
    configuration of M3GNet-MP-2021.2.8-PES (and other M3GNets like it) is supported:
    ``NotImplementedError`` names what differs, and callers then use matgl's own forward.
    """

    def __init__(self, potential, compile: bool = False, onednn: bool | None = None,
                 threebody_subset: bool | None = None):
        import torch
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
        self.potential = potential
        self.model = model
        self.max_n, self.max_l = int(be.max_n), int(be.max_l)
        self.threebody_cutoff = float(model.threebody_cutoff)
        param = next(model.parameters())
        self.dtype, self.device = param.dtype, param.device
        # Y_l(x) = alpha_l + beta_l x + gamma_l x^2 from matgl's own functions (exact for l <= 2)
        x = torch.tensor([-1.0, 0.0, 1.0, 0.3, -0.7], dtype=torch.float64)
        y = be.shf(x, torch.zeros_like(x)).to(torch.float64)  # (5, max_l)
        vander = torch.stack([torch.ones_like(x), x, x * x], 1)
        coef = torch.linalg.solve(vander[:3], y[:3])  # (3, max_l)
        # The solve leaves ~1e-17 where a coefficient is exactly zero (Y_0 has no x or x^2 term,
        # Y_1 no constant or x^2 term), and which of them come out as exactly 0.0 varied with the
        # LAPACK thread count: 33 to 90 (column, monomial) pairs were kept below. Zero them, so
        # only the 33 non-zero terms are evaluated, the same ones on every run.
        coef = torch.where(coef.abs() < 1e-12 * coef.abs().max(), torch.zeros_like(coef), coef)
        if not torch.allclose(vander @ coef, y, atol=1e-9, rtol=0):
            raise NotImplementedError("spherical harmonics are not quadratic in cos(theta)")
        # per basis column c = l * max_n + n (matgl's combine_sbf_shf order for use_phi=False)
        cols = torch.arange(self.max_l).repeat_interleave(self.max_n)
        a, b, g = coef[0, cols], coef[1, cols], coef[2, cols]
        # evaluation kernel over the 10 monomials [1, ux, uy, uz, ux2, uy2, uz2, 2uxuy, 2uxuz, 2uyuz]
        kern = torch.stack([a, b, b, b, g, g, g, 2 * g, 2 * g, 2 * g], 1)  # (ncol, 10)
        # keep only the (column, monomial) pairs with a non-zero coefficient (33 of 90 here)
        col, mono = torch.nonzero(kern != 0, as_tuple=True)
        self._pair_col = col.to(self.device)
        self._pair_mono = mono.to(self.device)
        self._pair_coef = kern[col, mono].to(self.dtype).to(self.device)
        fold = torch.zeros((len(col), kern.shape[0]), dtype=torch.float64)
        fold[torch.arange(len(col)), col] = 1.0  # sums the pairs of each column
        self._fold = fold.to(self.dtype).to(self.device)
        self._y_at_1 = (a + b + g).to(self.dtype).to(self.device)
        self._agg_dst = [type(gl.conv).node_update_ is not M3GNetGraphConv.node_update_ for gl in model.graph_layers]
        for gl, dst in zip(model.graph_layers, self._agg_dst):
            if dst and type(gl.conv).__name__ != "LegacyM3GNetGraphConv":
                raise NotImplementedError(f"unknown node update {type(gl.conv).__name__}")
        units = model.graph_layers[0].conv.edge_update_func.layers[0].in_features
        self._n_node = int(model.embedding.layer_node_embedding.embedding_dim)
        if units != 3 * self._n_node:
            raise NotImplementedError("edge update input is not [v_i, v_j, e_ij]")
        usable = onednn_matmul_usable(self.device, self.dtype)
        if onednn and not usable:
            raise NotImplementedError("oneDNN float32 matrix products are not usable here")
        if onednn is None:  # the default: see compiled_products_by_mkl
            onednn = usable and not (compile and compiled_products_by_mkl())
        self.onednn = bool(onednn)
        if self.onednn:
            _onednn_linear_class()  # register the operator now (not inside a traced call)
        self.compiled = False
        # the three-body update of a bond beyond the three-body cutoff (input exactly 0) is
        # exactly 0 when the gated MLP maps 0 to 0 (no bias, SiLU * sigmoid); then the block
        # runs on the bonds within that cutoff only (see _atomic)
        with torch.no_grad():
            zero = torch.zeros((1, self.max_n * self.max_l), dtype=self.dtype, device=self.device)
            exact = all(bool((self._gated(tb.update_network_bond, zero) == 0).all())
                        for tb in model.three_body_interactions)
        if threebody_subset and not exact:
            raise NotImplementedError("the three-body update does not map 0 to 0: it runs on every bond")
        self._tb_subset = exact if threebody_subset is None else bool(threebody_subset)
        self._forward = self._atomic
        if compile:
            self._compile()

    def _compile(self) -> None:
        """Evaluate :meth:`_atomic` through ``torch.compile(dynamic=True)`` (inductor's fused
        C++ kernels on CPU; one compilation per process serves every batch size). The
        compiled graph works on a private copy of the model whose parameters do not require
        gradients: AOTAutograd's backward would otherwise also compute the weight gradients,
        which a force call never needs. The first call compiles (tens of seconds; inductor
        caches on disk); where compiling fails (no C++ compiler, an unsupported platform)
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

    # ------------------------------------------------------------------ pieces
    def _mm(self, x, w, b=None):
        """``x W^T + b`` (``w``: (out, in)), through oneDNN where :attr:`onednn`."""
        import torch.nn.functional as F

        if not self.onednn:
            return F.linear(x, w, b)
        operator, function = _onednn_linear_class()  # module-level: the object stays deep-copyable
        return (operator if self.compiled else function)(x, w, b)

    def _seq(self, layers, x):
        """Apply a matgl ``Sequential``/``MLP`` layer list with :meth:`_mm` for the linears."""
        import torch

        for mod in layers:
            x = self._mm(x, mod.weight, mod.bias) if isinstance(mod, torch.nn.Linear) else mod(x)
        return x

    def _gated(self, mlp, x):
        """matgl's ``GatedMLP.forward`` with :meth:`_mm` for the linears."""
        return self._seq(mlp.layers, x) * self._seq(mlp.gates, x)

    def _gated_split(self, mlp, node_feat, src, dst, edge_feat):
        """``mlp(hstack([v[src], v[dst], e]))`` for matgl's GatedMLP without the concatenation:
        first layer ``W_a v_src + W_b v_dst + W_c e + bias`` with the node parts per atom."""
        import torch
        import torch.nn.functional as F

        n = self._n_node
        out = []
        for seq in (mlp.layers, mlp.gates):
            lin = seq[0]
            w = lin.weight
            h = w.shape[0]
            pq = self._mm(node_feat, torch.cat((w[:, :n], w[:, n:2 * n]), 0))  # (N, 2h): W_a v, W_b v
            pa = pq[:, :h] if lin.bias is None else pq[:, :h] + lin.bias
            x = pa.index_select(0, src) + pq[:, h:].index_select(0, dst)
            if self.onednn:
                x = x + self._mm(edge_feat, w[:, 2 * n:])
                x = self._seq(list(seq)[1:], x)
            elif self.compiled:
                # matrix product and additions apart: inductor then adds them inside its fused
                # element-wise kernels instead of copying the addend into the product's output
                # first (aten.addmm on CPU), one pass over (E, 64) less per layer
                x = x + edge_feat @ w[:, 2 * n:].t()
                for mod in list(seq)[1:]:
                    if isinstance(mod, torch.nn.Linear):
                        x = x @ mod.weight.t()
                        x = x if mod.bias is None else x + mod.bias
                    else:
                        x = mod(x)
            else:
                x = torch.addmm(x, edge_feat, w[:, 2 * n:].t())
                for mod in list(seq)[1:]:
                    x = mod(x)
            out.append(x)
        return out[0] * out[1]

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
        src = src.to(dev, torch.long)
        dst = dst.to(dev, torch.long)
        node_graph = node_graph.to(dev, torch.long)
        n_nodes = int(node_type.shape[0])
        vec0 = bond_vec.to(dev).to(dt)
        mask = None
        pad = (-int(src.shape[0])) % _BOND_BUCKET if self.onednn else 0
        if pad:
            # pad the bonds to a multiple of _BOND_BUCKET with inert bonds (atom 0 to itself,
            # 2 cutoffs long, messages masked to exact zeros): oneDNN builds a kernel for each
            # new row count (about 1.3 ms per product shape, ~13 ms per force call where the
            # bond count changes at every relaxation step); this way the shapes repeat
            far = 2.0 * float(self.model.cutoff)
            src = torch.cat((src, src.new_zeros(pad)))
            dst = torch.cat((dst, dst.new_zeros(pad)))
            vec0 = torch.cat((vec0, vec0.new_tensor([far, 0.0, 0.0]).expand(pad, 3)))
        if self.onednn:
            # a mask also where no padding was needed: the compiled graph is specialised on
            # whether mask is None, and a step whose bond count happens to be a multiple of the
            # bucket (one in 256) recompiled it (several CPU-seconds inside a relaxation)
            mask = torch.ones((int(src.shape[0]), 1), dtype=dt, device=dev)
            if pad:
                mask[-pad:] = 0.0
        if getattr(self.potential, "element_refs", None) is None:
            offsets = torch.zeros(n_graphs, dtype=dt, device=dev)
        elif offsets is None:
            offsets = self.element_offsets(node_type, node_graph, n_graphs)
        offsets = offsets.to(dev).to(dt).reshape(n_graphs)
        tb = self._threebody_bonds(vec0) if self._tb_subset else None
        disp = torch.zeros((n_nodes, 3), dtype=dt, device=dev, requires_grad=True)
        with torch.enable_grad():
            try:
                atomic = self._forward(node_type, src, dst, vec0, disp, mask, tb)
            except Exception as exc:
                if not self.compiled:
                    raise
                import logging

                logging.getLogger(__name__).warning(
                    "FastM3GNetPES: torch.compile failed (%s: %s); evaluating eagerly from now on",
                    type(exc).__name__, str(exc).splitlines()[0] if str(exc) else "")
                self.compiled = False
                self._forward = self._atomic
                atomic = self._forward(node_type, src, dst, vec0, disp, mask, tb)
            # per-graph sums outside the compiled graph (inductor miscompiles the scatter into a
            # buffer of one graph)
            energies = torch.zeros(n_graphs, dtype=atomic.dtype, device=dev).index_add(0, node_graph, atomic)
            energies = self.potential.data_std * energies + self.potential.data_mean + offsets
            (grad,) = torch.autograd.grad(energies.sum(), disp)
        return energies.detach(), -grad

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

