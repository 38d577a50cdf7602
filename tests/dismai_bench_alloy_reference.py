"""Copies of the Dismai-Bench alloy reference code, for tests/test_reference_agreement.py only.

Source: ertekin-research-group/Dismai-Bench @ 63939334e30dc505f851c368f278650fb48e724a
  benchmark/alloy/cluster_counts/utils/symop.py   (section "symop"; find_sym adapted: no file I/O)
  benchmark/alloy/cluster_counts/utils/count.py   (section "count", verbatim)
  benchmark/alloy/cluster_counts/utils/main.py    (get_rotated_basis_vectors verbatim; the
                                                   per-structure body of main() in count_structure)
  benchmark/alloy/cluster_counts/utils/POSCAR_fcc_unit
  benchmark/alloy/cluster_counts/analyze_cluster_count.py (counts -> probabilities, probability_row)
  benchmark/alloy/remove_atoms_not_on_lattice_{cryingan,diffcsp}.py (per-structure body, cleanup)
The scripts read files in main() and import each other by bare name, so they cannot be
imported from the product; the product never imports this file.
"""
# flake8: noqa
import copy
import math
import types

import numpy as np
from pymatgen.core import Molecule, Structure
from pymatgen.core.sites import PeriodicSite
from pymatgen.symmetry import analyzer as syman
from pymatgen.symmetry import site_symmetries as symsite

POSCAR_FCC_UNIT = """Fe4
1.0
   3.6555511703502481    0.0000000000000000    0.0000000000000002
   0.0000000000000006    3.6555511703502481    0.0000000000000002
   0.0000000000000000    0.0000000000000000    3.6555511703502481
Fe
4
direct
   0.0000000000000000    0.0000000000000000    0.0000000000000000 Fe
   0.0000000000000000    0.5000000000000000    0.5000000000000000 Fe
   0.5000000000000000    0.0000000000000000    0.5000000000000000 Fe
   0.5000000000000000    0.5000000000000000    0.0000000000000000 Fe
"""

# ----------------------------------------------------------------------------------- symop
def find_sym(lat_in):
    """
    find the site symmetry of a given lattice from input lattice file defined like ATAT
    :param lat_in: lattice file
    :return: list of symmetry operations
    """
    # ADAPTED: the POSCAR is a string here and the text is parsed in memory (the original
    # writes str(pmg_sym) to the file 'sym_out' and reads it back; the parsing below is
    # unchanged). pymatgen's SymmOp repr is no longer its "Rot:\n[[...]]\ntau\n[...]" str,
    # so the ops' str() are joined instead of str(pmg_sym) of the list.
    struct = Structure.from_str(lat_in, fmt="poscar")
    struct = syman.SpacegroupAnalyzer(struct).find_primitive()
    pmg_sym = symsite.get_site_symmetries(struct, 0.1)
    lines = '\n'.join(str(op) for ops in pmg_sym for op in ops).split('\n')
    sym_list = []
    for i in range(len(lines)):
        if ':' in lines[i]:
            s = []
            for j in range(1, 4):
                a = lines[i + j].replace('[', '')
                b = a.replace(']', '')
                c = b.split()
                d = [round(float(c[0]), 5), round(float(c[1]), 5), round(float(c[2]), 5)]
                s.append(d)
            sym_list.append(s)

    return sym_list


def calc_dist(pnt1, pnt2):
    """
    calculate the distance between two point in 3D Cartesian coordinate
    :param pnt1: list
    :param pnt2: list
    :return: dist
    """
    dist = np.linalg.norm(np.array(pnt1) - np.array(pnt2))

    return dist


def check_lateral(clust):
    """
    if the given cluster is equilateral, return 1
    :param clust: a cluster from a cluster list
    :return: boolean
    """
    if len(clust[0]) > 2:
        center_coord = list(np.mean(clust[0], axis=0))
        dist = calc_dist(center_coord, clust[0][0])
        for i in range(1, len(clust[0])):
            if np.abs(dist - calc_dist(center_coord, clust[0][i])) > 0.001:
                return 0
    return 1


def check_uniq(clust, clust_list):
    """
    if a cluster is not present in a cluster list allowing site permutation, return 1
    note that by applying this function, every cluster is a sorted list in terms of cluster site coordinates
    :param clust: a cluster
    :param clust_list: a cluster list
    :return: boolean
    """
    clust[0].sort()
    for uniq_clust in clust_list:
        # uniq_clust[0].sort()
        if uniq_clust[0] == clust[0]:
            return 0
    return 1


def sort_clust_dist(clust):
    """
    for a cluster that is not equilateral, sort the site coordinates in a specific sequence
    :param clust: scaled and symmetry-applied cluster in Cartesian coordinate
    :return: cluster with sorted sites
    """
    size = len(clust[0])
    dist_matr = np.zeros((size, size))
    dist_list = [[]] * size
    for i in range(size):
        for j in range(1, size):
            dist_matr[i][j] = calc_dist(clust[0][i], clust[0][j])
            dist_matr[j][i] = dist_matr[i][j]
        dist_list[i] = list(dist_matr[i])
        dist_list[i].pop(i)
        dist_list[i].sort()
        dist_list[i].append(clust[0][i])
    dist_list.sort()
    for i in range(size):
        clust[0][i] = dist_list[i][size - 1]

    return clust


def sort_coord_dist(coords):
    """
    sort the site coordinates and species in a specific sequence
    e.g.sort the list of [[0.0, 0.0, 0.0, 'Fe'], [1.8, 1.8, 0.0, 'Fe'], [-1.8, 1.8, 0.0, 'Ni']]
    to  [[-1.8, 1.8, 0.0, 'Ni'], [0.0, 0.0, 0.0, 'Fe'], [1.8, 1.8, 0.0, 'Fe']]
    :param coords: scaled and symmetry-applied cluster in Cartesian coordinate
    :return: coordinates of sorted sites
    """
    size = len(coords)
    dist_matr = np.zeros((size, size))
    dist_list = [[]] * size
    site = copy.deepcopy(coords)
    for i in range(size):
        site[i].pop(3)
    for i in range(size):
        for j in range(1, size):
            dist_matr[i][j] = calc_dist(site[i], site[j])
            dist_matr[j][i] = dist_matr[i][j]
        dist_list[i] = list(dist_matr[i])
        dist_list[i].pop(i)
        dist_list[i].sort()
        dist_list[i].append(coords[i])
    dist_list.sort()
    for i in range(size):
        coords[i] = dist_list[i][size - 1]

    return coords


def apply_symop(sym_op, clust):
    """
    apply a symmetry operation to a cluster with one site at origin [0, 0, 0]
    :param sym_op: symmetry operation
    :param clust: cluster from scaled clust_in file in Cartesian coordinate
    :return: cluster after symmetry operation
    """
    symeq_clust = copy.deepcopy(clust)
    for j in range(len(clust[0])):
        clust_site = clust[0][j]
        symeq_clust_site = np.matmul(sym_op, np.array(clust_site).T).T
        symeq_clust[0][j] = np.around(symeq_clust_site, decimals=3).tolist()
    symeq_clust[0].sort(key=lambda x: (x[0], x[1], x[2]))

    return symeq_clust


def find_eq_clust(sym_list, clust):
    """
    find all symmetry-equivalent clusters allowing site permutation for a given cluster
    note that by applying this function, every cluster is a sorted list in terms of cluster site coordinates
    :param sym_list: list of symmetry operations
    :param clust: cluster from scaled clust_in file in Cartesian coordinate
    :return: list of symmetry-equivalent clusters of the given cluster
    """
    symeq_clust_list = []
    if check_lateral(clust):
        vect = np.subtract.reduce([[0, 0, 0], clust[0][0]], axis=0)
        for x in range(len(clust[0])):
            clust[0][x] = np.sum([clust[0][x], vect], axis=0)
        for i in range(len(sym_list)):
            sym_op = np.vstack(sym_list[i])
            symeq_clust = apply_symop(sym_op, clust)
            if check_uniq(symeq_clust, symeq_clust_list):
                symeq_clust_list.append(symeq_clust)
        return symeq_clust_list
    else:
        for j in range(len(clust[0])):
            vect = np.subtract.reduce([[0, 0, 0], clust[0][j]], axis=0)
            for x in range(len(clust[0])):
                clust[0][x] = np.sum([clust[0][x], vect], axis=0)
            for i in range(len(sym_list)):
                sym_op = np.vstack(sym_list[i])
                symeq_clust = apply_symop(sym_op, clust)
                symeq_clust[0].sort()
                symeq_clust_list.append(symeq_clust)
                # if check_uniq(symeq_clust, symeq_clust_list):
                #     symeq_clust_list.append(symeq_clust)
        symeq_clust_list = [x for n, x in enumerate(symeq_clust_list) if x not in symeq_clust_list[:n]]
        for clust in symeq_clust_list:
            sort_clust_dist(clust)

        return symeq_clust_list


def find_eq_spec_seq(spec, clust, pntsym):
    """
    find all equivalent species sequences in a given cluster
    :param spec: input species sequence in list like ['Fe', 'Ni', 'Cr']
    :param clust: site-sorted cluster from symeq_clust_list
    :param pntsym: point symmetry for the cluster
    :return: the first item in the sorted list of equivalent species sequences
    """
    if len(spec) == 1:
        # return str(spec_seq.index(spec[0]))
        return ', '.join(map(str, spec))
    elif len(spec) == 2:
        spec.sort()
        return ', '.join(map(str, spec))
    elif len(spec) >= 3:
        coords = clust[0]
        new_spec_list = []
        new_clust_list = []
        for sym_op in pntsym:
            new_clust = [[]] * len(spec)
            molec = Molecule(spec, coords)
            molec.apply_operation(sym_op)  # apply pnt_sym to get different spec sequence
            for i in range(len(spec)):
                pnt = str(molec[i])
                a = pnt.replace('[', '')
                b = a.replace(']', '')
                c = b.split()
                d = [round(float(c[0]), 5), round(float(c[1]), 5), round(float(c[2]), 5), str(c[3])]
                new_clust[i] = d
            new_clust.sort()  # sort first by coordinates to get rid of repeated spec sequence
            new_clust_list.append(new_clust)
        new_clust_list = [x for n, x in enumerate(new_clust_list) if x not in new_clust_list[:n]]
        for i in range(len(new_clust_list)):
            new_clust = new_clust_list[i]
            sort_coord_dist(new_clust)  # sort by distance to the right spec sequence
            new_spec = []
            for j in range(len(new_clust)):
                new_spec.append(str(new_clust[j][3]))
            new_spec = ', '.join(map(str, new_spec))
            new_spec_list.append(new_spec)
        new_spec_list.sort()
        return new_spec_list[0]


def find_eq_spec_list(spec, clust, pntsym, spec_seq):
    """
    find all equivalent species sequences in a given cluster
    :param spec: input species sequence like []
    :param clust: site-sorted cluster from symeq_clust_list
    :param pntsym: point symmetry for the cluster
    :param spec_seq: species order like ['Fe', 'Ni', 'Cr']
    :return: the sorted list of equivalent species sequences in string like ['0, 1, 0', '0, 0, 1']
    """
    spec = spec.split(', ')
    new_spec_list = []
    if len(spec) == 1:
        new_spec_list = [str(spec_seq.index(spec[0]))]
    elif len(spec) == 2:
        if spec[0] == spec[1]:
            new_spec = []
            for i in range(2):
                new_spec.append(str(spec_seq.index(spec[i])))
            new_spec = ', '.join(map(str, new_spec))
            new_spec_list = [new_spec]
        else:
            spec1 = []
            spec2 = []
            new_spec = copy.deepcopy(spec)
            new_spec.reverse()
            for i in range(2):
                spec1.append(str(spec_seq.index(spec[i])))
                spec2.append(str(spec_seq.index(new_spec[i])))
            spec1 = ', '.join(map(str, spec1))
            spec2 = ', '.join(map(str, spec2))
            new_spec_list = [str(spec1), str(spec2)]
    elif len(spec) >= 3:
        coords = clust[0]
        new_clust_list = []
        for sym_op in pntsym:
            new_clust = [[]] * len(spec)
            molec = Molecule(spec, coords)
            molec.apply_operation(sym_op)  # apply pnt_sym to get different spec sequence
            for i in range(len(spec)):
                pnt = str(molec[i])
                a = pnt.replace('[', '')
                b = a.replace(']', '')
                c = b.split()
                d = [round(float(c[0]), 5), round(float(c[1]), 5), round(float(c[2]), 5), str(c[3])]
                new_clust[i] = d
            new_clust.sort()  # sort first by coordinates to get rid of repeated spec sequence
            new_clust_list.append(new_clust)
        new_clust_list = [x for n, x in enumerate(new_clust_list) if x not in new_clust_list[:n]]
        for i in range(len(new_clust_list)):
            new_spec = []
            new_clust = new_clust_list[i]
            sort_coord_dist(new_clust)  # sort by distance to the right spec sequence
            for j in range(len(new_clust)):
                new_spec.append(str(spec_seq.index(new_clust[j][3])))
            new_spec_list.append(', '.join(map(str, new_spec)))
    new_spec_list = [x for n, x in enumerate(new_spec_list) if x not in new_spec_list[:n]]
    new_spec_list.sort()
    return new_spec_list


symop = types.SimpleNamespace(find_eq_spec_seq=find_eq_spec_seq, find_eq_clust=find_eq_clust, find_sym=find_sym)
_symop_calc_dist = calc_dist

# ----------------------------------------------------------------------------------- count
def apply_basis(str_list):
    """
    apply lattice vector to get Cartesian coordinate for lattice points
    :param str_list: list of structure metadata generated by parse_str function
    :return: str_list with 'LatPnt' in Cartesian coordinate
    """
    cart_str_list = copy.deepcopy(str_list)
    for i in range(len(str_list)):
        str_dict = str_list[i]
        for j in range(len(str_dict['LatPnt'])):
            cart_str_list[i]['LatPnt'][j] = np.dot(np.transpose(str_dict['LatPnt'][j]), str_dict['LatVec'])

    return cart_str_list


def calc_dist(pnt1, pnt2):
    """
    calculate the distance between two point in 3D Cartesian coordinate
    :param pnt1: list
    :param pnt2: list
    :return: dist
    """
    dist = np.linalg.norm(np.array(pnt1) - np.array(pnt2))

    return dist


def scale_clust(clust):
    """
    Transform from unscaled Cartesian coordinates to scaled ones for a given cluster
    :param clust: cluster from clust_list in the format of [[coord_list], [dist_scale], [spin_flag]]
    :return: clusters with scaled coordinates
    """
    size = len(clust[0])
    max_dist = 0
    scaled_clust = copy.deepcopy(clust)
    if clust[1][0] == 1:
        return scaled_clust
    else:
        for i in range(size):
            for j in range(i, size):
                dist = calc_dist(clust[0][i], clust[0][j])
                if max_dist < dist:
                    max_dist = dist
        if max_dist != 0:
            scale = max(clust[1]) / max_dist
        else:
            scale = 0
        for i in range(size):
            for j in range(3):
                scaled_clust[0][i][j] = scale * clust[0][i][j]
        scaled_clust[1][0] = 1
        return scaled_clust


def frac_to_cart(frac_coord, basis):
    """
    Transform from fraction/direct coord to Cartesian coord for a given structure
    :param frac_coord: list in the format of [0.5, 0.5, 0.5]
    :param basis: list in the format of [[0.0, 0.0, 3.6], [0.0, 3.6, 0.0], [3.6, 0.0, 0.0]]
    :return: cart_coord
    """
    frac_coord = np.array(frac_coord)
    trans_matr = np.vstack(basis).T
    cart_coord = np.matmul(trans_matr, frac_coord.T).T

    return list(cart_coord)


def cart_to_frac(cart_coord, basis):
    """
    transform from Cartesian coordinate to direct/fraction coordinate
    :param cart_coord: list in the format of [1.8, 1.8, 1.8]
    :param basis: list in the format of [[0.0, 0.0, 3.6], [0.0, 3.6, 0.0], [3.6, 0.0, 0.0]]
    :return: frac_coord
    """
    cart_coord = np.array(cart_coord)
    trans_matr = np.vstack(basis).T
    inv_matr = np.linalg.inv(trans_matr)
    frac_coord = np.matmul(inv_matr, cart_coord.T).T

    return list(frac_coord)


def apply_pbc(clust, str_dict):
    """
    Apply periodic boundary conditions to the sites of a given cluster
    :param clust: containing scaled Cartesian coordinates
    :param str_dict: containing Cartesian coordinates
    :return: frac_clust
    """
    size = len(clust[0])
    pbc_clust = copy.deepcopy(clust)
    for i in range(size):
        pbc_clust[0][i] = cart_to_frac(clust[0][i], str_dict['LatVec'])
        pbc_clust[0][i] = np.around(pbc_clust[0][i], decimals=3)
        for j in range(3):
            pbc_clust[0][i][j] = pbc_clust[0][i][j] % 1
        pbc_clust[0][i] = frac_to_cart(pbc_clust[0][i], str_dict['LatVec'])

    return pbc_clust


def find_spec(site_idx, clust, clust_ref, struc, str_dict, margin):
    """
    find the species on each sites of a given cluster
    :param site_idx: Index of site the cluster is centered on
    :param clust: cluster after rotation and applying PBC
    :param clust_ref: cluster before rotation (no PBC)
    :param struc: Pymatgen Structure object
    :param str_dict: Dictionary containing information about the structure
    :param margin: margin of error for distance between cluster coordinate and 
                   actual site coordinate (unit: Angstrom) 
    :return: spec_list: a list of species in the same sequence of the cluster sites
    """
    spec = [None] * len(clust[0])
    for i in range(len(clust[0])):
        if clust_ref[0][i] == [0., 0., 0.]:
            # Simply take the species of the site atom
            spec[i] = struc[site_idx].specie.symbol
        else:
            # Find the closest atom to the designated cluster coordinate
            clust_coord = np.array(clust[0][i]) + 1e-06   # Pymatgen's get_neighbor_list() fails if cluster coord contains exactly 0.
            clust_site = PeriodicSite('H', clust_coord, struc.lattice,
                                      coords_are_cartesian=True)
            _ , struc_site_all, _ , dist_all = struc.get_neighbor_list(margin, [clust_site])
            n_sites = len(struc_site_all)
            if n_sites > 0:
                spec[i] = struc[struc_site_all[dist_all.argmin()]].specie.symbol
            #if n_sites == 1:   # there should only be 1 site found within margin of error
            #    spec[i] = struc[struc_site_all[0]].specie.symbol
            #elif n_sites > 1:
            #    print('More than 1 atom found near cluster coordinate for '
            #          'Structure index {}, please check!'.format(str_dict['StrIdx']))
    if None in spec:
        spec_list = ['empty']
    else:
        spec_list = copy.deepcopy(spec)

    return spec_list


def find_spec_and_check_vac(site_idx, clust, clust_ref, struc, str_dict, margin,
                            has_vac):
    """
    find the species on each sites of a given cluster, 
    and counts the number of empty clusters
    :param site_idx: Index of site the cluster is centered on
    :param clust: cluster after rotation and applying PBC
    :param clust_ref: cluster before rotation (no PBC)
    :param struc: Pymatgen Structure object
    :param str_dict: Dictionary containing information about the structure
    :param margin: margin of error for distance between cluster coordinate and 
                   actual site coordinate (unit: Angstrom) 
    :param has_vac: Boolean of whether the structure has vacancy/vacancies
    :return: spec_list: a list of species in the same sequence of the cluster sites
    :return: has_vac: Boolean of whether the structure has vacancy/vacancies
    """
    spec = [None] * len(clust[0])
    for i in range(len(clust[0])):
        if clust_ref[0][i] == [0., 0., 0.]:
            # Simply take the species of the site atom
            spec[i] = struc[site_idx].specie.symbol
        else:
            # Find the closest atom to the designated cluster coordinate
            clust_coord = np.array(clust[0][i]) + 1e-06   # Pymatgen's get_neighbor_list() fails if cluster coord contains exactly 0.
            clust_site = PeriodicSite('H', clust_coord, struc.lattice,
                                      coords_are_cartesian=True)
            _ , struc_site_all, _ , dist_all = struc.get_neighbor_list(margin, [clust_site])
            n_sites = len(struc_site_all)
            if n_sites > 0:
                spec[i] = struc[struc_site_all[dist_all.argmin()]].specie.symbol
            #if n_sites == 1:   # there should only be 1 site found within margin of error
            #    spec[i] = struc[struc_site_all[0]].specie.symbol
            #elif n_sites > 1:
            #    print('More than 1 atom found near cluster coordinate for '
            #          'Structure index {}, please check!'.format(str_dict['StrIdx']))
            elif n_sites == 0:
                has_vac = True
    if None in spec:
        spec_list = ['empty']
    else:
        spec_list = copy.deepcopy(spec)

    return spec_list, has_vac


def find_and_fill_vac(clust, clust_ref, struc_fill, str_dict, margin):
    """
    looks for vacancies and fills in the vacancies with dummy atoms
    :param clust: cluster after rotation and applying PBC
    :param clust_ref: cluster before rotation (no PBC)
    :param struc_fill: Pymatgen Structure object for filling in vacancies
    :param str_dict: Dictionary containing information about the structure
    :param margin: margin of error for distance between cluster coordinate and 
                   actual site coordinate (unit: Angstrom)
    :return: struc_fill: Pymatgen Structure object with filled in vacancies
    :return: fill_count: number of vacancies filled in
    """
    fill_count = 0
    for i in range(len(clust[0])):
        if clust_ref[0][i] == [0., 0., 0.]:
            # Ignore the site atom
            pass
        else:
            # Find the closest atom to the designated cluster coordinate
            clust_coord = np.array(clust[0][i]) + 1e-06   # Pymatgen's get_neighbor_list() fails if cluster coord contains exactly 0.
            clust_site = PeriodicSite('H', clust_coord, struc_fill.lattice,
                                      coords_are_cartesian=True)
            _ , struc_site_all, _ , dist_all = struc_fill.get_neighbor_list(margin, [clust_site])
            n_sites = len(struc_site_all)
            if n_sites == 0:   # Vacancy found
                struc_fill.append('H', clust_coord, coords_are_cartesian=True)
                fill_count += 1
            #elif n_sites > 1:
            #    print('When counting vacancies, more than 1 atom found near cluster coordinate {} '
            #          'for Structure index {}, please check!'.format(clust_coord, str_dict['StrIdx']))

    return struc_fill, fill_count


def find_spin(clust, str_dict):
    """
    find the species on each sites of a given cluster
    :param clust: containing Cartesian coordinate after applying PBC
    :param str_dict: containing Cartesian coordinates
    :return: spin product of all cluster sites
    """
    spin = np.zeros(len(clust[0]))
    for i in range(len(clust[0])):
        dist = 0.2
        for j in range(len(str_dict['LatPnt'])):
            new_dist = np.sum(np.abs(np.subtract(clust[0][i], str_dict['LatPnt'][j])))
            if new_dist < dist:
                dist = new_dist
                spin[i] = str_dict['Spin'][j]
    spin_value = math.prod(spin)

    return spin_value


def count_clusters(symeq_clust_list, symeq_clust_rot_list, pntsym_list, 
                   str_dict, struc, clust_list, margin):
    """
    count the number of each cluster for each structure with single lattice
    :param symeq_clust_list: list of symmetry equivalent clusters
    :param symeq_clust_rot_list: list of rotated symmetry equivalent clusters
    :param pntsym_list: list of point symmetry operation for each symmetry equivalent cluster
    :param str_dict: dictionary of structure
    :param struc: Pymatgen Structure object
    :param clust_list: parsed cluster list
    :param margin: margin of error for distance between cluster coordinate and 
                   actual site coordinate (unit: Angstrom) 
    :return: count_list: counts of clusters
    :return: has_vac: Boolean of whether the structure has vacancy/vacancies
    """
    has_vac = False   # Indicates whether the structure has vacancy/vacancies
    count_list = copy.deepcopy(clust_list)
    for i in range(len(clust_list)):
        count_dict = {}
        orig_clust = clust_list[i]
        symeq_clust = symeq_clust_rot_list[i]
        multiplicity = len(symeq_clust)
        count_list[i].append({'Multiplicity': int(multiplicity/len(orig_clust[0]))})
        for j in range(len(str_dict['LatPnt'])):
            for k in range(multiplicity):
                old_clust = symeq_clust[k]
                new_clust = copy.deepcopy(old_clust)   # centered around str_dict['LatPnt'][j]
                for x in range(len(old_clust[0])):
                    new_clust[0][x] = np.sum([old_clust[0][x], str_dict['LatPnt'][j]], axis=0)
                pbc_clust = apply_pbc(new_clust, str_dict)
                if i == 1 and has_vac == False:   # 1st NN dimers, check for vacancies
                    spec, has_vac = find_spec_and_check_vac(j, pbc_clust, old_clust, struc, 
                                                            str_dict, margin, has_vac)
                else:
                    spec = find_spec(j, pbc_clust, old_clust, struc, str_dict, margin)
                if spec != ['empty']:
                    # find the only true equivalent sequence
                    spec = symop.find_eq_spec_seq(list(spec), symeq_clust_list[i][k],
                                                  pntsym_list[i][k])
                    if pbc_clust[2][0] == 0:  # chem term
                        if str(spec) in count_dict.keys():
                            count_dict[str(spec)] += 1
                        else:
                            count_dict[str(spec)] = 1
                    elif pbc_clust[2][0] == 1:  # spin term
                        spin = find_spin(pbc_clust, str_dict)
                        if str(spec) in count_dict.keys():
                            count_dict[str(spec)] += spin
                        else:
                            count_dict[str(spec)] = spin
        for keys in count_dict:
            values = count_dict[keys]
            count_dict[keys] = np.around(values/(str_dict['AtomSum']*len(orig_clust[0])), decimals=5)
        count_list[i].append(count_dict)        

    return count_list, has_vac


def count_vac(symeq_clust_rot_list, str_dict, struc, margin):
    """
    Counts the number of vacancies in the structure. It does so by going through
    1st nearest neighbor pairs, counting the number of vacancies, filling in 
    those vacancies in a dummy structure, then repeat until all vacancies are filled in.
    :param symeq_clust_rot_list: list of rotated symmetry equivalent clusters
    :param str_dict: dictionary of structure
    :param struc: Pymatgen Structure object
    :param margin: margin of error for distance between cluster coordinate and 
                   actual site coordinate (unit: Angstrom) 
    :return: vac_count: number of vacancies in the structure
    """
    vac_count = 0   # Initialize vacancy count for the structure
    struc_fill = struc.copy()   # Structure for filling in the vacancies
    symeq_clust = symeq_clust_rot_list[1]
    multiplicity = len(symeq_clust)
    fill_count = 999   # Initialize number of vacancies filled in
    while fill_count != 0:
        for j in range(len(str_dict['LatPnt'])):
            for k in range(multiplicity):
                old_clust = symeq_clust[k]
                new_clust = copy.deepcopy(old_clust)   # centered around str_dict['LatPnt'][j]
                for x in range(len(old_clust[0])):
                    new_clust[0][x] = np.sum([old_clust[0][x], str_dict['LatPnt'][j]], axis=0)
                pbc_clust = apply_pbc(new_clust, str_dict)
                struc_fill, fill_count = find_and_fill_vac(pbc_clust, old_clust, struc_fill, 
                                                           str_dict, margin)
                vac_count += fill_count
    
    return vac_count    


def count_spin_pair(symeq_clust_list, pntsym_list, str_list, clust_list):
    """
    count the number of each cluster for each structure with single lattice
    :param symeq_clust_list: list of symmetry operation based on the input lattice file defined like ATAT
    :param pntsym_list: list of point symmetry operation for each symmetry equivalent cluster
    :param str_list: parsed DFT data list
    :param clust_list: parsed cluster list
    :return: list of the count number (count_list)
    """
    str_list = apply_basis(str_list)  # transform str from direct coord to Cartesian coord
    count_list_all = []
    for i in range(len(clust_list)):
        if clust_list[i][2][0] == 1:
            count_dict = {}
            for str_dict in str_list:
                symeq_clust = symeq_clust_list[i]
                multiplicity = len(symeq_clust)
                for j in range(len(str_dict['LatPnt'])):
                    for k in range(multiplicity):
                        old_clust = symeq_clust[k]
                        vect = np.subtract.reduce([str_dict['LatPnt'][j], [0, 0, 0]], axis=0)
                        new_clust = copy.deepcopy(old_clust)
                        for x in range(len(old_clust[0])):
                            new_clust[0][x] = np.sum([old_clust[0][x], vect], axis=0)
                        pbc_clust = apply_pbc(new_clust, str_dict)
                        spec = find_spec(pbc_clust, str_dict)
                        if spec != ['empty']:
                            spec = symop.find_eq_spec_seq(list(spec), old_clust, pntsym_list[i][k])
                            spin = find_spin(pbc_clust, str_dict)
                            if str(spec) in count_dict.keys():
                                count_dict[str(spec)][int(spin+1)] += 1
                            else:
                                count_dict[str(spec)] = [0, 0, 0]
                                count_dict[str(spec)][int(spin + 1)] = 1
            count_list_all.append([i, count_dict])

    return count_list_all


# ----------------------------------------------------------------------------------- main.py
def get_rotated_basis_vectors(struc, struc_idx, margin=0.4):
    """
    Gets the basis vectors in the orientation of a rotated FCC structure

    Parameters
    ----------
    struc : Pymatgen Structure object
    struc_idx: Index number of structure
    margin : Bond distance margin of error (unit: Angstrom) for determining 2nd nearest neighbors;
             an Exception will be raised if all six 2nd nearest neighbors are not within margin

    Returns
    -------
    basis_rot: 3x3 NumPy array of basis vectors

    """
    done = False
    atom_idx = 0   # Initialize center atom index for calculating basis vectors
    # Iterate over all atoms as the center atom until basis vectors are obtained 
    while not done:
        if atom_idx >= len(struc):
            raise Exception('Basis vectors cannot be determined for Structure index {}'.format(struc_idx))
        # Get neighbor bond distances up to 2nd nearest neighbors
        nb_all = struc.get_neighbors(struc[atom_idx], 3.6+margin)
        dist_all = []
        for nb in nb_all:
            dist_all.append(struc[atom_idx].distance_from_point(nb.coords))
        dist_all = np.array(dist_all)
        # Filter 2nd nearest neighbors with bond distance between 3.6-margin and 3.6+margin
        idx_filter = np.where(dist_all >= 3.6-margin)[0]
        if len(idx_filter) == 6:   # Correct number of 2nd nearest neighbors, try to get basis vectors
            # Sort 2nd nearest neighbors based on how much its bond distance deviates from 3.6
            dist_2nn = dist_all[idx_filter]
            dist_2nn_error = np.abs(dist_2nn - 3.6)
            idx_filter_sorted = idx_filter[dist_2nn_error.argsort()]
            nb_2nn = [nb_all[i] for i in idx_filter_sorted]
            
            # Get the first a axis
            a_new = nb_2nn[0].coords - struc[atom_idx].coords
            a_new /= np.linalg.norm(a_new)
            # Iterate neighbors to find a perpendicular vector (b axis)
            for idx_nb in range(1, 6):
                b_new = nb_2nn[idx_nb].coords - struc[atom_idx].coords
                b_new /= np.linalg.norm(b_new)
                ab_angle = np.arccos(np.dot(a_new, b_new))
                ab_angle_error = np.abs(ab_angle - np.pi/2)   # Deviation of angle from 90 degrees
                if ab_angle_error <= 0.0175:   # a and b axes are perpendicular enough, accept this basis
                    # Get the third c axis using cross product
                    c_new = np.cross(a_new, b_new)
                    basis_rot = np.array([a_new, b_new, c_new])
                    done = True
                    break
        # Did not get basis vectors using this atom, move on to the next atom
        atom_idx += 1
        
    return basis_rot



def setup_clusters():
    """main() up to the counting loop: the symmetry-equivalent clusters of the 8 dimer clusters."""
    clust_list = [
                    [ [ [0, 0, 0] ], [0], [0] ],
                    [ [ [0, 0, 0], [0.5, 0.5, 0] ], [2.545584], [0] ],
                    [ [ [0, 0, 0], [1, 0, 0] ], [3.6], [0] ],
                    [ [ [0, 0, 0], [1, 0.5, 0.5] ], [4.409082], [0] ],
                    [ [ [0, 0, 0], [1, 1, 0] ], [5.091169], [0] ],
                    [ [ [0, 0, 0], [1.5, 0.5, 0] ], [5.6921], [0] ],
                    [ [ [0, 0, 0], [1, 1, 1] ], [6.235383], [0] ],
                    [ [ [0, 0, 0], [1.5, 1, 0.5] ], [6.734983], [0] ],
                    [ [ [0, 0, 0], [0.5, 0.5, 0], [0, 0.5, 0.5] ], [2.545584], [0] ],
                    [ [ [0, 0, 0], [0.5, 0.5, 0], [1, 0, 0] ], [3.6], [0]],
                    [ [ [0, 0, 0], [0.5, 0, 0.5], [1, 0.5, 0.5] ], [4.409082], [0] ],
                    [ [ [0, 0, 0], [0, 0.5, 0.5], [1, 0.5, 0.5] ], [4.409082], [0] ],
                    [ [ [0, 0, 0], [0.5, -0.5, 0], [1, 0.5, 0.5] ], [4.409082], [0] ],
                    [ [ [0, 0, 0], [0, 1, 0], [1, 0.5, 0.5] ], [4.409082], [0] ],
                    [ [ [0, 0, 0], [0.5, -0.5, 1], [1, 0.5, 0.5] ], [4.409082], [0] ],
                    [ [ [0, 0, 0], [1, 1, 0], [0.5, 0.5, 0] ], [5.091169], [0] ],
                    [ [ [0, 0, 0], [1, 1, 0], [1, 0.5, 0.5] ], [5.091169], [0] ],
                    [ [ [0, 0, 0], [1, 1, 0], [1, 0, 0] ], [5.091169], [0] ],
                    [ [ [0, 0, 0], [1, 1, 0], [0.5, 0.5, 1] ], [5.091169], [0] ],
                    [ [ [0, 0, 0], [1, 1, 0], [1, 0, 1] ], [5.091169], [0] ],
                    [ [ [0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5] ], [2.54558], [0] ]
                 ]
    clust_list = clust_list[:8]   # Use dimers only
    sym_list = symop.find_sym(POSCAR_FCC_UNIT)
    symeq_clust_list = []
    for orig_clust in clust_list:
        orig_clust = scale_clust(orig_clust)  # transform to scaled Cartesian coord
        symeq_clust_list.append(symop.find_eq_clust(sym_list, orig_clust))
    spec_pntsym_list = []
    for symeq_clust in symeq_clust_list:
        if len(symeq_clust[0][0]) <= 2:
            spec_pntsym_list.append([[None]] * len(symeq_clust))
        else:
            raise AssertionError("dimers only")
    return symeq_clust_list, spec_pntsym_list


def count_structure(struc, struc_idx, symeq_clust_list, spec_pntsym_list, margin=0.8):
    """The body of main()'s loop over structures (utils/main.py), for one pymatgen Structure."""
    basis_rot = get_rotated_basis_vectors(struc, struc_idx)
    symeq_clust_rot_list = copy.deepcopy(symeq_clust_list)
    for i in range(len(symeq_clust_rot_list)):
        symeq_clust = symeq_clust_rot_list[i]
        for j in range(len(symeq_clust)):
            clust = symeq_clust[j]
            coords = np.array(clust[0])
            norms = np.linalg.norm(coords, axis=1)
            coords_rot = np.matmul(coords, basis_rot)
            norms_rot = np.linalg.norm(coords_rot, axis=1)
            for l in range(len(norms)):
                if norms[l] > 0:
                    coords_rot[l] = coords_rot[l] / norms_rot[l] * norms[l]
            symeq_clust_rot_list[i][j][0] = coords_rot.tolist()
    str_dict = {'StrIdx': struc_idx,
                'LatPnt': struc.cart_coords.tolist(),
                'LatVec': struc.lattice.matrix.tolist(),
                'AtomSum': len(struc)
                }
    new_clust_list = []
    for symeq_clust in symeq_clust_rot_list:
        new_clust_list.append(symeq_clust[0])
    count_list, has_vac = count_clusters(symeq_clust_list, symeq_clust_rot_list, spec_pntsym_list,
                                         str_dict, struc, new_clust_list, margin)
    return count_list, has_vac


def probability_row(count_list):
    """analyze_cluster_count.py: one structure's counts -> (45 probabilities, 45 counts), column order
    0NN Cr Fe Ni, then per shell Cr-Cr Cr-Fe Cr-Ni Fe-Fe Fe-Ni Ni-Ni."""
    keys0 = ['Cr', 'Fe', 'Ni']
    keys = ['Cr, Cr', 'Cr, Fe', 'Cr, Ni', 'Fe, Fe', 'Fe, Ni', 'Ni, Ni']
    counts = []
    for j in range(8):
        cluster_dict = count_list[j][-1]
        ks = keys0 if j == 0 else keys
        assert all(k in ks for k in cluster_dict)
        counts.extend(cluster_dict.get(k, 0.) for k in ks)
    counts = np.array(counts, dtype=float)
    prob = counts.copy()
    multiplicity = [1, 6, 3, 12, 6, 12, 4, 24]
    col_idx = 0
    for j in range(8):
        if j == 0:
            for _ in range(3):
                col_idx += 1
        else:
            for _ in range(6):
                prob[col_idx] /= multiplicity[j]
                col_idx += 1
    return prob, counts


# ------------------------------------------------------------ remove_atoms_not_on_lattice_*.py
def cleanup(struc, struc_ref_ori, translate_ref_lat, margin=0.8):
    """The loop body of remove_atoms_not_on_lattice_cryingan.py (translate_ref_lat=False) and
    _diffcsp.py (True) for one pymatgen Structure: (clean Structure, vac_count)."""
    from pymatgen.io.ase import AseAtomsAdaptor

    ase_adaptor = AseAtomsAdaptor()
    n_atoms_ori = len(struc_ref_ori)
    struc_template = struc_ref_ori.copy()
    struc_template.remove_sites(list(range(len(struc_template))))
    struc_clean = struc_template.copy()
    if translate_ref_lat:
        origin_site = PeriodicSite('H', [1e-06, 1e-06, 1e-06], struc_ref_ori.lattice)
        margin_translate = 5
        _ , struc_site_idx_all, _ , dist_all = struc.get_neighbor_list(margin_translate, [origin_site])
        if len(struc_site_idx_all) > 0:
            struc_site_idx = struc_site_idx_all[dist_all.argmin()]
            struc_ref = ase_adaptor.get_atoms(struc_ref_ori)
            frac_coords = struc_ref.get_scaled_positions()
            frac_coords += struc[struc_site_idx].frac_coords - origin_site.frac_coords
            struc_ref.set_scaled_positions(frac_coords)
            struc_ref.wrap()
            struc_ref = ase_adaptor.get_structure(struc_ref)
        else:
            raise Exception('Atom not found near origin to translate the reference lattice, please increase margin_translate')
    else:
        struc_ref = struc_ref_ori
    for site in struc_ref:
        _ , struc_site_idx_all, _ , dist_all = struc.get_neighbor_list(margin, [site])
        if len(struc_site_idx_all) > 0:
            struc_site_idx = struc_site_idx_all[dist_all.argmin()]
            struc_clean.append(struc[struc_site_idx].specie,
                               site.frac_coords,
                               coords_are_cartesian=False)
    struc_clean = struc_clean.get_sorted_structure()
    struc_clean = ase_adaptor.get_atoms(struc_clean)
    return ase_adaptor.get_structure(struc_clean), n_atoms_ori - len(struc_clean)
