"""CrystalNN fingerprint order parameters (matminer's "ops" preset) in numba, equal to pymatgen.

The order parameters of the preset (sgl_bd, bent, tri_plan_max, tet_max, T, sq_plan_max,
see_saw_rect, tri_bipyr, tri_pyr, pent_plan_max, sq_pyr, oct_max, pent_pyr, hex_plan_max, hex_pyr,
pent_bipyr, bcc, hex_bipyr, cuboct_max, q2, q4, q6) with ``LocalStructOrderParams``' formulas,
parameters (pymatgen ``cn_opt_params.yaml``) and operation order; dot products use numpy's
3-element ``fma`` chain (:mod:`.exact_math`) so ``acos`` near +-1 sees the same arguments.
:func:`fill_order_params` writes the 61 entries of one site from its CrystalNN CN weights and
neighbours (:mod:`.crystalnn_neighbours`).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from .exact_math import dot3

MAX_CN = 24

# matminer's load_cn_target_motif_op() (the "ops" preset), CN -> motifs after "wt"
TARGET_MOTIFS = {
    1: ["sgl_bd"],
    2: ["L-shaped", "water-like", "bent 120 degrees", "bent 150 degrees", "linear"],
    3: ["trigonal planar", "trigonal non-coplanar", "T-shaped"],
    4: ["square co-planar", "tetrahedral", "rectangular see-saw-like", "see-saw-like", "trigonal pyramidal"],
    5: ["pentagonal planar", "square pyramidal", "trigonal bipyramidal"],
    6: ["hexagonal planar", "octahedral", "pentagonal pyramidal"],
    7: ["hexagonal pyramidal", "pentagonal bipyramidal"],
    8: ["body-centered cubic", "hexagonal bipyramidal"],
    9: ["q2", "q4", "q6"],
    10: ["q2", "q4", "q6"],
    11: ["q2", "q4", "q6"],
    12: ["cuboctahedral", "q2", "q4", "q6"],
}

OP_CODES = {name: i for i, name in enumerate(
    ["sgl_bd", "bent", "tri_plan_max", "tet_max", "T", "sq_plan_max", "see_saw_rect", "tri_bipyr", "tri_pyr",
     "pent_plan_max", "sq_pyr", "oct_max", "pent_pyr", "hex_plan_max", "hex_pyr", "pent_bipyr", "bcc",
     "hex_bipyr", "cuboct_max", "q2", "q4", "q6"])}
(SGL_BD, BENT, TRI_PLAN_MAX, TET_MAX, T_SHAPE, SQ_PLAN_MAX, SEE_SAW_RECT, TRI_BIPYR, TRI_PYR, PENT_PLAN_MAX, SQ_PYR,
 OCT_MAX, PENT_PYR, HEX_PLAN_MAX, HEX_PYR, PENT_BIPYR, BCC, HEX_BIPYR, CUBOCT_MAX, Q2, Q4, Q6) = range(22)
PARAM_KEYS = ("TA", "IGW_TA", "IGW_EP", "fac_AA", "exp_cos_AA", "min_SPP", "IGW_SPP", "w_SPP", 2, 4, 5, 6)
(P_TA, P_IGW_TA, P_IGW_EP, P_FAC_AA, P_EXP_COS_AA, P_MIN_SPP, P_IGW_SPP, P_W_SPP, P_2, P_4, P_5, P_6) = range(12)


def _op_table():
    """(labels, codes[61], params[61, 12], cn_of_entry[61]) of the 'ops' preset; code -1 = 'wt'."""
    from pymatgen.core.local_env import CN_OPT_PARAMS, DEFAULT_OP_PARAMS

    labels, codes, params, cns = [], [], [], []
    for cn in range(1, MAX_CN + 1):
        for motif in ["wt"] + TARGET_MOTIFS.get(cn, []):
            labels.append(f"{motif} CN_{cn}")
            cns.append(cn)
            p = np.full(len(PARAM_KEYS), np.nan)
            if motif == "wt":
                codes.append(-1)
            else:
                typ, par = motif, None
                if cn in CN_OPT_PARAMS and motif in CN_OPT_PARAMS[cn]:
                    typ = CN_OPT_PARAMS[cn][motif][0]
                    if len(CN_OPT_PARAMS[cn][motif]) > 1:
                        par = CN_OPT_PARAMS[cn][motif][1]
                if par is None:
                    par = DEFAULT_OP_PARAMS[typ]
                codes.append(OP_CODES[typ])
                for i, k in enumerate(PARAM_KEYS):
                    if par is not None and k in par:
                        p[i] = float(par[k])
            params.append(p)
    return labels, np.array(codes, np.int64), np.array(params), np.array(cns, np.int64)


LABELS, CODES, PARAMS, CNS = _op_table()
N_OPS = len(LABELS)  # 61


def feature_labels(fraction_species=()):
    return LABELS + [f"frac {sp} CN_{cn}" for cn in range(1, MAX_CN + 1) for sp in fraction_species]


@njit(cache=True)
def _add_negative_m(acc, pre, cnp, snp, degree, n):
    """``acc`` plus |sum_i Y_l_-m|^2 (l = degree) for m = l..1, added in pymatgen's order."""
    for mm in range(degree, 0, -1):
        real = 0.0
        imag = 0.0
        for i in range(n):
            real += pre[mm, i] * cnp[mm, i]
            imag -= pre[mm, i] * snp[mm, i]
        acc += real * real + imag * imag
    return acc


@njit(cache=True)
def _add_positive_m(acc, pre, cnp, snp, degree, n):
    """``acc`` plus |sum_i Y_l_m|^2 for m = 1..l (odd m: (-, -), even m: (+, +)), in pymatgen's order."""
    for mm in range(1, degree + 1):
        real = 0.0
        imag = 0.0
        for i in range(n):
            if mm % 2 == 1:
                real -= pre[mm, i] * cnp[mm, i]
                imag -= pre[mm, i] * snp[mm, i]
            else:
                real += pre[mm, i] * cnp[mm, i]
                imag += pre[mm, i] * snp[mm, i]
        acc += real * real + imag * imag
    return acc


@njit(cache=True)
def _q_values(nb_unit, l_max):
    """Steinhardt q2, q4, q6 exactly as LocalStructOrderParams.get_q2/4/6."""
    n = nb_unit.shape[0]
    left_of_unity = 1 - 1e-12
    st = np.empty((7, n))
    ct = np.empty((7, n))
    snp = np.empty((7, n))
    cnp = np.empty((7, n))
    for i in range(n):
        v0, v1, v2 = nb_unit[i, 0], nb_unit[i, 1], nb_unit[i, 2]
        theta = math.acos(max(-1.0, min(v2, 1.0)))
        phi = 0.0
        if -left_of_unity < v2 < left_of_unity:
            phi = math.acos(max(-1.0, min(v0 / (math.sqrt(v0 * v0 + v1 * v1)), 1.0)))
            if v1 < 0.0:
                phi = -phi
        st[1, i] = math.sin(theta)
        ct[1, i] = math.cos(theta)
        snp[1, i] = math.sin(phi)
        cnp[1, i] = math.cos(phi)
        for k in range(2, l_max + 1):
            st[k, i] = st[k - 1, i] * st[1, i]
            ct[k, i] = ct[k - 1, i] * ct[1, i]
            snp[k, i] = math.sin(float(k) * phi)
            cnp[k, i] = math.cos(float(k) * phi)
    out = np.zeros(3)
    nn2 = float(n ** 2)
    # q2
    sqrt_15_2pi = math.sqrt(15 / (2 * math.pi))
    sqrt_5_pi = math.sqrt(5 / math.pi)
    acc = 0.0
    real = 0.0
    imag = 0.0
    for i in range(n):
        p = 0.25 * sqrt_15_2pi * st[2, i]
        real += p * cnp[2, i]
        imag -= p * snp[2, i]
    acc += real * real + imag * imag
    real = 0.0
    imag = 0.0
    for i in range(n):
        p = 0.5 * sqrt_15_2pi * st[1, i] * ct[1, i]
        real += p * cnp[1, i]
        imag -= p * snp[1, i]
    acc += real * real + imag * imag
    real = 0.0
    for i in range(n):
        real += 0.25 * sqrt_5_pi * (3 * ct[2, i] - 1.0)
    acc += real * real
    real = 0.0
    imag = 0.0
    for i in range(n):
        p = 0.5 * sqrt_15_2pi * st[1, i] * ct[1, i]
        real -= p * cnp[1, i]
        imag -= p * snp[1, i]
    acc += real * real + imag * imag
    real = 0.0
    imag = 0.0
    for i in range(n):
        p = 0.25 * sqrt_15_2pi * st[2, i]
        real += p * cnp[2, i]
        imag += p * snp[2, i]
    acc += real * real + imag * imag
    out[0] = math.sqrt(4 * math.pi * acc / (5 * nn2))
    if l_max < 4:
        return out
    # q4
    i16_3 = 3 / 16.0
    i8_3 = 3 / 8.0
    sqrt_35_pi = math.sqrt(35 / math.pi)
    sqrt_35_2pi = math.sqrt(35 / (2 * math.pi))
    sqrt_5_2pi = math.sqrt(5 / (2 * math.pi))
    sqrt_1_pi = math.sqrt(1 / math.pi)
    pre = np.empty((5, n))
    for i in range(n):
        pre[4, i] = i16_3 * sqrt_35_2pi * st[4, i]
        pre[3, i] = i8_3 * sqrt_35_pi * st[3, i] * ct[1, i]
        pre[2, i] = i8_3 * sqrt_5_2pi * st[2, i] * (7 * ct[2, i] - 1.0)
        pre[1, i] = i8_3 * sqrt_5_pi * st[1, i] * (7 * ct[3, i] - 3 * ct[1, i])
    acc = _add_negative_m(0.0, pre, cnp, snp, 4, n)  # Y_4_-m
    real = 0.0
    for i in range(n):
        real += i16_3 * sqrt_1_pi * (35 * ct[4, i] - 30 * ct[2, i] + 3.0)
    acc += real * real
    acc = _add_positive_m(acc, pre, cnp, snp, 4, n)  # Y_4_m
    out[1] = math.sqrt(4 * math.pi * acc / (9 * nn2))
    if l_max < 6:
        return out
    # q6
    i64 = 1 / 64.0
    i32 = 1 / 32.0
    i32_3 = 3 / 32.0
    i16 = 1 / 16.0
    sqrt_3003_pi = math.sqrt(3003 / math.pi)
    sqrt_1001_pi = math.sqrt(1001 / math.pi)
    sqrt_91_2pi = math.sqrt(91 / (2 * math.pi))
    sqrt_1365_pi = math.sqrt(1365 / math.pi)
    sqrt_273_2pi = math.sqrt(273 / (2 * math.pi))
    sqrt_13_pi = math.sqrt(13 / math.pi)
    pre6 = np.empty((7, n))
    for i in range(n):
        pre6[6, i] = i64 * sqrt_3003_pi * st[6, i]
        pre6[5, i] = i32_3 * sqrt_1001_pi * st[5, i] * ct[1, i]
        pre6[4, i] = i32_3 * sqrt_91_2pi * st[4, i] * (11 * ct[2, i] - 1.0)
        pre6[3, i] = i32 * sqrt_1365_pi * st[3, i] * (11 * ct[3, i] - 3 * ct[1, i])
        pre6[2, i] = i64 * sqrt_1365_pi * st[2, i] * (33 * ct[4, i] - 18 * ct[2, i] + 1.0)
        pre6[1, i] = i16 * sqrt_273_2pi * st[1, i] * (33 * ct[5, i] - 30 * ct[3, i] + 5 * ct[1, i])
    acc = _add_negative_m(0.0, pre6, cnp, snp, 6, n)  # Y_6_-m
    real = 0.0
    for i in range(n):
        real += i32 * sqrt_13_pi * (231 * ct[6, i] - 315 * ct[4, i] + 105 * ct[2, i] - 5.0)
    acc += real * real
    acc = _add_positive_m(acc, pre6, cnp, snp, 6, n)  # Y_6_m
    out[2] = math.sqrt(4 * math.pi * acc / (13 * nn2))
    return out


@njit(cache=True)
def _geom_op(code, p, n, theta, flag, phi, dist):
    """One Peters-style order parameter of LocalStructOrderParams.get_order_parameters
    (single type), from the pair angles theta[j, k], the Gram-Schmidt flags and the
    azimuths phi[j, k, m]. Returns (value, is_none)."""
    ipi = 1 / math.pi
    piover2 = math.pi / 2.0
    onethird = 1 / 3
    twothird = 2 / 3.0
    fac_bcc = 1 / math.exp(-0.5)
    q = np.zeros((n, n))
    nm = np.zeros((n, n))
    south = code == TRI_BIPYR or code == PENT_BIPYR or code == HEX_BIPYR or code == OCT_MAX \
        or code == SQ_PLAN_MAX or code == HEX_PLAN_MAX or code == SEE_SAW_RECT
    for j in range(n):
        for k in range(n):
            if j == k:
                continue
            thetak = theta[j, k]
            qq = 0.0
            nn = 0.0
            # contributions of the j-i-k angle
            if code == BENT:
                tmp = p[P_IGW_TA] * (thetak * ipi - p[P_TA])
                qq += math.exp(-0.5 * tmp * tmp)
                nn += 1
            elif code == TRI_PLAN_MAX or code == TET_MAX:
                tmp = p[P_IGW_TA] * (thetak * ipi - p[P_TA])
                qq += math.exp(-0.5 * tmp * tmp)
                nn += 1
            elif code == T_SHAPE or code == TRI_PYR or code == SQ_PYR or code == PENT_PYR or code == HEX_PYR:
                tmp = p[P_IGW_EP] * (thetak * ipi - 0.5)
                qq += math.exp(-0.5 * tmp * tmp)
                nn += 1
            elif code == CUBOCT_MAX:
                if thetak >= p[P_MIN_SPP]:
                    tmp = p[P_IGW_SPP] * (thetak * ipi - 1.0)
                    qq += p[P_W_SPP] * math.exp(-0.5 * tmp * tmp)
                    nn += p[P_W_SPP]
            elif south:
                if thetak < p[P_MIN_SPP]:
                    if code != HEX_PLAN_MAX:
                        tmp = p[P_IGW_EP] * (thetak * ipi - 0.5)
                    else:
                        tmp = p[P_IGW_TA] * (math.fabs(thetak * ipi - 0.5) - p[P_TA])
                    qq += math.exp(-0.5 * tmp * tmp)
                    nn += 1
            elif code == PENT_PLAN_MAX:
                tmp = 0.4 if thetak <= p[P_TA] * math.pi else 0.8
                tmp2 = p[P_IGW_TA] * (thetak * ipi - tmp)
                qq += math.exp(-0.5 * tmp2 * tmp2)
                nn += 1
            elif code == BCC and j < k:
                if thetak >= p[P_MIN_SPP]:
                    tmp = p[P_IGW_SPP] * (thetak * ipi - 1.0)
                    qq += p[P_W_SPP] * math.exp(-0.5 * tmp * tmp)
                    nn += p[P_W_SPP]
            if code != BENT and not flag[j, k]:
                for m in range(n):
                    if m == j or m == k:
                        continue
                    thetam = theta[j, m]
                    if south and thetam >= p[P_MIN_SPP]:
                        tmp = p[P_IGW_SPP] * (thetam * ipi - 1.0)
                        qq += math.exp(-0.5 * tmp * tmp)
                        nn += 1
                    if flag[j, m]:
                        continue
                    ph = phi[j, k, m]
                    if code == TRI_PLAN_MAX or code == TET_MAX:
                        tmp = p[P_IGW_TA] * (thetam * ipi - p[P_TA])
                        tmp2 = math.cos(p[P_FAC_AA] * ph) ** p[P_EXP_COS_AA]
                        qq += 1 * math.exp(-0.5 * tmp * tmp) * tmp2
                        nn += 1
                    elif code == PENT_PLAN_MAX:
                        tmp = 0.4 if thetam <= p[P_TA] * math.pi else 0.8
                        tmp2 = p[P_IGW_TA] * (thetam * ipi - tmp)
                        tmp3 = math.cos(ph)
                        qq += 1 * math.exp(-0.5 * tmp2 * tmp2) * tmp3 * tmp3
                        nn += 1
                    elif code == T_SHAPE or code == TRI_PYR or code == SQ_PYR or code == PENT_PYR or code == HEX_PYR:
                        tmp = math.cos(p[P_FAC_AA] * ph) ** p[P_EXP_COS_AA]
                        tmp3 = p[P_IGW_EP] * (thetam * ipi - 0.5)
                        qq += tmp * math.exp(-0.5 * tmp3 * tmp3)
                        nn += 1
                    elif code == TRI_BIPYR or code == PENT_BIPYR or code == HEX_BIPYR or code == OCT_MAX \
                            or code == SQ_PLAN_MAX or code == HEX_PLAN_MAX:
                        if thetam < p[P_MIN_SPP] and thetak < p[P_MIN_SPP]:
                            tmp = math.cos(p[P_FAC_AA] * ph) ** p[P_EXP_COS_AA]
                            if code != HEX_PLAN_MAX:
                                tmp2 = p[P_IGW_EP] * (thetam * ipi - 0.5)
                            else:
                                tmp2 = p[P_IGW_TA] * (math.fabs(thetam * ipi - 0.5) - p[P_TA])
                            qq += tmp * math.exp(-0.5 * tmp2 * tmp2)
                            nn += 1
                    elif code == BCC and j < k:
                        if thetak < p[P_MIN_SPP]:
                            fac = 1 if thetak > piover2 else -1
                            tmp = (thetam - piover2) / math.asin(1 / 3)
                            qq += fac * math.cos(3 * ph) * fac_bcc * tmp * math.exp(-0.5 * tmp * tmp)
                            nn += 1
                    elif code == SEE_SAW_RECT:
                        if thetam < p[P_MIN_SPP] and thetak < p[P_MIN_SPP] and ph < 0.75 * math.pi:
                            tmp = math.cos(p[P_FAC_AA] * ph) ** p[P_EXP_COS_AA]
                            tmp2 = p[P_IGW_EP] * (thetam * ipi - 0.5)
                            qq += tmp * math.exp(-0.5 * tmp2 * tmp2)
                            nn += 1.0
                    elif code == CUBOCT_MAX:
                        if thetam < p[P_MIN_SPP] and p[P_4] < thetak < p[P_2]:
                            if p[P_4] < thetam < p[P_2]:
                                tmp = math.cos(ph)
                                tmp2 = p[P_5] * (thetam * ipi - 0.5)
                                qq += tmp * tmp * math.exp(-0.5 * tmp2 * tmp2)
                                nn += 1.0
                            elif thetam < p[P_4]:
                                tmp = 0.0556 * (math.cos(ph - 0.5 * math.pi) - 0.81649658)
                                tmp2 = p[P_6] * (thetam * ipi - onethird)
                                qq += math.exp(-0.5 * tmp * tmp) * math.exp(-0.5 * tmp2 * tmp2)
                                nn += 1.0
                            elif thetam > p[P_2]:
                                tmp = 0.0556 * (math.cos(ph - 0.5 * math.pi) - 0.81649658)
                                tmp2 = p[P_6] * (thetam * ipi - twothird)
                                qq += math.exp(-0.5 * tmp * tmp) * math.exp(-0.5 * tmp2 * tmp2)
                                nn += 1.0
            q[j, k] = qq
            nm[j, k] = nn
    if code == BENT:
        tot = 0.0
        tnorm = 0.0
        for j in range(n):
            sq = 0.0
            sn = 0.0
            for k in range(n):
                if k != j:
                    sq += q[j, k]
                    sn += nm[j, k]
            tot += sq
            tnorm += sn
        if tnorm > 1e-12:
            return tot / tnorm, False
        return 0.0, True
    if code == BCC:
        tot = 0.0
        for j in range(n):
            sq = 0.0
            for k in range(n):
                if k != j:
                    sq += q[j, k]
            tot += sq
        if n > 3:
            return tot / float(0.5 * float(n * (6 + (n - 2) * (n - 3)))), False
        return 0.0, True
    if n <= 1:
        return 0.0, True
    best = -np.inf
    for j in range(n):
        for k in range(n):
            if k != j:
                v = q[j, k] / nm[j, k] if nm[j, k] > 1e-12 else 0.0
                if v > best:
                    best = v
    return best, False


@njit(cache=True)
def _site_fingerprint(cent, nbs, cn_wt, codes, params, cns, out):
    """The 61 'ops' entries of one site: cn_wt[cn] the CrystalNN weight of each CN,
    ``nbs`` the neighbours sorted as CrystalNN sorts them (CN c uses the first c)."""
    very_small = 1e-12
    cur = -1
    theta = np.empty((1, 1))
    flag = np.zeros((1, 1), np.bool_)
    phi = np.empty((1, 1, 1))
    unit = np.empty((1, 3))
    dist = np.empty(1)
    qv = np.zeros(3)
    for e in range(codes.shape[0]):
        cn = cns[e]
        wt = cn_wt[cn]
        code = codes[e]
        if code < 0 or wt == 0:
            out[e] = wt
            continue
        n = cn
        if cn != cur:  # geometry of this CN's neighbours
            cur = cn
            unit = np.empty((n, 3))
            dist = np.empty(n)
            for j in range(n):
                r0 = nbs[j, 0] - cent[0]
                r1 = nbs[j, 1] - cent[1]
                r2 = nbs[j, 2] - cent[2]
                d = math.sqrt(dot3(r0, r1, r2, r0, r1, r2))
                dist[j] = d
                unit[j, 0] = r0 / d
                unit[j, 1] = r1 / d
                unit[j, 2] = r2 / d
            theta = np.zeros((n, n))
            flag = np.zeros((n, n), np.bool_)
            xa = np.zeros((n, n, 3))
            for j in range(n):
                for k in range(n):
                    if j == k:
                        continue
                    t = dot3(unit[j, 0], unit[j, 1], unit[j, 2], unit[k, 0], unit[k, 1], unit[k, 2])
                    theta[j, k] = math.acos(max(-1.0, min(t, 1.0)))
                    # gramschmidt(unit[k], unit[j])
                    vu = dot3(unit[k, 0], unit[k, 1], unit[k, 2], unit[j, 0], unit[j, 1], unit[j, 2])
                    uu = dot3(unit[j, 0], unit[j, 1], unit[j, 2], unit[j, 0], unit[j, 1], unit[j, 2])
                    c = vu / uu
                    x0 = unit[k, 0] - c * unit[j, 0]
                    x1 = unit[k, 1] - c * unit[j, 1]
                    x2 = unit[k, 2] - c * unit[j, 2]
                    nx = math.sqrt(dot3(x0, x1, x2, x0, x1, x2))
                    if nx < very_small:
                        flag[j, k] = True
                    else:
                        xa[j, k, 0] = x0 / nx
                        xa[j, k, 1] = x1 / nx
                        xa[j, k, 2] = x2 / nx
            phi = np.zeros((n, n, n))
            for j in range(n):
                for k in range(n):
                    if k == j or flag[j, k]:
                        continue
                    for m in range(n):
                        if m == j or m == k or flag[j, m]:
                            continue
                        t = dot3(xa[j, m, 0], xa[j, m, 1], xa[j, m, 2], xa[j, k, 0], xa[j, k, 1], xa[j, k, 2])
                        phi[j, k, m] = math.acos(max(-1.0, min(t, 1.0)))
            if cn >= 9:
                qv = _q_values(unit, 6)
        if code == SGL_BD:
            if n == 1:
                val = 1.0
            else:
                ds = np.sort(dist)
                val = 1 - ds[0] / ds[1]
            out[e] = wt * val
        elif code == Q2:
            out[e] = wt * qv[0]
        elif code == Q4:
            out[e] = wt * qv[1]
        elif code == Q6:
            out[e] = wt * qv[2]
        else:
            val, none = _geom_op(code, params[e], n, theta, flag, phi, dist)
            out[e] = 0.0 if none else wt * val


def fill_order_params(cent, nbs, cn_wt, out):
    """Write the 61 "ops" entries of one site into ``out``: ``cent`` its cartesian position,
    ``nbs`` its neighbours' positions sorted as CrystalNN sorts them (CN c uses the first c),
    ``cn_wt[cn]`` the CrystalNN weight of each CN 0..24."""
    _site_fingerprint(cent, nbs, cn_wt, CODES, PARAMS, CNS, out)
