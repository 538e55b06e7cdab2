"""Window statistics on a Dask cluster: the window is cut into time slices, each worker reads
its slice of the serving log itself (partition and timestamp pushdown) and summarises it, and the
mergeable statistics are merged on the client — the same verdicts as one pass on one machine.
"""

from __future__ import annotations

import itertools
from datetime import datetime
from functools import reduce
from pathlib import Path
from typing import Any

from prefect_mlops.errors import ConfigError
from prefect_mlops.monitoring.profile import ReferenceProfile
from prefect_mlops.monitoring.window import WindowStats, merge, window_stats


def time_slices(start: datetime, end: datetime, parts: int) -> list[tuple[datetime, datetime]]:
    """``parts`` contiguous [start, end) slices of equal length covering [start, end)."""
    if parts < 1:
        raise ConfigError(f"time_slices: parts must be at least 1, got {parts}")
    step = (end - start) / parts
    edges = [start + step * i for i in range(parts)] + [end]
    return list(itertools.pairwise(edges))


def _use_the_workers_threads() -> None:
    """Decode Parquet with as many threads as this Dask worker has (pyarrow's own pool would
    use every core of the machine, so workers on one machine would compete for them)."""
    import pyarrow as pa

    try:
        from distributed import get_worker

        threads = get_worker().state.nthreads
    except (ImportError, ValueError, AttributeError):  # not on a Dask worker
        return
    pa.set_cpu_count(max(1, int(threads)))


def slice_stats(
    directory: str,
    model_name: str,
    version: str,
    profile: dict[str, Any],
    start: datetime,
    end: datetime,
) -> WindowStats:
    """The statistics of one time slice, read by the worker that runs this (a plain function
    of picklable arguments, so any Dask worker can run it)."""
    from prefect_mlops.monitoring.served import Window, monitored_frame
    from prefect_mlops.serving.log import read_window

    _use_the_workers_threads()
    reference = ReferenceProfile.from_dict(profile)
    frame = read_window(directory, model_name, start=start, end=end, versions=[version])
    window = Window(model_name, version, start, end, frame)
    return window_stats(monitored_frame(window), reference)


def distributed_stats(
    directory: Path,
    model_name: str,
    version: str,
    profile: ReferenceProfile,
    *,
    start: datetime,
    end: datetime,
    address: str,
    parts: int | None = None,
) -> WindowStats:
    """The window's statistics computed on the Dask cluster at ``address`` (``local``: a
    local cluster of 2 single-threaded worker processes, closed afterwards), ``parts`` time
    slices (default: 4 per worker). The workers must see ``directory``."""
    from distributed import Client, LocalCluster

    cluster = (
        LocalCluster(n_workers=2, threads_per_worker=1, processes=True)
        if address == "local"
        else None
    )
    client = Client(cluster if cluster is not None else address)
    try:
        workers = max(1, len(client.scheduler_info().get("workers", {})))
        slices = time_slices(start, end, parts or 4 * workers)
        payload = profile.to_dict()
        futures = [
            client.submit(
                slice_stats, str(directory), model_name, version, payload, a, b, pure=False
            )
            for a, b in slices
        ]
        return reduce(merge, client.gather(futures))
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
