"""Perov-5 and Carbon-24 from the JARVIS-Leaderboard AtomGen benchmark files
(structures only; the upstream splits kept as they are)."""

from __future__ import annotations

from dismai_data.build import DatasetBuild
from dismai_data.io import row_from_poscar

from dismai_data.builders.common import ATOMGEN_SOURCE, SPLITS, parse_all, read_atomgen_split, source_file

BUILDER_VERSION = "1.0.0"
MULTI = True
DESCRIPTION = "Perov-5 / Carbon-24 crystal structures with the JARVIS-Leaderboard AtomGen splits (no parameters)."
PARAMETERS: dict = {}

_SPECS = {
    "perov-5": dict(
        file="perov5/perov5_atomgen_split.json.zip",
        upstream="perov5_heat_ref.json.zip",
        pretty_name="Perov-5",
        counts={"train": 11356, "validation": 3787, "test": 3785},
        summary=(
            "Perov-5: cubic perovskite structures (ABX3 and variants, 5 atoms per cell) from the CDVAE benchmark "
            "suite, with the train/validation/test split of the JARVIS-Leaderboard AtomGen task. Converted here "
            "without changing any structure from the leaderboard's benchmark file; no property values are included."),
        citation=(
            "@article{castelli2012perovskites, title={New cubic perovskites for one- and two-photon water "
            "splitting using the computational materials repository}, author={Castelli, Ivano E. and others}, "
            "journal={Energy Environ. Sci.}, volume={5}, pages={9034--9043}, year={2012}}\n"
            "@inproceedings{xie2022cdvae, title={Crystal Diffusion Variational Autoencoder for Periodic Material "
            "Generation}, author={Xie, Tian and Fu, Xiang and Ganea, Octavian-Eugen and Barzilay, Regina and "
            "Jaakkola, Tommi}, booktitle={ICLR}, year={2022}}"),
        tags=["perovskite", "crystal-structure-generation"],
    ),
    "carbon-24": dict(
        file="carbon24/carbon24_atomgen_split.json.zip",
        upstream="carbon24_energy_per_atom.json.zip",
        pretty_name="Carbon-24",
        counts={"train": 6091, "validation": 2032, "test": 2030},
        summary=(
            "Carbon-24: carbon allotropes with 6-24 atoms per cell from ab initio random structure searching, as "
            "used by the CDVAE benchmark suite, with the train/validation/test split of the JARVIS-Leaderboard "
            "AtomGen task. Converted here without changing any structure from the leaderboard's benchmark file; "
            "no property values are included."),
        citation=(
            "@misc{pickard2020carbon24, title={AIRSS data for carbon at 10GPa and the C+N+H+O system at 1GPa}, "
            "author={Pickard, Chris J.}, year={2020}, publisher={Materials Cloud}, "
            "doi={10.24435/materialscloud:2020.0026/v1}}\n"
            "@inproceedings{xie2022cdvae, title={Crystal Diffusion Variational Autoencoder for Periodic Material "
            "Generation}, author={Xie, Tian and Fu, Xiang and Ganea, Octavian-Eugen and Barzilay, Regina and "
            "Jaakkola, Tommi}, booktitle={ICLR}, year={2022}}"),
        tags=["carbon", "crystal-structure-generation"],
    ),
}


def build(name: str, raw_root=None) -> DatasetBuild:
    spec = _SPECS[name]
    data = read_atomgen_split(spec["file"], raw_root)
    splits = {}
    for split in SPLITS:
        items = list(data[split].items())
        splits[split] = parse_all(
            items, lambda i, kv: row_from_poscar(kv[1], kv[0], index=i, source=f"{spec['file']}[{split}]"),
            desc=f"{name} {split}", total=len(items))
    counts = {s: len(r) for s, r in splits.items()}
    if counts != spec["counts"]:
        raise ValueError(f"{name}: split sizes {counts} differ from the expected {spec['counts']}")
    all_ids = [r["id"] for rows in splits.values() for r in rows]
    if len(set(all_ids)) != len(all_ids):
        raise ValueError(f"{name}: duplicate ids across splits")
    return DatasetBuild(
        name=name,
        pretty_name=spec["pretty_name"],
        version="1.0",
        builder_version=BUILDER_VERSION,
        license="mit",
        summary=spec["summary"],
        configs={"default": splits},
        sources=[source_file(spec["file"], ATOMGEN_SOURCE.format(file=spec["upstream"]),
                             "NIST (JARVIS-Leaderboard); dataset from CDVAE (MIT)")],
        parameters={},
        citation=spec["citation"],
        provenance=("Each POSCAR string of the AtomGen benchmark file is parsed with pymatgen and stored with its "
                    "exact floating-point lattice and fractional coordinates; row ids are the benchmark's ids."),
        split_note=("The AtomGen file's own `train`/`val`/`test` splits, stored as train/validation/test in the "
                    "file's order."),
        tags=spec["tags"],
        checks=[f"split sizes {counts} equal the upstream counts", "ids unique across splits"],
    )
