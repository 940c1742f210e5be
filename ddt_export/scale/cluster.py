"""Where the workers run: a local Ray started here, or a cluster joined with --address.

Ray does the scheduling (which node runs which worker, restarts after a lost node); this
module only checks the address before anything starts, connects, and works out how many
workers of the requested size the cluster holds.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import socket
import sys

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
    # ASCII digits only (labels.py's grammar; isdigit() alone takes '²', which int() refuses, and full-width digits)
    if not host or not (port.isascii() and port.isdigit() and len(port) <= 5) or not 1 <= int(port) <= 65535:
        raise DDTError(f"--address {address!r} is not HOST:PORT with a port from 1 to 65535 (e.g. 10.0.0.5:6379, or "
                       "ray://10.0.0.5:10001 for Ray Client)")
    return host, int(port)


def check_address(address: str | None, timeout: float = CONNECT_TIMEOUT) -> None:
    """Fail at once when --address is not a usable Ray head (ray.init would retry for 20 s, then
    say only "Failed to connect")."""
    if address in (None, "local"):
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
    if not address.startswith("ray://"):
        probe_gcs(f"{host}:{port}", timeout)


def probe_gcs(address: str, timeout: float) -> None:
    """Ask the head's GCS for its cluster id: tells a Ray head from another server, and a missing
    auth token from a network problem, in milliseconds."""
    ray = import_ray()
    try:
        from ray._raylet import InnerGcsClient  # not public API: skipped if a Ray version lacks it

        standalone = InnerGcsClient.standalone
    except (ImportError, AttributeError):
        return
    try:
        with stderr_silenced():  # the C++ client logs each failed attempt to fd 2
            standalone(address, None, max(1, int(timeout)))
    except TypeError:
        return  # another signature in this Ray version; ray.init will check instead
    except ray.exceptions.AuthenticationError:
        raise DDTError(
            f"the Ray cluster at {address} requires its auth token: set RAY_AUTH_MODE=token here, with the cluster's token "
            f"in ~/.ray/auth_token or RAY_AUTH_TOKEN (`ray get-auth-token` on the head node prints it)"
        ) from None
    except Exception as e:  # RpcError and friends: something answers, but not as a Ray head
        first = str(e).splitlines()[0][:120] if str(e) else type(e).__name__
        raise DDTError(
            f"{address} answers but not as a Ray cluster's head ({first}); pass the address `ray start --head` printed "
            f"(port {RAY_PORT} unless --port was given)"
        ) from None


@contextlib.contextmanager
def stderr_silenced():
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def connect(address: str | None) -> bool:
    """Join the cluster at `address`, or start a local Ray (None or "local"); True when this call started it.

    A Ray already initialised in this process (a notebook, the tests) is used as it is.
    """
    ray = import_ray()
    if ray.is_initialized():
        return False
    quiet = dict(logging_level=logging.ERROR, log_to_driver=True)
    try:
        if address in (None, "local"):
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
