"""What a repo's web page shows of its content: the card's Markdown as HTML (links and images
resolved against the repo's files, ``javascript:`` links disabled) and the first rows of each
dataset split, read from its parquet files."""

from __future__ import annotations

import fnmatch
import html
import re
from urllib.parse import quote

PREVIEW_ROWS = 5
MAX_SPLITS = 24

_SRC = re.compile(r'(<img\b[^>]*?\bsrc=")([^"]+)(")', re.I)
_HREF = re.compile(r'(<a\b[^>]*?\bhref=")([^"]+)(")', re.I)


def split_card(text: str) -> tuple[str, str]:
    """(YAML front matter, Markdown body) of a README."""
    if text.startswith("---"):
        end = text.find("\n---", 3)
        if end >= 0:
            nl = text.find("\n", end + 4)
            return text[3:end].strip("\n"), text[nl + 1:] if nl >= 0 else ""
    return "", text


def render_markdown(md_text: str, resolve_base: str, tree_base: str, files: set[str]) -> str:
    import markdown

    out = markdown.markdown(md_text, extensions=["tables", "fenced_code", "sane_lists"], output_format="html")

    def fix(m, base):
        url = html.unescape(m.group(2))
        if re.match(r"^[a-z][a-z0-9+.-]*:|^#|^/", url, re.I):
            if re.match(r"^\s*javascript:", url, re.I):
                return m.group(1) + "#" + m.group(3)
            return m.group(0)
        path = url.split("#")[0].split("?")[0]
        while path.startswith("./"):
            path = path[2:]
        if path in files or base is resolve_base:
            return m.group(1) + html.escape(base + quote(path, safe="/")) + m.group(3)
        return m.group(0)

    out = _SRC.sub(lambda m: fix(m, resolve_base), out)
    out = _HREF.sub(lambda m: fix(m, resolve_base if html.unescape(m.group(2)).split("#")[0] in files else tree_base),
                    out)
    return out


def _cell(v) -> str:
    s = v if isinstance(v, str) else repr(v)
    return s if len(s) <= 120 else s[:117] + "..."


def split_files(tree: dict, card_data: dict | None) -> dict[str, list[str]]:
    """Split label -> its parquet files: from the card's ``configs`` when it has them, else
    from the file names (``data/train-00000-of-00001.parquet`` -> ``train``)."""
    parquet = sorted(p for p in tree if p.endswith(".parquet"))
    groups: dict[str, list[str]] = {}
    configs = (card_data or {}).get("configs") if isinstance(card_data, dict) else None
    if isinstance(configs, list):
        for cfg in configs:
            if not isinstance(cfg, dict):
                continue
            name = str(cfg.get("config_name", "default"))
            files = cfg.get("data_files")
            if isinstance(files, str):
                files = [{"split": "train", "path": files}]
            for df in files if isinstance(files, list) else []:
                if not isinstance(df, dict):
                    continue
                pats = df.get("path")
                pats = [pats] if isinstance(pats, str) else pats or []
                label = (f"{name}/" if len(configs) > 1 else "") + str(df.get("split", "train"))
                groups[label] = [p for p in parquet if any(fnmatch.fnmatch(p, pat) for pat in pats)]
    if not groups:
        for p in parquet:
            stem = p.rsplit("/", 1)[-1].split("-")[0].removesuffix(".parquet")
            parent = p.rsplit("/", 2)[-2] if p.count("/") >= 2 else ""
            label = f"{parent}/{stem}" if parent and parent != "data" else stem
            groups.setdefault(label, []).append(p)
    return groups


def preview(storage, tree: dict, card_data: dict | None) -> list[dict]:
    """The first rows of each split (at most MAX_SPLITS), with its row and file counts; a
    parquet file that cannot be read shows as an error row, never breaks the page."""
    import pyarrow.parquet as pq

    out = []
    for label, files in list(split_files(tree, card_data).items())[:MAX_SPLITS]:
        if not files:
            continue
        try:
            pf = pq.ParquetFile(storage.blob_path(tree[files[0]]["blob"]))
            rows = sum(pq.ParquetFile(storage.blob_path(tree[f]["blob"])).metadata.num_rows for f in files)
            batch = next(pf.iter_batches(batch_size=PREVIEW_ROWS), None)
            data = [] if batch is None else batch.to_pylist()
            cols = pf.schema_arrow.names
            out.append({"name": label, "rows": rows, "files": len(files), "columns": cols,
                        "data": [[_cell(r.get(c)) for c in cols] for r in data]})
        except Exception as exc:  # a broken parquet must not break the page
            out.append({"name": label, "rows": "?", "files": len(files), "columns": ["error"],
                        "data": [[f"cannot read: {exc}"]]})
    return out
