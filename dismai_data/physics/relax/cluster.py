"""Relaxation on Dask: one task per shard on the workers of a cluster (a
``dask.distributed.LocalCluster`` on 127.0.0.1 from :func:`local_cluster`, or a running
scheduler), with a progress event per finished structure and the results written as shards."""

from __future__ import annotations

import contextlib
import os
import threading
import uuid
from typing import Any

from dismai_data.physics.relax.batch import relax_stream
from dismai_data.physics.relax.potential import load_potential
from dismai_data.physics.relax.results import RelaxResult
from dismai_data.physics.relax.shards import finish_shard

#: torch threads per worker of the clusters started by :func:`local_cluster`, by address
_LOCAL_CLUSTER_THREADS: dict[str, int] = {}

#: glibc mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


def potential_ref(potential):
    """What a Dask worker needs to get the same potential: its folder if known, else the object."""
    if potential is None:
        return ("default", None)
    path = getattr(potential, "dismai_path", None)
    if path:
        return ("path", path)
    return ("object", potential)


def _worker_potential(ref):
    kind, value = ref
    if kind == "default":
        return load_potential()
    if kind == "path":
        return load_potential(value)
    return value


def keep_freed_memory() -> bool:
    """Make glibc's malloc keep freed memory for reuse in this process instead of handing it
    back to the kernel; True where that was done (glibc), False elsewhere.

    Dask's nanny starts every worker with ``MALLOC_TRIM_THRESHOLD_=65536``; setting that
    variable also switches off glibc's adaptive mmap threshold, so every tensor over 128 KiB
    (a batch's bond tensors) is a fresh mmap that is page-faulted in and unmapped again on each
    of the many allocations of a force call, which then spends much of its time in the kernel.
    Raising the mmap threshold to glibc's maximum (32 MiB on 64-bit) and the trim threshold to
    1 GiB restores the ordinary behaviour; the numbers computed are the same."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, 32 * 1024 * 1024)) and bool(mallopt(_M_TRIM_THRESHOLD, 1 << 30))


def relax_shard_task(shard: list[tuple[int, str, Any]], ref, fmax: float, max_steps: int, batch_size: int,
                     topic: str | None, torch_threads: int | None, optimizer: str = "FIRE",
                     fast: bool | str = True) -> list[tuple[int, RelaxResult]]:
    """Dask task: relax one shard on a worker; reports each finished structure as an event."""
    import torch

    keep_freed_memory()  # Dask workers run with MALLOC_TRIM_THRESHOLD_ set: see keep_freed_memory
    if torch_threads:
        torch.set_num_threads(torch_threads)
    worker = None
    if topic:
        try:
            from distributed import get_worker

            worker = get_worker()
        except Exception:
            worker = None
    potential = _worker_potential(ref)
    out = []
    for index, res in relax_stream(shard, potential, fmax=fmax, max_steps=max_steps, batch_size=batch_size,
                                   optimizer=optimizer, fast=fast):
        out.append((index, res))
        if worker is not None:
            worker.log_event(topic, 1)
    return out


@contextlib.contextmanager
def local_cluster(workers: int):
    """A ``dask.distributed.LocalCluster`` of ``workers`` one-thread worker processes on
    127.0.0.1 that lives for the ``with`` block; yields its scheduler address, which
    :func:`~dismai_data.physics.relax.many.relax_many` takes as ``scheduler``. Several relax_many
    calls then share the same workers, which keep the loaded potential (and a ``fast="compile"``
    evaluator compiled once) between calls instead of starting a cluster each time as
    ``scheduler="local"`` does (the interface builder's rounds)."""
    from distributed import LocalCluster

    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                           host="127.0.0.1")
    address = cluster.scheduler_address
    _LOCAL_CLUSTER_THREADS[address] = max(1, (os.cpu_count() or 1) // workers)
    try:
        yield address
    finally:
        _LOCAL_CLUSTER_THREADS.pop(address, None)
        cluster.close()


def relax_dask(pairs, shards, results, potential, fmax, max_steps, batch_size, folder, bar, scheduler, workers,
               optimizer, fast=True, metadata=None) -> None:
    """Relax the ``shards`` (lists of indices into ``pairs``) on the Dask scheduler ``scheduler``
    (``"local"``: a cluster of ``workers`` for this call), one task per shard; fills ``results``,
    writes each shard to ``folder`` as it finishes and advances ``bar`` per structure."""
    from distributed import Client

    if scheduler == "local":  # a cluster for this call only
        with local_cluster(workers) as address:
            return relax_dask(pairs, shards, results, potential, fmax, max_steps, batch_size, folder, bar, address,
                              workers, optimizer, fast, metadata)
    torch_threads = _LOCAL_CLUSTER_THREADS.get(scheduler)
    client = Client(scheduler)
    topic = f"dismai-relax-{uuid.uuid4().hex}"
    ticks = [0]
    lock = threading.Lock()

    def on_event(event):
        with lock:
            ticks[0] += 1

    try:
        client.subscribe_topic(topic, on_event)
        ref = potential_ref(potential)
        futures = {}
        for k, shard in enumerate(shards):
            payload = [(i, pairs[i][0], pairs[i][1]) for i in shard]
            fut = client.submit(relax_shard_task, payload, ref, fmax, max_steps, batch_size, topic,
                                torch_threads, optimizer, fast, pure=False, key=f"relax-shard-{k}-{topic}")
            futures[fut] = k
        _collect(futures, pairs, shards, results, folder, bar, metadata, ticks, lock)
    finally:
        try:
            client.unsubscribe_topic(topic)
        except Exception:
            pass
        client.close()


def _collect(futures: dict, pairs, shards, results, folder, bar, metadata, ticks: list, lock) -> None:
    """Wait for the shard tasks ``futures`` (future -> shard number), filling ``results`` and
    writing each shard as it finishes; the bar follows the per-structure events (``ticks``)."""
    from distributed import wait

    pending = set(futures)
    shown = 0
    finished_from_shards = 0
    while pending:
        try:
            done, pending = wait(pending, timeout=0.5, return_when="FIRST_COMPLETED")
        except TimeoutError:  # nothing finished in this interval: just refresh the bar
            done = set()
        for fut in done:
            k = futures[fut]
            for i, res in fut.result():
                results[i] = res
            finish_shard(pairs, shards[k], results, folder, metadata)
            finished_from_shards += len(shards[k])
        with lock:
            target = max(ticks[0], finished_from_shards)
        if target > shown:
            bar.update(target - shown)
            shown = target
    total = sum(len(s) for s in shards)
    if total > shown:
        bar.update(total - shown)
