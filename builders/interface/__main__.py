"""``python -m dismai_data.builders.interface``: rewrite references.json, or ``relax`` a share of a build."""

from __future__ import annotations

import json

from dismai_data.builders.interface.references import make_references
from dismai_data.builders.interface.relaxation import relax_candidates


def main(argv: list[str]) -> None:
    """``python -m dismai_data.builders.interface [published|m3gnet]`` rewrites references.json;
    ``... relax N --workers W [--deadline-s S] [--set KEY=VALUE ...]`` runs
    :func:`relax_candidates` (a GPU host's share of a build) and prints its summary as JSON."""
    import argparse

    if not argv or argv[0] != "relax":
        print(make_references(argv[0] if argv else "published"))
        return
    ap = argparse.ArgumentParser(prog="python -m dismai_data.builders.interface relax")
    ap.add_argument("n_candidates", type=int)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--deadline-s", type=float, default=None)
    ap.add_argument("--chunk", type=int, default=None)
    ap.add_argument("--shard-size", type=int, default=16)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    a = ap.parse_args(argv[1:])
    params = dict(kv.split("=", 1) for kv in a.set)
    print(json.dumps(relax_candidates(a.n_candidates, workers=a.workers, deadline_s=a.deadline_s, chunk=a.chunk,
                                      shard_size=a.shard_size, **params), indent=1))


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
