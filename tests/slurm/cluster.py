"""A real single-node SLURM cluster for the tests: munged, slurmctld and slurmd, started directly.

There is no systemd in a container, so each daemon runs in the foreground as our child process
and is stopped by its PID. Everything (munge key and socket, configs, state, spool, logs, the
fake GPU device files) lives under one directory; the clients find the cluster through
`SLURM_CONF`, so the machine's own /etc/slurm and /etc/munge are never read or touched.

    cluster = start(Path("/tmp/slurm"))      # needs root: mknod for the fake GPUs
    subprocess.run(["sbatch", "--wrap", "hostname"], env=cluster.env)
    cluster.stop()

By hand: `sudo python tests/slurm/cluster.py [DIR]` starts one, prints the `export SLURM_CONF=...`
line for another shell, and stops it on Enter or Ctrl-C.
"""

from __future__ import annotations

import ctypes
import getpass
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from string import Template

HERE = Path(__file__).resolve().parent
DAEMONS = ("munged", "slurmctld", "slurmd")
CLIENTS = ("sbatch", "squeue", "scontrol", "scancel", "sinfo", "srun")
PACKAGES = "slurmctld slurmd slurm-client munge"  # Debian's, as .ci/install-slurm.sh installs them
NVIDIA_MAJOR = 195  # the character-device major number of /dev/nvidia*
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


class ClusterError(RuntimeError):
    pass


def find(program: str) -> str | None:
    """A program's path; the daemons live in /usr/sbin, which a user's PATH may lack."""
    return shutil.which(program, path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"]))


def missing() -> str | None:
    """Why a cluster cannot start on this machine, or None if it can."""
    absent = [p for p in DAEMONS + CLIENTS if find(p) is None]
    if absent:
        return f"SLURM/munge programs not found: {' '.join(absent)}; install them with `bash .ci/install-slurm.sh`"
    if os.geteuid() != 0:
        return "the test cluster must run as root (slurmd runs jobs as any user; mknod for the fake GPUs)"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Cluster:
    root: Path
    env: dict[str, str]  # os.environ + SLURM_CONF: pass to every client and to Snakemake
    node: str
    partitions: tuple[str, ...] = ("cpu", "gpu")  # as in slurm.conf.in; cpu is the default
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)

    def run(self, *cmd: str, check: bool = True, timeout: float = 30) -> str:
        proc = subprocess.run(cmd, check=False, env=self.env, capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise ClusterError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip()}")
        return proc.stdout

    def log(self, daemon: str) -> str:
        path = self.root / "log" / f"{daemon}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        """Cancel what is still queued, then stop every daemon we started, by PID (slurmd first)."""
        if "slurmctld" in self.procs and self.procs["slurmctld"].poll() is None:
            try:
                self.run("scancel", "--user", getpass.getuser(), check=False, timeout=10)
                deadline = time.monotonic() + 15
                while time.monotonic() < deadline and self.run("squeue", "-h", "-t", "RUNNING,COMPLETING", check=False):
                    time.sleep(0.5)
            except subprocess.TimeoutExpired:
                pass
        for name in ("slurmd", "slurmctld", "munged"):
            proc = self.procs.pop(name, None)
            if proc is None or proc.poll() is not None:
                continue
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)


def _die_with(parent: int):
    """A child's pre-exec step: the kernel sends it SIGTERM when ``parent`` (this thread) exits.

    Without it a pytest killed by SIGKILL or SIGTERM runs no finalizer, and the daemons, in their
    own session and running as root, stayed up (issue 21). Linux only, as the test cluster is."""
    libc = ctypes.CDLL(None, use_errno=True)

    def arm() -> None:
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
        if os.getppid() != parent:  # the parent died before the signal was armed
            os.kill(os.getpid(), signal.SIGTERM)

    return arm


def _spawn(cluster: Cluster, name: str, cmd: list[str]) -> None:
    # own session: a Ctrl-C meant for pytest must not kill the daemons before the finalizer runs;
    # the parent-death signal: a pytest killed outright takes them with it
    with open(cluster.root / "log" / f"{name}.out", "w") as out:  # the daemon keeps its own copy
        cluster.procs[name] = subprocess.Popen(
            cmd, env=cluster.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            preexec_fn=_die_with(os.getpid()),
        )  # fmt: skip


def _wait(cluster: Cluster, name: str, ready, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for daemon, proc in cluster.procs.items():
            if proc.poll() is not None:
                out = (cluster.root / "log" / f"{daemon}.out").read_text(errors="replace")
                raise ClusterError(
                    f"{daemon} exited with {proc.returncode} while starting {name}:\n"
                    f"{out[-2000:]}\n{cluster.log(daemon)[-2000:]}"
                )
        try:
            if ready():
                return
        except (subprocess.TimeoutExpired, ClusterError):
            pass
        time.sleep(0.3)
    raise ClusterError(f"{name} not ready after {timeout:.0f} s; its log:\n{cluster.log(name)[-3000:]}")


def _write(template: str, dest: Path, values: dict) -> None:
    dest.write_text(Template((HERE / template).read_text()).substitute(values))


def start(
    root: Path,
    gpus: int = 2,
    cpus: int | None = None,
    memory_mb: int = 64000,  # declared, not enforced (no cgroups): the profile's real requests fit
    mem_per_cpu_mb: int = 500,
    min_job_age_s: int = 600,
    timeout: float = 60,
) -> Cluster:
    """Start munged, slurmctld and slurmd under `root` and wait until the node is idle.

    On any failure the daemons already started are stopped before the error is raised.
    """
    reason = missing()
    if reason:
        raise ClusterError(reason)
    root = Path(root).resolve()
    if len(str(root / "munge" / "munge.socket")) > 100:  # a Unix socket path has at most 107 bytes
        raise ClusterError(f"cluster directory {root} is too deep for munge's socket; use a shorter path")
    for sub in ("munge", "state", "spool", "run", "log", "dev", "etc"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    os.chmod(root / "munge", 0o700)  # munged refuses a key or socket directory others can read
    key = root / "munge" / "munge.key"
    key.write_bytes(os.urandom(1024))
    os.chmod(key, 0o600)
    for i in range(gpus):
        dev = root / "dev" / f"nvidia{i}"
        if not dev.exists():
            os.mknod(dev, 0o666 | stat.S_IFCHR, os.makedev(NVIDIA_MAJOR, i))

    node = socket.gethostname().split(".")[0]
    values = {
        "root": root,
        "host": node,
        "node": node,
        "user": getpass.getuser(),
        "ctld_port": free_port(),
        "slurmd_port": free_port(),
        "cpus": cpus or max(2, os.cpu_count() or 2),
        "memory": memory_mb,
        "mem_per_cpu": mem_per_cpu_mb,
        "gpus": gpus,
        "last_gpu": gpus - 1,
        "min_job_age": min_job_age_s,
    }
    conf = root / "etc" / "slurm.conf"
    _write("slurm.conf.in", conf, values)
    _write("gres.conf.in", root / "etc" / "gres.conf", values)  # slurmd reads it next to slurm.conf

    # The slurm-jobstep plugin drops every SLURM_* variable, SLURM_CONF too, before the `srun`
    # it runs inside each job; a real cluster has /etc/slurm/slurm.conf, ours puts it back.
    srun = root / "bin" / "srun"
    srun.parent.mkdir(exist_ok=True)
    srun.write_text(f'#!/bin/sh\nSLURM_CONF={conf} exec {find("srun")} "$@"\n')
    srun.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "SBATCH_", "SRUN_", "SQUEUE_"))}
    env["SLURM_CONF"] = str(conf)
    env["PATH"] = f"{srun.parent}{os.pathsep}{env.get('PATH', '')}"  # jobs inherit it (sbatch --export=ALL)
    cluster = Cluster(root=root, env=env, node=node)
    try:
        _spawn(
            cluster,
            "munged",
            [
                find("munged"),
                "--foreground",
                "--force",  # running as root, in a world-writable /tmp: fine for a throwaway test key
                f"--socket={root}/munge/munge.socket",
                f"--key-file={key}",
                f"--pid-file={root}/run/munged.pid",
                f"--log-file={root}/log/munged.log",
                f"--seed-file={root}/munge/munged.seed",
            ],
        )
        _wait(cluster, "munged", lambda: (root / "munge" / "munge.socket").exists(), timeout)
        _spawn(cluster, "slurmctld", [find("slurmctld"), "-D", "-f", str(conf)])
        _wait(cluster, "slurmctld", lambda: "UP" in cluster.run("scontrol", "ping", check=False, timeout=5), timeout)
        _spawn(cluster, "slurmd", [find("slurmd"), "-D", "-f", str(conf), "-N", node])
        _wait(
            cluster,
            "slurmd",
            lambda: cluster.run("sinfo", "-h", "-n", node, "-o", "%T", timeout=5).strip() == "idle",
            timeout,
        )
    except BaseException:
        cluster.stop()
        raise
    return cluster


if __name__ == "__main__":
    c = start(Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/l2ood-slurm"))
    print(f"cluster up under {c.root}; in another shell:\n  export SLURM_CONF={c.env['SLURM_CONF']}")
    try:
        input("Enter stops it. ")
    except (KeyboardInterrupt, EOFError):
        pass
    finally:
        c.stop()
