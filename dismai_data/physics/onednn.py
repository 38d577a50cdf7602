"""Float32 matrix products through oneDNN on the CPU: the custom operator
``dismai::onednn_linear(x, w, b) = x W^T + b`` (kept whole by ``torch.compile``), an eager
``autograd.Function`` of the same product, and the check that oneDNN is usable here.

The PyPI CPU build of torch sends float32 ``F.linear`` to MKL's sgemm, which ran the M3GNet
shapes (bonds x 64 -> 64, 9 -> 64) slower than oneDNN's kernels on AMD CPUs
(``benchmarks/gemm_rates.py``); the fast M3GNet evaluator uses these products where usable.
"""

from __future__ import annotations

__all__ = ["onednn_linear_ops", "onednn_matmul_usable"]

_ONEDNN_LINEAR = None
_ONEDNN_OK = None


def _onednn_product(x, w, b):
    """``x W^T + b`` by oneDNN (``w``: (out, in); contiguous copies where needed)."""
    import torch

    return torch.ops.mkldnn._linear_pointwise(x.contiguous(), w.contiguous(), b, "none", [], "")


def onednn_linear_ops():
    """Register (once) the operator ``dismai::onednn_linear(x, w, b) = x W^T + b`` through
    oneDNN, with its input gradient ``g W`` (the weights are constants: no weight gradients),
    and return ``(operator, eager_function)``, two callables ``(x, w, b) -> y`` of the same
    product. A ``torch.library`` custom operator, so that ``torch.compile`` keeps it as one
    opaque call (inductor's own lowering of ``mkldnn._linear_pointwise`` expects prepacked
    constant weights) and fuses around it."""
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
        that calls oneDNN directly, without the custom operator's Python dispatch (paid on
        every product of every force call). Not traceable by inductor, which lowers
        ``mkldnn._linear_pointwise`` itself: compiled code uses the operator."""

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
