"""matgl's linear layers and gated MLPs evaluated with a chosen matrix product (oneDNN's
operator or torch's own), the building blocks of
:class:`~dismai_data.physics.fast_m3gnet.FastM3GNetPES`."""

from __future__ import annotations

from dismai_data.physics.onednn import onednn_linear_ops

__all__ = ["LayerProducts"]


class LayerProducts:
    """Linear layers, ``Sequential`` lists and gated MLPs of a matgl model with the matrix
    products of :meth:`_mm`. The subclass sets :attr:`onednn` (products through oneDNN),
    :attr:`compiled` (called inside ``torch.compile``) and :attr:`_n_node` (node features)."""

    onednn: bool = False
    compiled: bool = False
    _n_node: int = 0

    def _mm(self, x, w, b=None):
        """``x W^T + b`` (``w``: (out, in)), through oneDNN where :attr:`onednn`."""
        import torch.nn.functional as F

        if not self.onednn:
            return F.linear(x, w, b)
        operator, function = onednn_linear_ops()  # module-level: the object stays deep-copyable
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

        n = self._n_node
        out = []
        for seq in (mlp.layers, mlp.gates):
            lin = seq[0]
            w = lin.weight
            h = w.shape[0]
            pq = self._mm(node_feat, torch.cat((w[:, :n], w[:, n:2 * n]), 0))  # (N, 2h): W_a v, W_b v
            pa = pq[:, :h] if lin.bias is None else pq[:, :h] + lin.bias
            x = pa.index_select(0, src) + pq[:, h:].index_select(0, dst)
            out.append(self._rest_of_layers(seq, x, edge_feat, w[:, 2 * n:]))
        return out[0] * out[1]

    def _rest_of_layers(self, seq, x, edge_feat, w_edge):
        """``x + e W_c^T`` through the layers of ``seq`` after the first (``x``: the node parts
        of the first layer, with its bias)."""
        import torch

        if self.onednn:
            x = x + self._mm(edge_feat, w_edge)
            return self._seq(list(seq)[1:], x)
        if self.compiled:
            # matrix product and additions apart: inductor then adds them inside its fused
            # element-wise kernels instead of copying the addend into the product's output
            # first (aten.addmm on CPU), one pass over (E, 64) less per layer
            x = x + edge_feat @ w_edge.t()
            for mod in list(seq)[1:]:
                if isinstance(mod, torch.nn.Linear):
                    x = x @ mod.weight.t()
                    x = x if mod.bias is None else x + mod.bias
                else:
                    x = mod(x)
            return x
        x = torch.addmm(x, edge_feat, w_edge.t())
        for mod in list(seq)[1:]:
            x = mod(x)
        return x
