#!/usr/bin/env bash
# SLURM 22.05 and munge from Debian, for tests/test_slurm.py. Only installs: the tests start their
# own one-node cluster (tests/slurm/cluster.py) with every file under a temp dir, and stop it.
set -euo pipefail
installed() {
    local p
    for p in slurmctld slurmd munged sbatch squeue scontrol scancel sinfo srun; do
        PATH="$PATH:/usr/sbin:/sbin" command -v "$p" >/dev/null || return 1
    done
}
if installed; then
    echo "install-slurm: SLURM and munge are already installed"
    exit 0
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
$sudo apt-get update
# --no-install-recommends: the basic plugins (cons_tres, gres/gpu, munge auth) are all the tests use
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends \
    slurmctld slurmd slurm-client munge
