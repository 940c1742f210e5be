"""Where the workers run: a local Ray started here, or a cluster joined with --address.

Ray does the scheduling (which node runs which worker, restarts after a lost node); this
module only checks the address before anything starts, connects, and works out how many
workers of the requested size the cluster holds.
"""

from __future__ import annotations

import logging
import math
import os
import socket

from ..errors import DDTError

CONNECT_TIMEOUT = 5.0  # seconds for the reachability check of --address
RAY_PORT, CLIENT_PORT = 6379, 10001  # Ray's defaults for a head's GCS and for Ray Client (ray://)


def import_ray():
    try:
        import ray
    except ImportError:
        raise DDTError("sampling with workers needs Ray: pip install 'ddt-export[scale]' (or pip install ray)") from None
    return ray


def split_address(address: str) -> tuple[str, int]:
    """host and port of `HOST[:PORT]` or `ray://HOST[:PORT]`."""
    client = address.startswith("ray://")
    rest = address[len("ray://") :] if client else address
    host, sep, port = rest.rpartition(":")
    if not sep:
        host, port = rest, str(CLIENT_PORT if client else RAY_PORT)
    host = host.strip("[]")  # [::1]:6379
    if not host or not port.isdigit():
        raise DDTError(f"--address {address!r} is not HOST:PORT (e.g. 10.0.0.5:6379, or ray://10.0.0.5:10001 for Ray Client)")
    return host, int(port)


def check_address(address: str | None, timeout: float = CONNECT_TIMEOUT) -> None:
    """Fail at once when --address points nowhere (ray.init would retry for a minute first)."""
    if address is None or address == "auto":  # auto: ray.init finds this machine's cluster, or fails fast
        return
    host, port = split_address(address)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as e:
        reason = "timed out" if isinstance(e, socket.timeout) else (e.strerror or type(e).__name__)
        raise DDTError(
            f"cannot reach a Ray cluster at {host}:{port} ({reason}); start one with `ray start --head` on the head node "
            f"and pass its address, or drop --address to sample on this machine"
        ) from None


def connect(address: str | None) -> bool:
    """Join the cluster at `address`, or start a local Ray; True when this call started it.

    A Ray already initialised in this process (a notebook, the tests) is used as it is.
    """
    ray = import_ray()
    if ray.is_initialized():
        return False
    quiet = dict(logging_level=logging.ERROR, log_to_driver=True)
    try:
        if address is None:
            ray.init(address="local", num_cpus=os.cpu_count() or 1, include_dashboard=False, **quiet)
        else:
            ray.init(address=address, **quiet)
    except ConnectionError as e:
        raise DDTError(f"cannot join the Ray cluster at {address}: {str(e).splitlines()[0]}; check `ray status` on the head node") from None
    return True


def worker_count(requested: int | None, cpus: float, gpus: float, shards: int) -> int:
    """How many workers to start: as requested (if the cluster holds them) or as many as fit."""
    import ray

    have = ray.cluster_resources()
    fits = []
    if cpus > 0:
        fits.append(math.floor(have.get("CPU", 0) / cpus + 1e-9))
    if gpus > 0:
        fits.append(math.floor(have.get("GPU", 0) / gpus + 1e-9))
    fit = min(fits) if fits else shards
    what = f"{cpus:g} CPU" + (f" + {gpus:g} GPU" if gpus else "")
    total = f"{have.get('CPU', 0):g} CPUs and {have.get('GPU', 0):g} GPUs"
    if fit < 1:
        raise DDTError(f"the Ray cluster has {total}: not enough for one worker of {what}; lower --cpus-per-worker / --gpus-per-worker or add nodes")
    if requested is not None and requested > fit:
        raise DDTError(f"{requested} workers of {what} do not fit the Ray cluster's {total}; use --workers {fit} or fewer")
    return max(1, min(requested or fit, shards))
