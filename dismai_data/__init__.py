"""dismai-data: benchmark datasets, a Hugging Face-compatible hub, baselines and
evaluation for generative models of materials.

The one structure representation lives in :mod:`dismai_data.schema` (Arrow schema and
``datasets.Features``) and :mod:`dismai_data.structure` (row <-> pymatgen/ASE).
"""

__version__ = "0.1.0"

from dismai_data.errors import StructureError  # noqa: E402

__all__ = ["__version__", "StructureError"]
