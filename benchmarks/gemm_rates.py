"""Single-thread float32 matrix-product rates of this CPU on the shapes of one M3GNet force
call: torch's ``F.linear`` (MKL's sgemm in the PyPI CPU build of torch) against oneDNN
(``dismai::onednn_linear``, what ``dismai_data.physics.fast_m3gnet.FastM3GNetPES`` uses where it is usable).

Shapes (rows x in -> out): bonds of one 264-atom interface (about 9 000-13 000) and of a
batch of eight (about 100 000), for the 64 -> 64 products of the gated MLPs and their
backward products, the 64 -> 128 and 128 -> 64 merged ones, and the 9 -> 64 radial ones.
Prints GFLOP/s of each (median-ish of ``--repeats`` timings after warm-up), the ratio, and
the largest difference between the two results.

    .venv/bin/python benchmarks/gemm_rates.py [--repeats 30]
"""

from __future__ import annotations

import argparse
import sys
import time


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=30)
    args = ap.parse_args(argv)
    import torch
    import torch.nn.functional as F

    from _cpu import cpu_line
    from dismai_data.physics import onednn

    torch.set_num_threads(1)
    print(cpu_line())
    print(f"torch {torch.__version__}; BLAS {torch.backends.mkl.is_available() and 'MKL' or 'other'}; "
          f"oneDNN usable: {onednn.onednn_matmul_usable('cpu', torch.float32)}")
    if not onednn.onednn_matmul_usable("cpu", torch.float32):
        return 0
    op = onednn.onednn_linear_ops()[1]  # the eager function (what eager calls use)

    def timed(f):
        for _ in range(3):
            f()
        ts = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            f()
            ts.append(time.perf_counter() - t0)
        return sorted(ts)[len(ts) // 4]

    gen = torch.Generator().manual_seed(0)
    print(f"{'rows':>7} {'in':>4} {'out':>4} {'F.linear GF/s':>14} {'oneDNN GF/s':>12} {'ratio':>6} {'max |diff|':>10}")
    for rows, k, m in ((13000, 64, 64), (13000, 64, 128), (13000, 128, 64), (13000, 9, 64),
                       (100000, 64, 64), (100000, 9, 64)):
        x = torch.randn(rows, k, generator=gen)
        w = torch.randn(m, k, generator=gen)
        flops = 2 * rows * k * m
        t_mkl = timed(lambda: F.linear(x, w))
        t_dnn = timed(lambda: op(x, w, None))
        diff = float((F.linear(x, w) - op(x, w, None)).abs().max())
        print(f"{rows:>7} {k:>4} {m:>4} {flops / t_mkl / 1e9:>14.1f} {flops / t_dnn / 1e9:>12.1f} "
              f"{t_mkl / t_dnn:>6.2f} {diff:>10.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
