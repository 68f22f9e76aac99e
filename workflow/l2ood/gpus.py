"""Give each GPU job on a workstation a GPU of its own, before torch starts CUDA.

Snakemake's ``--resources gpu=N`` bounds how many GPU jobs run at once but tells no job which
GPU to use (it sets no ``CUDA_VISIBLE_DEVICES``), so every job would train on GPU 0. Each job
therefore calls ``claim_device`` first thing: it takes a lock file per (GPU index, slot) with
``fcntl.flock`` and sets ``CUDA_VISIBLE_DEVICES`` to the index it got.

    from l2ood.gpus import claim_device
    claim_device(jobs_per_gpu=2)    # before anything touches CUDA; returns "0", "1", ... or None

- The lock lives as long as the process: the kernel releases a ``flock`` when the last file
  descriptor of the lock closes, so a job that exits, crashes or is SIGKILLed frees its GPU with
  no clean-up step and no stale lock to remove.
- ``jobs_per_gpu`` slots per GPU (LogitNorm+ and CCT train at batch 128 and leave an H100 mostly
  idle). Slot 0 of every GPU is tried before slot 1 of any, so jobs spread over the GPUs first.
  The profile's ``resources: gpu`` should then be GPUs x ``jobs_per_gpu``.
- Already set ``CUDA_VISIBLE_DEVICES`` (SLURM sets it for its allocation; a user may set it by
  hand) is left alone and no lock is taken.
- How many GPUs: ``n_devices`` when given, else the environment variable ``L2OOD_GPUS``, else the
  ``GPU n:`` lines of ``nvidia-smi -L`` (no torch: importing it is what must wait), else 0. MIG
  instances are not handled: on a MIG machine set ``CUDA_VISIBLE_DEVICES`` yourself.
- All slots taken: the job waits, with a log line naming the lock holders, rather than failing.
  Inside one workflow ``--resources gpu`` keeps this from happening; it happens when a second
  workflow, or a manual run, uses the same GPUs, and then running later beats a failed job.
  ``timeout_s`` turns the wait into a ``DevicesBusyError``.
- The locks sit in ``/tmp/l2ood-gpu-locks`` (``tempfile.gettempdir()``), one folder for the
  whole machine, so that two checkouts of the workflow (the paper and a demo) do not both take
  GPU 0; override with ``lock_dir`` or ``L2OOD_GPU_LOCK_DIR``. File names carry the host name,
  so a lock folder on a shared disk does not make two machines wait for each other.
"""

import contextlib
import fcntl
import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

log = logging.getLogger("l2ood.gpus")

GPUS_ENV = "L2OOD_GPUS"
LOCK_DIR_ENV = "L2OOD_GPU_LOCK_DIR"

_claim: tuple[int, str] | None = None  # (open lock fd, device index) for the life of the process


class DevicesBusyError(RuntimeError):
    """Every GPU slot stayed taken for ``timeout_s``."""


def default_lock_dir() -> Path:
    return Path(os.environ.get(LOCK_DIR_ENV) or Path(tempfile.gettempdir()) / "l2ood-gpu-locks")


def device_count(n_devices: int | None = None) -> int:
    """``n_devices`` if given, else ``$L2OOD_GPUS``, else the GPUs ``nvidia-smi -L`` lists, else 0."""
    if n_devices is None and os.environ.get(GPUS_ENV, "").strip():
        value = os.environ[GPUS_ENV]
        if not value.strip().isdigit():
            raise ValueError(f"{GPUS_ENV}={value!r}: give the number of GPUs of this machine, e.g. {GPUS_ENV}=4")
        n_devices = int(value)
    if n_devices is None:
        smi = shutil.which("nvidia-smi")
        if smi is None:
            return 0
        try:
            out = subprocess.run([smi, "-L"], check=True, capture_output=True, text=True, timeout=30).stdout
        except (OSError, subprocess.SubprocessError) as err:
            log.warning("nvidia-smi -L failed (%s): counting no GPU; set %s to the number of GPUs", err, GPUS_ENV)
            return 0
        return sum(line.startswith("GPU ") for line in out.splitlines())
    if not isinstance(n_devices, int) or n_devices < 0:
        raise ValueError(f"n_devices must be a whole number >= 0, got {n_devices!r}")
    return n_devices


def _lock_path(lock_dir: Path, index: int, slot: int) -> Path:
    return lock_dir / f"{socket.gethostname()}.gpu{index}.slot{slot}.lock"


def _open_lock_dir(lock_dir: Path) -> None:
    fresh = not lock_dir.exists()
    lock_dir.mkdir(parents=True, exist_ok=True)
    if fresh:
        with contextlib.suppress(PermissionError):  # someone else's folder: their mode is what we get
            os.chmod(lock_dir, 0o1777)  # every user's jobs share the machine's GPUs (sticky, as /tmp)


def _try_lock(path: Path) -> int | None:
    """An open fd holding an exclusive ``flock`` on ``path``, or None if another process holds it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)  # not inherited by exec'd children (PEP 446)
    with contextlib.suppress(PermissionError):
        os.fchmod(fd, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    os.ftruncate(fd, 0)
    os.write(fd, f"pid {os.getpid()} since {time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode())
    return fd


def _holders(lock_dir: Path) -> str:
    lines = []
    for p in sorted(lock_dir.glob(f"{socket.gethostname()}.gpu*.lock")):
        try:
            lines.append(f"{p.name}: {p.read_text().strip() or '?'}")
        except OSError:
            pass
    return "; ".join(lines)


def claim_device(
    n_devices: int | None = None,
    jobs_per_gpu: int = 1,
    lock_dir=None,
    timeout_s: float | None = None,
    poll_s: float = 2.0,
) -> str | None:
    """Take a free GPU slot and set ``CUDA_VISIBLE_DEVICES`` to its index; hold it until exit.

    Returns the index as a string ("0", "1", ...); the ``CUDA_VISIBLE_DEVICES`` already set,
    unchanged (SLURM); or None when the machine has no GPU (``device_count`` is 0), in which
    case nothing is set. A second call in the same process returns the first claim.
    """
    global _claim
    if "CUDA_VISIBLE_DEVICES" in os.environ and _claim is None:
        given = os.environ["CUDA_VISIBLE_DEVICES"]
        log.info("CUDA_VISIBLE_DEVICES=%r is set already (by SLURM or by hand): using it", given)
        return given
    if _claim is not None:
        return _claim[1]
    if not isinstance(jobs_per_gpu, int) or jobs_per_gpu < 1:
        raise ValueError(f"jobs_per_gpu must be a whole number >= 1, got {jobs_per_gpu!r}")
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_initialized():
        raise RuntimeError(
            "claim_device ran after torch started CUDA, so CUDA_VISIBLE_DEVICES can no longer take effect; "
            "call it before the first CUDA call (at the top of the job's script)"
        )
    n = device_count(n_devices)
    if n == 0:
        log.info("no GPU found (nvidia-smi -L lists none and %s is unset): no device claimed", GPUS_ENV)
        return None
    lock_dir = Path(lock_dir) if lock_dir is not None else default_lock_dir()
    _open_lock_dir(lock_dir)
    start, warned = time.monotonic(), None
    while True:
        for slot in range(jobs_per_gpu):  # slot 0 on every GPU before a second job on any
            for index in range(n):
                path = _lock_path(lock_dir, index, slot)
                fd = _try_lock(path)
                if fd is not None:
                    _claim = (fd, str(index))
                    os.environ["CUDA_VISIBLE_DEVICES"] = str(index)
                    log.info("GPU %d of %d, slot %d of %d (lock %s)", index, n, slot, jobs_per_gpu, path)
                    return str(index)
        waited = time.monotonic() - start
        if timeout_s is not None and waited >= timeout_s:
            raise DevicesBusyError(
                f"all {n} GPU(s) x {jobs_per_gpu} slot(s) stayed taken for {waited:.0f} s ({_holders(lock_dir)}); "
                f"lower --resources gpu to GPUs x jobs_per_gpu, or wait for the other jobs"
            )
        if warned is None or time.monotonic() - warned > 600:
            log.warning(
                "all %d GPU(s) x %d slot(s) are taken (%s); waiting for one to free up. Does another workflow use "
                "these GPUs, or is --resources gpu larger than GPUs x jobs_per_gpu?",
                n, jobs_per_gpu, _holders(lock_dir),
            )  # fmt: skip
            warned = time.monotonic()
        time.sleep(poll_s)

