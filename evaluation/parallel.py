"""Spreading independent work items over local processes or a Dask cluster."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

from tqdm.auto import tqdm


def _run_chunk(fn: Callable, chunk: Sequence) -> list:
    return [fn(x) for x in chunk]


def _chunks(items: Sequence, size: int) -> list[list]:
    return [list(items[i:i + size]) for i in range(0, len(items), size)]


def parallel_map(fn: Callable[[Any], Any], items: Sequence, *, workers: int = 1, scheduler: Any = None,
                 desc: str | None = None, chunksize: int | None = None, progress: bool = True) -> list:
    """``[fn(x) for x in items]``, in order, serially (``workers <= 1``), over
    ``workers`` local processes, or on a Dask cluster (``scheduler``: an address such as
    ``tcp://host:8786``, or a ``distributed.Client``). ``fn`` must be picklable (a
    module-level function). A progress bar counts finished chunks' items."""
    items = list(items)
    n = len(items)
    if n == 0:
        return []
    disable = not progress or os.environ.get("DISMAI_NO_PROGRESS") == "1"
    if scheduler is None and (workers is None or workers <= 1):
        return [fn(x) for x in tqdm(items, desc=desc, disable=disable, leave=False)]
    n_workers = workers if workers and workers > 1 else 4
    size = chunksize or max(1, min(64, n // (4 * n_workers) or 1))
    chunks = _chunks(items, size)
    results: list[list | None] = [None] * len(chunks)
    bar = tqdm(total=n, desc=desc, disable=disable, leave=False)
    try:
        if scheduler is not None:
            from distributed import Client, as_completed

            own = not isinstance(scheduler, Client)
            client = Client(scheduler) if own else scheduler
            try:
                futures = client.map(_run_chunk, [fn] * len(chunks), chunks, pure=False)
                index = {f.key: i for i, f in enumerate(futures)}
                for fut in as_completed(futures):
                    i = index[fut.key]
                    results[i] = fut.result()
                    bar.update(len(chunks[i]))
            finally:
                if own:
                    client.close()
        else:
            from concurrent.futures import ProcessPoolExecutor, as_completed as cf_completed

            with ProcessPoolExecutor(max_workers=workers) as pool:
                futs = {pool.submit(_run_chunk, fn, c): i for i, c in enumerate(chunks)}
                for fut in cf_completed(futs):
                    i = futs[fut]
                    results[i] = fut.result()
                    bar.update(len(chunks[i]))
    finally:
        bar.close()
    return [x for chunk in results for x in chunk]  # type: ignore[union-attr]
