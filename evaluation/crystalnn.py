"""Fast CrystalNN fingerprints and CrystalNN bond angles, equal to the reference libraries.

The reference is matminer's ``CrystalNNFingerprint.from_preset("ops")`` (pymatgen
``CrystalNN`` + ``VoronoiNN`` + ``LocalStructOrderParams``), ~15-60 ms per site. This
module gives the same numbers (tested to <= 1e-8 against the libraries on the same
inputs, tests/test_crystalnn.py) for many sites of one structure at once:

* one periodic neighbour list per structure (pymatgen's ``find_points_in_spheres``, the
  routine ``Structure.get_sites_in_sphere`` itself calls, with the same 7 Å search cutoff),
  neighbour image coordinates computed as ``np.dot(frac + image, lattice)`` does (the
  same fused multiply-add chain, so coordinates are bit-identical);
* the Voronoi cell of each centre by clipping a box with the bisector planes of *all*
  points within the cutoff (numba): the same polyhedron qhull builds from the same
  point set in ``VoronoiNN.get_voronoi_polyhedra``; solid angles with VoronoiNN's
  formula, face areas from its fan of tetrahedra. Where the clipped cell still touches
  the box (no bounded cell from the points within the cutoff: isolated sites, sparse
  cells) or a buffer overflows, that site goes through :func:`_faces_scipy`, a copy of
  VoronoiNN's own procedure (scipy ``Voronoi`` on the sphere's points sorted by distance,
  cutoff doubled up to the cell diagonal on failure, same errors);
* CrystalNN's weights in plain Python floats with the reference's operation order
  (porous adjustment, electronegativity factor, distance cut-offs with ionic/covalent
  radii, ``round(w, 3)``, semicircle integrals, CN-0 weight);
* the order parameters of the "ops" preset (sgl_bd, bent, tri_plan_max, tet_max, T,
  sq_plan_max, see_saw_rect, tri_bipyr, tri_pyr, pent_plan_max, sq_pyr, oct_max,
  pent_pyr, hex_plan_max, hex_pyr, pent_bipyr, bcc, hex_bipyr, cuboct_max, q2, q4, q6)
  in numba with LocalStructOrderParams' formulas, parameters (pymatgen
  ``cn_opt_params.yaml``) and operation order; dot products use numpy's 3-element
  ``fma`` chain so ``acos`` near ±1 sees the same arguments.

Exactness notes: qhull and the clipping agree on every face of non-zero area; faces of
zero area (degenerate vertices of perfect crystals) get weight 0 in both after
``round(w, 3)``. Neighbours whose CrystalNN weights tie (to 1e-9) are ordered by the
reference in qhull's ridge order; only the ``bcc`` parameter (CN 8) and the BLAS rounding
of bond-angle cosines depend on that order, so such sites (perfect crystals) are redone
through :func:`_faces_scipy`, which reproduces VoronoiNN's order and numbers exactly.
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from dismai_data.geometry import angle_histogram, neighbour_angles

SEARCH_CUTOFF = 7.0  # CrystalNN search_cutoff (VoronoiNN cutoff)
MAX_CN = 24
OXIDATION_STATES = {"Li": 1, "Sc": 3, "Co": 3, "Cl": -1, "O": -2}

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


LABELS, _CODES, _PARAMS, _CNS = _op_table()
N_OPS = len(LABELS)  # 61


def feature_labels(fraction_species=()):
    return LABELS + [f"frac {sp} CN_{cn}" for cn in range(1, MAX_CN + 1) for sp in fraction_species]


# --------------------------------------------------------------------------- numba kernels
@intrinsic
def _fma(typingctx, a, b, c):
    sig = types.float64(types.float64, types.float64, types.float64)

    def codegen(context, builder, signature, args):
        fnty = ir.FunctionType(ir.DoubleType(), [ir.DoubleType()] * 3)
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.fma.f64")
        return builder.call(fn, args)

    return sig, codegen


@njit(cache=True, inline="always")
def _dot(a0, a1, a2, b0, b1, b2):
    # numpy's dot/inner of two float64 3-vectors (OpenBLAS): fma(a2, b2, fma(a1, b1, a0 * b0))
    return _fma(a2, b2, _fma(a1, b1, a0 * b0))


@njit(cache=True)
def _images_to_cart(frac, idx, img, lat):
    """Cartesian coordinates of ``frac[idx] + img`` exactly as ``np.dot(f, lattice)`` (gemv)."""
    n = idx.shape[0]
    out = np.empty((n, 3))
    for i in range(n):
        f0 = frac[idx[i], 0] + img[i, 0]
        f1 = frac[idx[i], 1] + img[i, 1]
        f2 = frac[idx[i], 2] + img[i, 2]
        for c in range(3):
            out[i, c] = _fma(f2, lat[2, c], _fma(f1, lat[1, c], f0 * lat[0, c]))
    return out


@njit(cache=True)
def _norms(vec):
    n = vec.shape[0]
    out = np.empty(n)
    for i in range(n):
        out[i] = math.sqrt(_dot(vec[i, 0], vec[i, 1], vec[i, 2], vec[i, 0], vec[i, 1], vec[i, 2]))
    return out


@njit(cache=True)
def _solid_angle_area(poly, m, d_face):
    """VoronoiNN's solid angle (fan from vertex 0, Van Oosterom-Strackee per triangle)
    and face area (3 x fan tetrahedra volume / face distance); centre at the origin."""
    r0 = math.sqrt(poly[0, 0] ** 2 + poly[0, 1] ** 2 + poly[0, 2] ** 2)
    angle = 0.0
    vol = 0.0
    for ii in range(1, m - 1):
        jj = ii + 1
        a0, a1, a2 = poly[0, 0], poly[0, 1], poly[0, 2]
        b0, b1, b2 = poly[ii, 0], poly[ii, 1], poly[ii, 2]
        c0, c1, c2 = poly[jj, 0], poly[jj, 1], poly[jj, 2]
        x0 = b1 * c2 - b2 * c1
        x1 = b2 * c0 - b0 * c2
        x2 = b0 * c1 - b1 * c0
        trip = a0 * x0 + a1 * x1 + a2 * x2
        tp = abs(trip)
        rb = math.sqrt(b0 * b0 + b1 * b1 + b2 * b2)
        rc = math.sqrt(c0 * c0 + c1 * c1 + c2 * c2)
        de = r0 * rb * rc + rc * (a0 * b0 + a1 * b1 + a2 * b2) + rb * (a0 * c0 + a1 * c1 + a2 * c2) \
            + r0 * (b0 * c0 + b1 * c1 + b2 * c2)
        if tp == 0.0:
            ang = 0.0  # degenerate triangle (no area): no contribution
        elif de == 0.0:
            ang = 0.5 * math.pi
        else:
            ang = math.atan(tp / de)
            if not ang > 0:
                ang += math.pi
        angle += ang * 2
        vol += tp / 6.0  # |(centre - vk) . ((v0 - vk) x (vj - vk))| / 6 = |v0 . (vj x vk)| / 6
    return angle, 3 * vol / d_face


@njit(cache=True)
def _clip_cells(rel, offsets, box, eps, maxf, maxv, lab_out, sa_out, area_out, nface_out):
    """Voronoi cell of the origin for each site s from the points ``rel[offsets[s]:offsets[s+1]]``
    (relative to the centre, sorted by distance, centre excluded). Per site: faces
    (point index within the site's block, solid angle, area) or ``nface_out[s] = -1``
    (cell touches the box: unbounded from these points), -2 (buffer overflow)."""
    nsite = offsets.shape[0] - 1
    fv = np.empty((maxf, maxv, 3))
    gv = np.empty((maxf, maxv, 3))
    fn = np.zeros(maxf, np.int64)
    gn = np.zeros(maxf, np.int64)
    fl = np.zeros(maxf, np.int64)
    gl = np.zeros(maxf, np.int64)
    newp = np.empty((maxf * 4, 3))
    ang = np.empty(maxf * 4)
    order = np.empty(maxf * 4, np.int64)
    poly = np.empty((maxf * 4, 3))
    sv = np.empty(maxv)
    corners = np.array([[-1., -1., -1.], [1., -1., -1.], [1., 1., -1.], [-1., 1., -1.],
                        [-1., -1., 1.], [1., -1., 1.], [1., 1., 1.], [-1., 1., 1.]])
    box_faces = np.array([[0, 3, 2, 1], [4, 5, 6, 7], [0, 1, 5, 4], [2, 3, 7, 6], [1, 2, 6, 5], [0, 4, 7, 3]])
    for s in range(nsite):
        a, b = offsets[s], offsets[s + 1]
        nf = 6
        for f in range(6):
            fn[f] = 4
            fl[f] = -1 - f
            for v in range(4):
                for c in range(3):
                    fv[f, v, c] = corners[box_faces[f, v], c] * box
        rmax = math.sqrt(3.0) * box
        status = 0
        for i in range(a, b):
            px, py, pz = rel[i, 0], rel[i, 1], rel[i, 2]
            d = math.sqrt(px * px + py * py + pz * pz)
            h = 0.5 * d
            if h > rmax + eps:
                break
            nx, ny, nz = px / d, py / d, pz / d
            outside = False
            for f in range(nf):
                for v in range(fn[f]):
                    if fv[f, v, 0] * nx + fv[f, v, 1] * ny + fv[f, v, 2] * nz - h > eps:
                        outside = True
                        break
                if outside:
                    break
            if not outside:
                continue
            ng = 0
            npnt = 0
            for f in range(nf):
                m = fn[f]
                for v in range(m):
                    sv[v] = fv[f, v, 0] * nx + fv[f, v, 1] * ny + fv[f, v, 2] * nz - h
                cnt = 0
                for v in range(m):
                    w = v + 1 if v + 1 < m else 0
                    sa, sb = sv[v], sv[w]
                    ina, inb = sa <= eps, sb <= eps
                    if cnt + 2 > maxv or npnt + 2 > newp.shape[0]:
                        status = -2
                        break
                    if ina:
                        for c in range(3):
                            gv[ng, cnt, c] = fv[f, v, c]
                        cnt += 1
                        if sa >= -eps:
                            for c in range(3):
                                newp[npnt, c] = fv[f, v, c]
                            npnt += 1
                    if ina != inb:
                        t = sa / (sa - sb)
                        t = min(max(t, 0.0), 1.0)
                        for c in range(3):
                            x = fv[f, v, c] + t * (fv[f, w, c] - fv[f, v, c])
                            gv[ng, cnt, c] = x
                            newp[npnt, c] = x
                        cnt += 1
                        npnt += 1
                if status != 0:
                    break
                if cnt >= 3:
                    gn[ng] = cnt
                    gl[ng] = fl[f]
                    ng += 1
            if status != 0:
                break
            if npnt >= 3:
                # order the new face's points by angle around their centroid in the plane
                cx = cy = cz = 0.0
                for q in range(npnt):
                    cx += newp[q, 0]
                    cy += newp[q, 1]
                    cz += newp[q, 2]
                cx /= npnt
                cy /= npnt
                cz /= npnt
                if abs(nx) < 0.6:
                    ux, uy, uz = 0.0, nz, -ny
                else:
                    ux, uy, uz = -nz, 0.0, nx
                un = math.sqrt(ux * ux + uy * uy + uz * uz)
                ux, uy, uz = ux / un, uy / un, uz / un
                vx, vy, vz = ny * uz - nz * uy, nz * ux - nx * uz, nx * uy - ny * ux
                for q in range(npnt):
                    dx, dy, dz = newp[q, 0] - cx, newp[q, 1] - cy, newp[q, 2] - cz
                    ang[q] = math.atan2(dx * vx + dy * vy + dz * vz, dx * ux + dy * uy + dz * uz)
                    order[q] = q
                for q in range(1, npnt):  # insertion sort
                    key = order[q]
                    r = q - 1
                    while r >= 0 and ang[order[r]] > ang[key]:
                        order[r + 1] = order[r]
                        r -= 1
                    order[r + 1] = key
                cnt = 0
                for q in range(npnt):
                    o = order[q]
                    if cnt > 0:
                        dd = (newp[o, 0] - gv[ng, cnt - 1, 0]) ** 2 + (newp[o, 1] - gv[ng, cnt - 1, 1]) ** 2 \
                            + (newp[o, 2] - gv[ng, cnt - 1, 2]) ** 2
                        if dd < 1e-20:
                            continue
                    if cnt >= maxv or ng >= maxf:
                        status = -2
                        break
                    for c in range(3):
                        gv[ng, cnt, c] = newp[o, c]
                    cnt += 1
                if status != 0:
                    break
                while cnt > 1:
                    dd = (gv[ng, 0, 0] - gv[ng, cnt - 1, 0]) ** 2 + (gv[ng, 0, 1] - gv[ng, cnt - 1, 1]) ** 2 \
                        + (gv[ng, 0, 2] - gv[ng, cnt - 1, 2]) ** 2
                    if dd < 1e-20:
                        cnt -= 1
                    else:
                        break
                if cnt >= 3:
                    gn[ng] = cnt
                    gl[ng] = i - a
                    ng += 1
            # swap buffers
            fv, gv = gv, fv
            fn, gn = gn, fn
            fl, gl = gl, fl
            nf = ng
            rmax = 0.0
            for f in range(nf):
                for v in range(fn[f]):
                    rr = math.sqrt(fv[f, v, 0] ** 2 + fv[f, v, 1] ** 2 + fv[f, v, 2] ** 2)
                    if rr > rmax:
                        rmax = rr
        if status == 0:
            for f in range(nf):
                if fl[f] < 0:
                    status = -1
                    break
        if status != 0:
            nface_out[s] = status
            continue
        nface_out[s] = nf
        for f in range(nf):
            k = fl[f]
            m = fn[f]
            for v in range(m):
                for c in range(3):
                    poly[v, c] = fv[f, v, c]
            dface = 0.5 * math.sqrt(rel[a + k, 0] ** 2 + rel[a + k, 1] ** 2 + rel[a + k, 2] ** 2)
            sang, area = _solid_angle_area(poly, m, dface)
            lab_out[s, f] = k
            sa_out[s, f] = sang
            area_out[s, f] = area


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
    acc = 0.0
    for mm in (4, 3, 2, 1):  # Y_4_-m
        real = 0.0
        imag = 0.0
        for i in range(n):
            real += pre[mm, i] * cnp[mm, i]
            imag -= pre[mm, i] * snp[mm, i]
        acc += real * real + imag * imag
    real = 0.0
    for i in range(n):
        real += i16_3 * sqrt_1_pi * (35 * ct[4, i] - 30 * ct[2, i] + 3.0)
    acc += real * real
    for mm in (1, 2, 3, 4):  # Y_4_m: odd m -> (-, -), even m -> (+, +)
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
    acc = 0.0
    for mm in (6, 5, 4, 3, 2, 1):
        real = 0.0
        imag = 0.0
        for i in range(n):
            real += pre6[mm, i] * cnp[mm, i]
            imag -= pre6[mm, i] * snp[mm, i]
        acc += real * real + imag * imag
    real = 0.0
    for i in range(n):
        real += i32 * sqrt_13_pi * (231 * ct[6, i] - 315 * ct[4, i] + 105 * ct[2, i] - 5.0)
    acc += real * real
    for mm in (1, 2, 3, 4, 5, 6):
        real = 0.0
        imag = 0.0
        for i in range(n):
            if mm % 2 == 1:
                real -= pre6[mm, i] * cnp[mm, i]
                imag -= pre6[mm, i] * snp[mm, i]
            else:
                real += pre6[mm, i] * cnp[mm, i]
                imag += pre6[mm, i] * snp[mm, i]
        acc += real * real + imag * imag
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
                d = math.sqrt(_dot(r0, r1, r2, r0, r1, r2))
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
                    t = _dot(unit[j, 0], unit[j, 1], unit[j, 2], unit[k, 0], unit[k, 1], unit[k, 2])
                    theta[j, k] = math.acos(max(-1.0, min(t, 1.0)))
                    # gramschmidt(unit[k], unit[j])
                    vu = _dot(unit[k, 0], unit[k, 1], unit[k, 2], unit[j, 0], unit[j, 1], unit[j, 2])
                    uu = _dot(unit[j, 0], unit[j, 1], unit[j, 2], unit[j, 0], unit[j, 1], unit[j, 2])
                    c = vu / uu
                    x0 = unit[k, 0] - c * unit[j, 0]
                    x1 = unit[k, 1] - c * unit[j, 1]
                    x2 = unit[k, 2] - c * unit[j, 2]
                    nx = math.sqrt(_dot(x0, x1, x2, x0, x1, x2))
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
                        t = _dot(xa[j, m, 0], xa[j, m, 1], xa[j, m, 2], xa[j, k, 0], xa[j, k, 1], xa[j, k, 2])
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


# --------------------------------------------------------------------------- CrystalNN weights
def _semicircle_integral(dist_bins, idx):
    radius = 1
    x1 = dist_bins[idx]
    x2 = dist_bins[idx + 1]
    if dist_bins[idx] == 1:
        area1 = 0.25 * math.pi * radius**2
    else:
        area1 = 0.5 * ((x1 * math.sqrt(radius**2 - x1**2)) + (radius**2 * math.atan(x1 / math.sqrt(radius**2 - x1**2))))
    area2 = 0.5 * ((x2 * math.sqrt(radius**2 - x2**2)) + (radius**2 * math.atan(x2 / math.sqrt(radius**2 - x2**2))))
    return (area1 - area2) / (0.25 * math.pi * radius**2)


def _default_radius(specie):
    from pymatgen.core.molecule_structure_comparator import CovalentRadius

    try:
        return CovalentRadius.radius[specie.symbol]
    except Exception:
        return specie.atomic_radius


def _radius(specie):
    """Oxidation-state dependent radius (ionic, covalent or atomic; 0 if none), as CrystalNN."""
    if hasattr(specie, "oxi_state"):
        el = specie.element
        oxi = specie.oxi_state
        if oxi == 0:
            return _default_radius(specie)
        if oxi in el.ionic_radii:
            return el.ionic_radii[oxi]
        if math.floor(oxi) in el.ionic_radii and math.ceil(oxi) in el.ionic_radii:
            oxi_low = el.ionic_radii[math.floor(oxi)]
            oxi_high = el.ionic_radii[math.ceil(oxi)]
            x = oxi - math.floor(oxi)
            return (1 - x) * oxi_low + x * oxi_high
        if oxi > 0 and el.average_cationic_radius > 0:
            return el.average_cationic_radius
        if el.average_anionic_radius > 0 > oxi:
            return el.average_anionic_radius
    return 0


class _Prepared:
    """Per-structure arrays: coordinates, species codes, oxidation states, X, radii; the
    neighbour points of the requested centres (:meth:`points`)."""

    def __init__(self, structure, indices, cation_anion, oxidation_states):
        self.structure = structure
        self.lattice = np.ascontiguousarray(structure.lattice.matrix, dtype=float)
        self.frac = np.ascontiguousarray(structure.frac_coords, dtype=float)
        self.cart = np.ascontiguousarray(structure.cart_coords, dtype=float)
        self.pbc = np.ascontiguousarray(structure.lattice.pbc, dtype=np.int64)
        species = [site.specie for site in structure]
        uniq = {}
        self.spec = np.array([uniq.setdefault(sp, len(uniq)) for sp in species], np.int64)
        self.species = list(uniq)
        if oxidation_states is not None:  # undecorated species get the mapping's charge, as if decorated
            from pymatgen.core import Species

            self.species = [Species(sp.symbol, oxidation_states[sp.symbol])
                            if getattr(sp, "oxi_state", None) is None and sp.symbol in oxidation_states else sp
                            for sp in self.species]
        self.symbols = [sp.symbol for sp in self.species]
        self.X = [float(sp.X) for sp in self.species]
        self.radius = [_radius(sp) for sp in self.species]
        self.default_radius = [_default_radius(sp) for sp in self.species]
        self.oxi = [getattr(sp, "oxi_state", None) for sp in self.species]
        if cation_anion and any(o is None for o in self.oxi):
            raise ValueError("cation_anion=True needs an oxidation state on every species")
        self.cation_anion = cation_anion
        self.indices = np.asarray(indices, dtype=np.int64)
        self.all_cart = np.ascontiguousarray(np.dot(self.frac, self.lattice), dtype=float)
        corners = np.array([[1, 1, 1], [-1, 1, 1], [1, -1, 1], [1, 1, -1]], float)
        # VoronoiNN: longest cell diagonal + 0.01 is the largest search cutoff
        self.max_cutoff = max(float(np.linalg.norm(np.dot(c, self.lattice))) for c in corners) + 0.01

    def points(self, sites, cutoff):
        """For each centre in ``sites`` (positions in ``indices``): the points within ``cutoff``
        sorted by distance (stable, as get_sites_in_sphere + VoronoiNN's sort), as
        (cartesian coordinates, site indices)."""
        from pymatgen.optimization.neighbors import find_points_in_spheres

        centers = np.ascontiguousarray(self.cart[self.indices[sites]], dtype=float)
        ci, nj, img, d = find_points_in_spheres(all_coords=self.all_cart, center_coords=centers, r=float(cutoff),
                                                pbc=self.pbc, lattice=self.lattice, tol=1e-8)
        order = np.lexsort((d, ci))  # by centre, then distance (stable)
        ci, nj, img = ci[order], nj[order].astype(np.int64), np.ascontiguousarray(img[order], dtype=float)
        pts = _images_to_cart(self.frac, nj, img, self.lattice)
        bounds = np.searchsorted(ci, np.arange(len(sites) + 1))
        return [(pts[bounds[k]:bounds[k + 1]], nj[bounds[k]:bounds[k + 1]]) for k in range(len(sites))]


def _clip(blocks, box):
    """Run the clipping kernel on blocks [(pts, nj)], centre = first point. Returns per block
    (rows, solid angles, areas) or the kernel status (-1 touches the box, -2 overflow)."""
    rel_blocks, offsets = [], [0]
    for pts, _ in blocks:
        rel = pts[1:] - pts[0]
        rel_blocks.append(rel)
        offsets.append(offsets[-1] + len(rel))
    rel = np.ascontiguousarray(np.concatenate(rel_blocks) if rel_blocks else np.zeros((0, 3)))
    offsets = np.asarray(offsets, np.int64)
    maxf, maxv = 200, 64
    n = len(blocks)
    lab = np.zeros((n, maxf), np.int64)
    sa = np.zeros((n, maxf))
    area = np.zeros((n, maxf))
    nface = np.zeros(n, np.int64)
    _clip_cells(rel, offsets, float(box), 1e-10, maxf, maxv, lab, sa, area, nface)
    return [(lab[k, :nface[k]] + 1, sa[k, :nface[k]], area[k, :nface[k]]) if nface[k] > 0 else int(nface[k])
            for k in range(n)]


def _faces_fast(prep):
    """Voronoi faces of every centre by clipping, with VoronoiNN's search: points within 7 Å;
    if they leave the cell unbounded, cutoff doubled (capped at the cell diagonal + 0.01).
    A cell that touches the clipping box (half-width = cutoff) is re-clipped in a box 1e4
    times larger: still touching = unbounded (qhull: infinite vertex or error -> next
    cutoff). Per centre (pts, site indices, face rows, solid angles, areas), or None where
    the exact scipy path must decide (overflow, or unbounded at the largest cutoff)."""
    out = [None] * len(prep.indices)
    pending = list(range(len(prep.indices)))
    cutoff = SEARCH_CUTOFF
    while pending:
        blocks = prep.points(pending, cutoff)
        res = _clip(blocks, cutoff)
        again = [k for k, r in enumerate(res) if isinstance(r, int) and r == -1]
        if again:
            res2 = _clip([blocks[k] for k in again], cutoff * 1e4)
            for k, r in zip(again, res2):
                res[k] = r
        nxt = []
        for k, r in enumerate(res):
            s = pending[k]
            if not isinstance(r, int):
                out[s] = blocks[k] + r
            elif r == -1 and cutoff < prep.max_cutoff:
                nxt.append(s)
        pending = nxt
        cutoff = min(cutoff * 2, prep.max_cutoff + 0.001)
    return out


def _solid_angle_np(center, coords):
    """VoronoiNN's solid-angle formula with the same numpy operations (bit-identical values)."""
    disp = [np.subtract(c, center) for c in coords]
    r_norm = [np.linalg.norm(d) for d in disp]
    angle = 0
    for ii in range(1, len(disp) - 1):
        jj = ii + 1
        tp = np.abs(np.dot(disp[0], np.cross(disp[ii], disp[jj])))
        de = (r_norm[0] * r_norm[ii] * r_norm[jj] + r_norm[jj] * np.dot(disp[0], disp[ii])
              + r_norm[ii] * np.dot(disp[0], disp[jj]) + r_norm[0] * np.dot(disp[ii], disp[jj]))
        _angle = (0.5 * math.pi if tp > 0 else -0.5 * math.pi) if de == 0 else np.arctan(tp / de)
        angle += (_angle if _angle > 0 else _angle + math.pi) * 2
    return angle


def _faces_scipy(prep, s):
    """VoronoiNN.get_voronoi_polyhedra for centre s, step for step (scipy Voronoi on the
    distance-sorted points within the cutoff, cutoff doubled on failure up to the longest
    cell diagonal + 0.01, same errors; faces in qhull's ridge order, solid angles and
    areas with the same numpy operations, so ties sort exactly as in the reference).
    Returns (point coords, site indices, face rows, solid angles, areas)."""
    from pymatgen.optimization.neighbors import find_points_in_spheres
    from scipy.spatial import Voronoi

    n = int(prep.indices[s])
    lat = prep.lattice
    max_cutoff = prep.max_cutoff
    cutoff = SEARCH_CUTOFF
    all_cart = prep.all_cart
    while True:
        try:
            _, nj, img, d = find_points_in_spheres(all_coords=all_cart, center_coords=prep.cart[[n]].copy(),
                                                   r=float(cutoff), pbc=prep.pbc, lattice=lat, tol=1e-8)
            order = np.argsort(d, kind="stable")
            nj = nj[order].astype(np.int64)
            img = np.ascontiguousarray(img[order], dtype=float)
            pts = _images_to_cart(prep.frac, nj, img, lat)
            voro = Voronoi(pts)
            verts = voro.vertices
            center = pts[0]
            faces = {}
            for (p0, p1), vind in zip(voro.ridge_points.tolist(), voro.ridge_vertices):
                if 0 not in (p0, p1):
                    continue
                other = p0 if p1 == 0 else p1
                if -1 in vind:
                    raise RuntimeError("This structure is pathological, infinite vertex in the Voronoi construction")
                sang = _solid_angle_np(center, [verts[i] for i in vind])
                volume = 0
                for j, k in zip(vind[1:-1], vind[2:]):
                    vt4 = verts[k]
                    volume += np.abs(np.dot((center - vt4), np.cross((verts[vind[0]] - vt4), (verts[j] - vt4)))) / 6
                face_dist = np.linalg.norm(center - pts[other]) / 2
                faces[other] = (sang, 3 * volume / face_dist)
            break
        except RuntimeError as exc:
            if cutoff >= max_cutoff:
                if exc.args and "vertex" in exc.args[0]:
                    raise
                raise RuntimeError("Error in Voronoi neighbor finding; max cutoff exceeded") from exc
            cutoff = min(cutoff * 2, max_cutoff + 0.001)
    if not faces:
        raise ValueError("No Voronoi neighbors found for site - try increasing cutoff")
    rows = np.array(list(faces), np.int64)
    return (pts, nj, rows, np.array([float(v[0]) for v in faces.values()]),
            np.array([float(v[1]) for v in faces.values()]))


def _nn_data(prep, s, faces, *, porous_adjustment, x_diff_weight, distance_cutoffs):
    """CrystalNN.get_nn_data for centre s: (neighbour coords sorted as CrystalNN sorts them,
    their site indices, cn_weights dict)."""
    n = int(prep.indices[s])
    pts, nj, rows, sas, areas = _faces_scipy(prep, s) if faces is None else faces
    cspec = prep.spec[n]
    rows = rows.tolist()
    sas = sas.tolist()
    areas = areas.tolist()
    nbspec = prep.spec[nj].tolist()
    if prep.cation_anion:
        m_oxi = prep.oxi[cspec]
        keep = [i for i in range(len(rows)) if prep.oxi[nbspec[rows[i]]] * m_oxi <= 0]
    else:
        keep = list(range(len(rows)))
    if not keep:
        raise ValueError("max() arg is an empty sequence")
    max_weight = max(sas[i] for i in keep)
    nn = [[rows[i], sas[i] / max_weight, i] for i in keep if sas[i] > 0.0]
    if not nn:
        raise IndexError("list index out of range")
    if porous_adjustment:
        for e in nn:
            e[1] *= sas[e[2]] / areas[e[2]]
    if x_diff_weight > 0:
        X1 = prep.X[cspec]
        for e in nn:
            X2 = prep.X[nbspec[e[0]]]
            if math.isnan(X1) or math.isnan(X2):
                chemical_weight = 1
            else:
                chemical_weight = 1 + x_diff_weight * math.sqrt(abs(X1 - X2) / 3.3)
            e[1] *= chemical_weight
    nn.sort(key=lambda e: e[1], reverse=True)
    empty = (np.zeros((0, 3)), [], {0: 1.0}, [])
    if nn[0][1] == 0:
        return empty
    highest = nn[0][1]
    for e in nn:
        e[1] /= highest
    if distance_cutoffs:
        r1 = prep.radius[cspec]
        cent = prep.cart[n]
        rel = np.ascontiguousarray(pts[[e[0] for e in nn]] - cent)
        dists = _norms(rel).tolist()
        for e, dist in zip(nn, dists):
            r2 = prep.radius[nbspec[e[0]]]
            if r1 > 0 and r2 > 0:
                diameter = r1 + r2
            else:
                diameter = prep.default_radius[cspec] + prep.default_radius[nbspec[e[0]]]
            dist_weight = 0
            cutoff_low = diameter + distance_cutoffs[0]
            cutoff_high = diameter + distance_cutoffs[1]
            if dist <= cutoff_low:
                dist_weight = 1
            elif dist < cutoff_high:
                dist_weight = (math.cos((dist - cutoff_low) / (cutoff_high - cutoff_low) * math.pi) + 1) * 0.5
            e[1] *= dist_weight
    nn.sort(key=lambda e: e[1], reverse=True)
    if nn[0][1] == 0:
        return empty
    raw = [e[1] for e in nn]
    for e in nn:
        e[1] = round(e[1], 3)
    raw = [r for r, e in zip(raw, nn) if e[1] > 0]
    nn = [e for e in nn if e[1] > 0]
    dist_bins = []
    for e in nn:
        if not dist_bins or dist_bins[-1] != e[1]:
            dist_bins.append(e[1])
    dist_bins.append(0)
    cn_weights = {}
    for idx, val in enumerate(dist_bins):
        if val != 0:
            cn = sum(1 for e in nn if e[1] >= val)
            cn_weights[cn] = _semicircle_integral(dist_bins, idx)
    cn0_weight = 1 - sum(cn_weights.values())
    if cn0_weight > 0:
        cn_weights[0] = cn0_weight
    rows_sorted = [e[0] for e in nn]
    return pts[rows_sorted], nj[rows_sorted].tolist(), cn_weights, raw


def _near_ties(w, rel=1e-9):
    return any(abs(a - b) <= rel * max(abs(a), abs(b)) for a, b in zip(w[:-1], w[1:]))


# --------------------------------------------------------------------------- public API
def fingerprints(structure, indices=None, *, cation_anion: bool = False, oxidation_states=None,
                 fraction_species=()) -> np.ndarray:
    """CrystalNN fingerprints (matminer ``CrystalNNFingerprint.from_preset("ops",
    cation_anion=...)``: 61 numbers) of the given sites, plus for each CN 1..24 the
    fraction of that CN's neighbours that are each of ``fraction_species`` (interleaved
    per CN; 0 where the CN weight is 0), as ``disorder.site_fingerprint`` computes them.

    ``cation_anion=True`` restricts neighbours to opposite (or zero) charge; oxidation
    states come from the structure's species or, if undecorated, ``oxidation_states``
    (element -> charge). Returns an array (len(indices), 61 + 24 * len(fraction_species))."""
    idx = list(range(len(structure))) if indices is None else [int(i) for i in indices]
    nfeat = N_OPS + MAX_CN * len(fraction_species)
    out = np.zeros((len(idx), nfeat))
    if not idx:
        return out
    prep = _Prepared(structure, idx, cation_anion, oxidation_states)
    faces = _faces_fast(prep)
    cn_wt = np.zeros(MAX_CN + 1)
    for s in range(len(idx)):
        kw = dict(porous_adjustment=True, x_diff_weight=3.0, distance_cutoffs=(0.5, 1))
        nbc, nbi, cn_weights, raw = _nn_data(prep, s, faces[s], **kw)
        if faces[s] is not None and cn_weights.get(8, 0) != 0 and _near_ties(raw[:8]):
            # the bcc order parameter depends on the order of the CN-8 neighbours; with
            # (near-)tied weights that order is qhull's ridge order: take the exact path
            nbc, nbi, cn_weights, raw = _nn_data(prep, s, None, **kw)
        cn_wt[:] = 0.0
        for cn, w in cn_weights.items():
            if 1 <= cn <= MAX_CN:
                cn_wt[cn] = w
        nb = np.ascontiguousarray(nbc[:MAX_CN]) if len(nbc) else np.zeros((0, 3))
        _site_fingerprint(prep.cart[idx[s]], nb, cn_wt, _CODES, _PARAMS, _CNS, out[s, :N_OPS])
        if fraction_species:
            col = N_OPS
            nbsym = [prep.symbols[prep.spec[j]] for j in nbi]
            for cn in range(1, MAX_CN + 1):
                wt = cn_weights.get(cn, 0)
                for sp in fraction_species:
                    if wt == 0 or cn > len(nbsym):
                        out[s, col] = 0.0
                    else:
                        out[s, col] = sum(x == sp for x in nbsym[:cn]) / cn
                    col += 1
    return out


def bond_angles(structure, indices=None) -> list[np.ndarray]:
    """Per site, the angles (degrees) between all pairs of neighbour bonds, neighbours from
    ``CrystalNN(distance_cutoffs=None, x_diff_weight=0, porous_adjustment=False).get_nn_info``
    (the CN of largest weight), pairs in ``np.triu_indices`` order, computed as
    ``disorder.bond_angle_distribution`` computes them. Sites whose neighbours have
    (near-)tied CrystalNN weights (perfect crystals) go through the exact VoronoiNN path so
    that their neighbour order, hence every rounding, is the reference's."""
    idx = list(range(len(structure))) if indices is None else [int(i) for i in indices]
    if not idx:
        return []
    prep = _Prepared(structure, idx, False, None)
    faces = _faces_fast(prep)
    out = []
    for s in range(len(idx)):
        kw = dict(porous_adjustment=False, x_diff_weight=0, distance_cutoffs=None)
        nbc, _, cn_weights, raw = _nn_data(prep, s, faces[s], **kw)
        max_key = max(cn_weights, key=lambda k: cn_weights[k])
        if faces[s] is not None and max_key >= 2 and _near_ties(raw[:max_key]):
            # (near-)tied weights: the reference orders these neighbours in qhull's ridge
            # order, and the BLAS product u @ u.T rounds by row position (one ulp at
            # 180 degrees is 1e-6 degrees after arccos): take the exact path
            nbc, _, cn_weights, raw = _nn_data(prep, s, None, **kw)
            max_key = max(cn_weights, key=lambda k: cn_weights[k])
        vecs = nbc[:max_key] - prep.cart[idx[s]]
        if max_key < 2 or len(vecs) < 2:
            out.append(np.zeros(0))
            continue
        out.append(neighbour_angles(vecs))
    return out


def bond_angle_distribution(structure, bin_width: float = 0.5) -> np.ndarray:
    """Normalised histogram (sum 1) of :func:`bond_angles` over all sites, 0-180° in
    ``bin_width`` bins closed on the right as ``pandas.cut`` closes them
    (:func:`dismai_data.geometry.angle_histogram`)."""
    angles = [a for a in bond_angles(structure) if len(a)]
    return angle_histogram(np.concatenate(angles) if angles else np.zeros(0), bin_width)
