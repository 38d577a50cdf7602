"""Dataset and model card templates (Jinja2, ``*.md.j2``) and their rendering.

Installed as ``dismai_data.cards``. A dataset card is ``README.md`` with Hugging Face
YAML front matter (license, pretty_name, tags, task_categories, size_categories,
configs with data_files per split, dataset_info with features) and prose rendered
from a :class:`dismai_data.build.DatasetBuild`. A model card (``model_card.md.j2``) is
the YAML of a ``huggingface_hub.ModelCardData`` (with the model-index) and prose
rendered from what :mod:`dismai_data.models.publish` gathers about a baseline.
"""

from __future__ import annotations

if __name__ != "dismai_data.cards":  # the checkout root on sys.path makes this folder importable as 'cards'
    raise ImportError(f"{__name__!r} is the checkout folder cards/: it is installed as dismai_data.cards; "
                      "import that (a second copy would share, and break, the first one's numba cache)")

from importlib import resources

import yaml

from dismai_data import __version__


def _size_category(n: int) -> str:
    for upper, label in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"),
                         (1_000_000, "100K<n<1M")):
        if n < upper:
            return label
    return "1M<n<10M"


def _template(name: str):
    import jinja2

    text = (resources.files(__name__) / name).read_text()
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                             trim_blocks=True, lstrip_blocks=True)
    return env.from_string(text)


def card_yaml(build, rows_per_shard: int) -> dict:
    """The YAML metadata of a dataset card."""
    from dismai_data.build import data_files
    from dismai_data.structure import rows_to_table

    configs, infos = [], []
    yaml_features = build.features._to_yaml_list()
    for i, config in enumerate(build.configs):
        files = data_files(build, config, rows_per_shard)
        entry = {"config_name": config,
                 "data_files": [{"split": s, "path": p[0] if len(p) == 1 else p} for s, p in files.items()]}
        if config == (build.default_config or next(iter(build.configs))) and not build.single_config:
            entry["default"] = True
        configs.append(entry)
        # name, num_bytes (Arrow bytes of the split, as `datasets` counts them) and num_examples:
        # `datasets` ignores a splits list that lacks any of the three (with a warning on load)
        splits = build.configs[config]
        infos.append({"config_name": config, "features": yaml_features,
                      "splits": [{"name": s,
                                  "num_bytes": int(rows_to_table(splits[s], build.extra_features).nbytes),
                                  "num_examples": len(splits[s])}
                                 for s in build.split_names(config)]})
    meta = {
        "license": build.license,
        "pretty_name": build.pretty_name,
        "tags": ["materials", "chemistry", "crystal-structures", "dismai-data"] + list(build.tags)
        + (["rebuilt"] if build.rebuilt else []),
        "task_categories": ["graph-ml"],
        "size_categories": [_size_category(build.num_rows())],
        "configs": configs,
        "dataset_info": infos if len(infos) > 1 else infos[0],
    }
    return meta


def render_dataset_card(build, figure_paths: list[str], rows_per_shard: int) -> str:
    """Full README.md text of a built dataset."""
    from dismai_data.schema import COLUMN_DOCS

    meta = yaml.safe_dump(card_yaml(build, rows_per_shard), sort_keys=False, allow_unicode=True, width=1000)
    structure_table = "| column | type | meaning |\n|---|---|---|\n" + "\n".join(
        f"| `{c}` | {t} | {m} |" for c, t, m in COLUMN_DOCS)
    body = _template(build.card_template).render(
        b=build,
        package_version=__version__,
        figures=figure_paths,
        structure_table=structure_table,
        counts={c: {s: len(build.configs[c][s]) for s in build.split_names(c)} for c in build.configs},
    )
    return f"---\n{meta}---\n\n{body}"


def render_model_card(card_data, **context) -> str:
    """Full README.md text of a model repo: ``card_data`` (a ``huggingface_hub.ModelCardData``)
    as YAML front matter, then ``model_card.md.j2`` rendered with ``context``."""
    from huggingface_hub import ModelCard

    body = _template("model_card.md.j2").render(**context).removesuffix("\n")
    card = ModelCard.from_template(card_data, template_str="---\n{{ card_data }}\n---\n\n{{ body }}", body=body)
    return str(card)


def render_relaxer_card(sha: str) -> str:
    """README.md of the relaxer's model repo (``relaxer_card.md.j2``); ``sha``: its lines of
    ``sha256  file``."""
    return _template("relaxer_card.md.j2").render(sha=sha)
