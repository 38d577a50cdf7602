"""CrystalNN neighbours of many sites of one structure at once, equal to pymatgen's ``CrystalNN``.

* one periodic neighbour list per structure (pymatgen's ``find_points_in_spheres``, the
  routine ``Structure.get_sites_in_sphere`` itself calls, with the same 7 A search cutoff),
  neighbour image coordinates computed as ``np.dot(frac + image, lattice)`` does (the
  same fused multiply-add chain, so coordinates are bit-identical);
* the Voronoi cell of each centre by clipping a box with the bisector planes of *all*
  points within the cutoff (numba): the same polyhedron qhull builds from the same
  point set in ``VoronoiNN.get_voronoi_polyhedra``; solid angles with VoronoiNN's
  formula, face areas from its fan of tetrahedra. Where the clipped cell still touches
  the box (no bounded cell from the points within the cutoff: isolated sites, sparse
  cells) or a buffer overflows, that site goes through :func:`faces_scipy`, a copy of
  VoronoiNN's own procedure (scipy ``Voronoi`` on the sphere's points sorted by distance,
  cutoff doubled up to the cell diagonal on failure, same errors);
* CrystalNN's weights (:func:`nn_data`) in plain Python floats with the reference's operation
  order (porous adjustment, electronegativity factor, distance cut-offs with ionic/covalent
  radii, ``round(w, 3)``, semicircle integrals, CN-0 weight).

Exactness notes: qhull and the clipping agree on every face of non-zero area; faces of
zero area (degenerate vertices of perfect crystals) get weight 0 in both after
``round(w, 3)``. Neighbours whose CrystalNN weights tie (to 1e-9, :func:`near_ties`) are ordered
by the reference in qhull's ridge order; callers whose results depend on that order redo such
sites through :func:`faces_scipy`, which reproduces VoronoiNN's order and numbers exactly.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from .exact_math import dot3, fma

SEARCH_CUTOFF = 7.0  # CrystalNN search_cutoff (VoronoiNN cutoff)


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
            out[i, c] = fma(f2, lat[2, c], fma(f1, lat[1, c], f0 * lat[0, c]))
    return out


@njit(cache=True)
def _norms(vec):
    n = vec.shape[0]
    out = np.empty(n)
    for i in range(n):
        out[i] = math.sqrt(dot3(vec[i, 0], vec[i, 1], vec[i, 2], vec[i, 0], vec[i, 1], vec[i, 2]))
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


class Prepared:
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


def faces_fast(prep):
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


def faces_scipy(prep, s):
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


def nn_data(prep, s, faces, *, porous_adjustment, x_diff_weight, distance_cutoffs):
    """CrystalNN.get_nn_data for centre s from its Voronoi ``faces`` (None: :func:`faces_scipy`):
    (neighbour coords sorted as CrystalNN sorts them, their site indices, cn_weights dict, the
    unrounded weights of those neighbours)."""
    n = int(prep.indices[s])
    pts, nj, rows, sas, areas = faces_scipy(prep, s) if faces is None else faces
    nbspec = prep.spec[nj].tolist()
    nn = _face_weights(prep, prep.spec[n], rows.tolist(), sas.tolist(), areas.tolist(), nbspec,
                       porous_adjustment, x_diff_weight)
    empty = (np.zeros((0, 3)), [], {0: 1.0}, [])
    if nn[0][1] == 0:
        return empty
    highest = nn[0][1]
    for e in nn:
        e[1] /= highest
    if distance_cutoffs:
        _apply_distance_cutoffs(prep, n, pts, nbspec, nn, distance_cutoffs)
    nn.sort(key=lambda e: e[1], reverse=True)
    if nn[0][1] == 0:
        return empty
    nn, raw, cn_weights = _cn_weights(nn)
    rows_sorted = [e[0] for e in nn]
    return pts[rows_sorted], nj[rows_sorted].tolist(), cn_weights, raw


def _face_weights(prep, cspec, rows, sas, areas, nbspec, porous_adjustment, x_diff_weight):
    """Neighbours ``[row, weight, face]`` sorted by weight (descending): solid angle over the
    largest one (opposite charges only under cation_anion), porous adjustment (x solid angle /
    area), electronegativity factor; CrystalNN's errors where no neighbour is left."""
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
    return nn


def _apply_distance_cutoffs(prep, n, pts, nbspec, nn, distance_cutoffs):
    """CrystalNN's distance weight (1 below radius sum + cutoffs[0], cosine to 0 at radius sum +
    cutoffs[1]) multiplied into each neighbour's weight, in place."""
    cspec = prep.spec[n]
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


def _cn_weights(nn):
    """Weights rounded to 3 decimals (zeros dropped) and the weight of each CN from the
    semicircle integrals between distinct weights, CN 0 taking the rest. Returns
    (kept neighbours, their unrounded weights, cn_weights)."""
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
    return nn, raw, cn_weights


def near_ties(w, rel=1e-9):
    """Whether two consecutive weights of ``w`` are equal to ``rel``: their order is then qhull's."""
    return any(abs(a - b) <= rel * max(abs(a), abs(b)) for a, b in zip(w[:-1], w[1:]))
