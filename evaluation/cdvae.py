"""CDVAE's generation metrics, as txie-93/cdvae ``scripts/compute_metrics.py`` (``Crystal``,
``GenEval``) and ``scripts/eval_utils.py`` compute them (commit f857f598d6f6cca5dc1ea0582d228f12dcc2c2ea):

* validity: structural (the distance matrix with its diagonal padded, every distance at
  least 0.5 A, and volume at least 0.1 A^3: ``structure_validity``), compositional (the
  SMACT charge-neutrality and Pauling test of ``eval_utils.smact_validity``: elements in
  atomic-number order, counts divided by their gcd, one element or all metals valid),
  both; over every submitted structure (unreadable rows and cells outside the row checks
  count as invalid, without fingerprints);
* COV-R / COV-P (``compute_cov``): per structure the CrystalNN "ops" site fingerprints
  averaged (61 numbers; the fast implementation of ``crystalnn.py``, equal to matminer's)
  and the matminer magpie ``ElementProperty`` of the composition scaled by CDVAE's
  ``CompScalerMeans``/``CompScalerStds`` (NaN -> 0); recall = fraction of reference
  structures with a generated one within both cutoffs, precision = generated structures
  within both cutoffs of some reference one over all generated; cutoffs per dataset
  (:data:`dismai_data.tasks.CDVAE_COV_CUTOFFS`: Perov-5 and Carbon-24 0.2 / 4);
* Wasserstein distances of density and number of elements (``scipy.stats
  .wasserstein_distance``), valid structures vs the reference split. CDVAE draws 1000
  valid structures at random (unseeded) for these; here every valid structure is used.
"""

from __future__ import annotations

import itertools
import warnings
from collections import Counter
from functools import lru_cache

import numpy as np

from dismai_data.structure import row_to_structure

#: cdvae/common/constants.py (same commit): the magpie feature scaler of CDVAE's evaluation.
COMP_SCALER_MEANS = np.array([
    21.194441759304013, 58.20212663122281, 37.0076848719188, 36.52738520455582, 13.350626389725019,
    29.468922184630255, 28.71735137747704, 78.8868535524408, 50.16950217496375, 59.56764743604155,
    19.020429484306277, 61.335572740454325, 47.14515893344343, 141.75135923307818, 94.60620029962553,
    85.95794070476977, 34.07300576173523, 68.06189371516912, 637.9862061297893, 1817.2394155466848,
    1179.2532094169414, 1127.2743149568837, 431.51034284549826, 909.1060025135899, 3.7744320927984534,
    13.673707104881585, 9.899275012083132, 9.620186927095652, 3.8426065581251856, 9.96950217496375,
    3.305461575640406, 5.483035282745288, 2.1775737071048815, 4.215114560306594, 0.8206087101824266,
    3.732092798453359, 109.16732721121315, 179.5570323827936, 70.38970517158047, 136.0978305229613,
    27.027545809538527, 119.16713388110198, 1.2721433060967857, 2.4614001837260617, 1.1892568776289631,
    1.9844483610247092, 0.4691462290494881, 2.100143582306204, 1.4829869502174964, 1.9899951667472209,
    0.5070082165297245, 1.7956250375970633, 0.2056251946617602, 1.745867568873852, 0.05650072498791687,
    2.3618656355727405, 2.3053649105848235, 1.2829636137262992, 0.9995555685850794, 1.5150314161430642,
    0.7731271145480909, 7.4648139197680035, 6.691686805219913, 4.010677272036105, 2.612307566507693,
    3.303528274528758, 0.2739487675205413, 5.889753504108265, 5.615804736587724, 2.3244356612494683,
    2.1426251769710905, 1.4464475592073465, 4.739246012566457, 14.578395360077332, 9.839149347510874,
    9.413701584608935, 3.537059747455868, 8.550410826486225, 0.008119864668922184, 0.43286611889801835,
    0.4247462542290962, 0.16687837041055423, 0.17139889490813626, 0.10898985016916385, 0.06283228612856452,
    2.6573707104881583, 2.594538424359594, 1.219602938224228, 1.0596390454742999, 1.1120831319478008,
    0.14842919284678588, 3.8473658772353794, 3.6989366843885936, 1.4541605082183982, 1.3862277372859781,
    0.8018849685838569, 0.03542774287095215, 2.4474625422909617, 2.4120347994200095, 0.7745217539010397,
    0.9145812330586208, 0.3198646689221846, 1.552730787820203, 6.910681488641856, 5.357950700821653,
    3.615163570754227, 1.9072256165179793, 2.6702271628806185, 14.608536589568727, 34.83222477045747,
    20.223688180890715, 22.47901710732293, 7.17674504190757, 18.641837024143584, 0.009066988883518605,
    0.9185191396809959, 0.9094521507974755, 0.4368550481994018, 0.38905942883427047, 0.48375558240695804,
    0.0012985909686158003, 0.21708593995837092, 0.21578734898975546, 0.08167977375391729, 0.08155386250705281,
    0.06036340747305611, 116.32010633156113, 217.5905751570807, 101.27046882551957, 162.87154200548844,
    41.920624308665566, 136.4664572257129,
])
COMP_SCALER_STDS = np.array([
    16.35781741152948, 20.189540126474725, 20.516298414514758, 16.816765336550194, 7.966591328222124,
    22.270791076753067, 21.802116630115243, 12.804546460581966, 24.756629388687983, 13.930306216047477,
    10.214535652334533, 27.801612936980938, 39.74031558353379, 54.269739685575814, 53.70466607591569,
    42.852342044453444, 20.78341194242935, 56.28783510219931, 563.8004405882157, 732.0722574247563,
    736.2122907972664, 606.351603075103, 272.62646060896407, 810.6156779688841, 3.0362262146833428,
    3.2075174256751606, 4.0633818989245665, 2.9738244769894764, 1.7805586029644034, 5.643243225066782,
    1.1994336274579853, 0.8939013979423364, 1.2297581799896975, 1.0066021334519983, 0.49129747526397105,
    1.4159553146070951, 31.754756468836774, 28.054241463256226, 38.16336054795611, 25.83485338379922,
    15.388376641904662, 39.67137484594156, 0.31988340032011076, 0.6833658037760536, 0.7464197945553585,
    0.4881349085029781, 0.3176591553643101, 0.8601748146737138, 0.5864801661863596, 0.10048913710210677,
    0.5836289120986499, 0.2811748167435902, 0.2468696279341553, 0.5007375747433073, 0.37237566669029587,
    1.7235989187720187, 1.7058836077743305, 1.1558859351244697, 0.7677842566598179, 1.9203550253462733,
    2.1289400248865182, 3.5326064169848332, 3.708508303762512, 2.8709941136664567, 1.6110681295257014,
    4.310192504023775, 1.6644182118209292, 6.228287671164213, 6.1200848808512305, 3.1986202996110302,
    2.4492978142248867, 4.030497343977163, 3.662028270049814, 6.8192125550358345, 6.614243783887738,
    4.334987449618594, 2.568319610320196, 5.9494890200106925, 0.08974370432893491, 0.4954725441517777,
    0.494304434278516, 0.2309340434963803, 0.2072873961103969, 0.31162647950590266, 0.39805702757060923,
    1.8111691089355726, 1.7973395144505941, 0.9486995373104102, 0.7538753151875139, 1.5233177017753785,
    0.7952606701778913, 3.711190225170556, 3.638721437232604, 1.7171165424006831, 1.4307904413917036,
    2.1047820817622904, 0.49193748323158065, 4.064840532426175, 4.035286619587313, 1.4858577214526643,
    1.5799117659864677, 1.6130080156145745, 1.555249156140194, 4.776932951077492, 4.569790780459629,
    2.224617778217326, 1.7217507416156546, 2.5969733650703763, 7.215001918238936, 19.252513469778584,
    18.775394044177858, 9.447222764774764, 6.7467931836261235, 11.106825644766616, 0.27206794253092115,
    1.6449321034573106, 1.6236282792648686, 0.8506917026741503, 0.7020945355184042, 1.2281895279350408,
    0.04134438177238229, 0.5508855867341717, 0.5486095551438679, 0.24239297524046477, 0.2127779137935831,
    0.3036750942874694, 80.06063945615361, 21.345794811194104, 80.16475677581042, 52.58533928558554,
    35.40836791039412, 85.980205895116,
])


def _neutral_ratios(ox_states, stoichs, threshold):
    """``(charge balanced?, ratios)`` of ``smact.neutral_ratios``: SMACT 2 (CDVAE's) returned that
    pair, SMACT 4 returns the list of ratios only."""
    import smact

    out = smact.neutral_ratios(ox_states, stoichs=stoichs, threshold=threshold)
    if isinstance(out, tuple) and len(out) == 2 and isinstance(out[0], (bool, np.bool_)):
        return out
    out = list(out)
    return len(out) > 0, out


def smact_valid(atomic_numbers, use_pauling_test: bool = True, include_alloys: bool = True) -> bool:
    """CDVAE's compositional validity of a structure's atoms (``eval_utils.smact_validity`` on the
    elements in atomic-number order and their counts divided by the gcd)."""
    counter = Counter(int(z) for z in atomic_numbers)
    zs = sorted(counter)
    counts = np.array([counter[z] for z in zs])
    counts = (counts / np.gcd.reduce(counts)).astype("int").tolist()
    return _smact_valid(tuple(zs), tuple(counts), use_pauling_test, include_alloys)


@lru_cache(maxsize=65536)
def _smact_valid(zs: tuple, counts: tuple, use_pauling_test: bool, include_alloys: bool) -> bool:
    import smact
    from pymatgen.core import Element
    from smact.screening import pauling_test

    counts = list(counts)
    symbols = tuple(Element.from_Z(z).symbol for z in zs)
    if len(set(symbols)) == 1:
        return True
    if include_alloys and all(s in smact.metals for s in symbols):
        return True
    space = smact.element_dictionary(symbols)
    elems = [e[1] for e in space.items()]
    electronegs = [e.pauling_eneg for e in elems]
    threshold = np.max(counts)
    for ox_states in itertools.product(*[e.oxidation_states for e in elems]):
        cn_e, cn_r = _neutral_ratios(ox_states, [(c,) for c in counts], threshold)
        if not cn_e:
            continue
        ok = True
        if use_pauling_test:
            try:
                ok = pauling_test(ox_states, electronegs)
            except TypeError:  # no electronegativity data: accepted, as CDVAE does
                ok = True
        if ok and len(cn_r) > 0:
            return True
    return False


def structure_valid(structure, cutoff: float = 0.5) -> bool:
    """CDVAE's ``structure_validity`` (and ``Crystal.get_structure``'s volume rule)."""
    if structure.volume < 0.1:
        return False
    dm = structure.distance_matrix + np.diag(np.ones(len(structure)) * (cutoff + 10.0))
    return not (dm.min() < cutoff or structure.volume < 0.1)


_MAGPIE = None


def magpie_available() -> bool:
    """matminer is installed by ``make setup`` (``--no-deps``), not by ``pip install``: without it
    there are no magpie features and no COV."""
    try:
        from matminer.featurizers.composition.composite import ElementProperty  # noqa: F401
    except ImportError:
        return False
    return True


def magpie(structure) -> np.ndarray | None:
    """matminer ``ElementProperty.from_preset("magpie")`` of the structure's composition (132);
    None without matminer."""
    global _MAGPIE
    from pymatgen.core import Composition

    if _MAGPIE is None:
        if not magpie_available():
            return None
        from matminer.featurizers.composition.composite import ElementProperty

        _MAGPIE = ElementProperty.from_preset("magpie")
    counter = Counter(int(z) for z in structure.atomic_numbers)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.asarray(_MAGPIE.featurize(Composition(counter)), dtype=float)


def crystal_features(row) -> dict:
    """Validity, fingerprints, density and number of elements of one row (CDVAE ``Crystal``)."""
    from .crystalnn import fingerprints

    s = row_to_structure(row)
    out = {"struct_valid": structure_valid(s), "comp_valid": smact_valid(s.atomic_numbers),
           "density": float(s.density), "nelements": len(set(s.species)), "comp_fp": None, "struct_fp": None}
    out["valid"] = out["struct_valid"] and out["comp_valid"]
    out["comp_fp"] = magpie(s)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out["struct_fp"] = fingerprints(s).mean(axis=0)
    except Exception:  # CDVAE: a structure whose fingerprint fails is invalid, without fingerprints
        out.update(valid=False, comp_fp=None, struct_fp=None)
    return out


def crystal_validity(row) -> bool:
    """CDVAE/DiffCSP ``Crystal.valid`` of one row: structural and compositional validity, and
    the CrystalNN fingerprints computable (a structure whose fingerprint raises is invalid)."""
    from .crystalnn import fingerprints

    s = row_to_structure(row)
    if not (structure_valid(s) and smact_valid(s.atomic_numbers)):
        return False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fingerprints(s)
    except Exception:
        return False
    return True


def scale_comp(fps) -> np.ndarray:
    """CDVAE's ``CompScaler.transform`` (NaN -> 0)."""
    x = np.array(fps).astype(float)
    t = (x - COMP_SCALER_MEANS) / COMP_SCALER_STDS
    return np.where(np.isnan(t), 0.0, t)


def coverage(gen: list[dict], gt: list[dict], struc_cutoff: float, comp_cutoff: float,
             num_gen: int | None = None) -> dict:
    """``compute_cov``: COV-R, COV-P and the mean minimum distances."""
    from scipy.spatial.distance import cdist

    num_gen = len(gen) if num_gen is None else num_gen
    ok = [g for g in gen if g["struct_fp"] is not None and g["comp_fp"] is not None]
    if not ok or not gt:
        return {"cov_recall": None, "cov_precision": None}
    s = cdist(np.array([g["struct_fp"] for g in ok]), np.array([g["struct_fp"] for g in gt]))
    c = cdist(scale_comp([g["comp_fp"] for g in ok]), scale_comp([g["comp_fp"] for g in gt]))
    recall = np.mean(np.logical_and(s.min(axis=0) <= struc_cutoff, c.min(axis=0) <= comp_cutoff))
    precision = np.sum(np.logical_and(s.min(axis=1) <= struc_cutoff, c.min(axis=1) <= comp_cutoff)) / num_gen
    return {"cov_recall": float(recall), "cov_precision": float(precision),
            "amsd_recall": float(np.mean(s.min(axis=0))), "amsd_precision": float(np.mean(s.min(axis=1))),
            "amcd_recall": float(np.mean(c.min(axis=0))), "amcd_precision": float(np.mean(c.min(axis=1)))}


def cdvae_metrics(gen_rows: list[dict | None], ref_rows: list[dict], dataset: str, *, workers: int = 1,
                  scheduler=None) -> dict:
    """CDVAE generation metrics of ``gen_rows`` (one entry per submitted structure; None for a
    row that could not be read or scored) against the reference split ``ref_rows``."""
    from scipy.stats import wasserstein_distance

    from dismai_data.tasks import CDVAE_COV_CUTOFFS

    from .parallel import parallel_map
    from .result import Metric

    feats = parallel_map(crystal_features, [r for r in gen_rows if r is not None], workers=workers,
                         scheduler=scheduler, desc="CDVAE features (generated)")
    n_bad = sum(r is None for r in gen_rows)
    gen = feats + [{"struct_valid": False, "comp_valid": False, "valid": False, "struct_fp": None,
                    "comp_fp": None, "density": None, "nelements": None}] * n_bad
    n = len(gen)
    m: dict[str, Metric] = {}
    ref = "txie-93/cdvae scripts/compute_metrics.py"
    for key, label in (("struct_valid", "structural"), ("comp_valid", "compositional"), ("valid", "both")):
        v = float(np.mean([g[key] for g in gen])) if n else None
        m[f"cdvae_validity_{'all' if key == 'valid' else key.split('_')[0]}"] = Metric(
            value=v, n=n, description=f"CDVAE {label} validity over every submitted structure ({ref} Crystal)")
    valid = [g for g in gen if g["valid"]]
    cut = CDVAE_COV_CUTOFFS.get(dataset)
    gt = None
    if cut is not None or valid:
        gt = parallel_map(crystal_features, ref_rows, workers=workers, scheduler=scheduler,
                          desc="CDVAE features (reference split)")
    if cut is not None and not magpie_available():
        cut = None
        note = "COV skipped: matminer (magpie features) is not installed (make setup installs it)"
    else:
        note = None
    if cut is not None:
        cov = coverage(gen, gt, cut["struc"], cut["comp"])
        m["cdvae_cov_recall"] = Metric(value=cov["cov_recall"], n=len(ref_rows),
                                       description=f"CDVAE COV-R (struct <= {cut['struc']}, comp <= {cut['comp']}; "
                                                   f"{ref} compute_cov)")
        m["cdvae_cov_precision"] = Metric(value=cov["cov_precision"], n=n,
                                          description=f"CDVAE COV-P (struct <= {cut['struc']}, comp <= "
                                                      f"{cut['comp']}; over every submitted structure)")
    if valid and gt:
        m["cdvae_wdist_density"] = Metric(
            value=float(wasserstein_distance([g["density"] for g in valid], [g["density"] for g in gt])),
            n=len(valid), unit="g/cm^3", description="CDVAE: W1 of densities, valid vs reference split (all valid "
                                                     "structures; CDVAE samples 1000 unseeded)")
        m["cdvae_wdist_nelements"] = Metric(
            value=float(wasserstein_distance([g["nelements"] for g in valid], [g["nelements"] for g in gt])),
            n=len(valid), description="CDVAE: W1 of the number of elements, valid vs reference split")
    return {"metrics": m, "settings": {"reference": ref + " @ f857f598d6f6cca5dc1ea0582d228f12dcc2c2ea",
                                       "cov_cutoffs": cut, "wasserstein_sample": "every valid structure",
                                       **({"note": note} if note else {})}}
