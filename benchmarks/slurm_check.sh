#!/usr/bin/env bash
# Checks the SLURM path end to end on this machine: installs a single-node SLURM (Debian's
# slurm-wlm and munge), starts it, runs a two-job sweep through the submitit launcher
# (hydra/launcher=slurm) and merges the jobs with clustersim-collect.
#
#   sudo bash benchmarks/slurm_check.sh [WORK_DIR]       # default WORK_DIR: a new temp folder
#
# Needs root (it installs packages, writes /etc/slurm/slurm.conf and starts the daemons) and
# clustersim installed with its cluster extra (pip install ".[cluster]"). It changes the
# machine's SLURM setup: run it on a scratch machine or container, not on a real cluster node.
# It prints "SLURM check passed" and exits 0 when both jobs ran as SLURM jobs and merged.
set -euo pipefail
work=${1:-$(mktemp -d -t clustersim-slurm.XXXXXX)}
mkdir -p "$work"
host=$(hostname -s)
cpus=$(nproc)
memory=$(awk '/MemTotal/ {print int($2 / 1024 * 0.8)}' /proc/meminfo)

if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null
fi

# munge: the key and its daemon
if [ ! -s /etc/munge/munge.key ]; then
    dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none
fi
chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
mkdir -p /run/munge && chown munge:munge /run/munge
pgrep -x munged >/dev/null || runuser -u munge -- /usr/sbin/munged

# SLURM: one node, one partition, this machine's cores and 80% of its memory
mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm
chown slurm:slurm /var/spool/slurmctld /var/log/slurm 2>/dev/null || true
cat > /etc/slurm/slurm.conf <<EOF
ClusterName=clustersim-check
SlurmctldHost=$host
SlurmUser=slurm
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
NodeName=$host CPUs=$cpus RealMemory=$memory State=UNKNOWN
PartitionName=check Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
pgrep -x slurmctld >/dev/null || /usr/sbin/slurmctld
pgrep -x slurmd >/dev/null || /usr/sbin/slurmd
for _ in $(seq 60); do
    sinfo -h -o %T 2>/dev/null | grep -qE '^(idle|mixed|allocated)' && break
    scontrol update nodename="$host" state=resume >/dev/null 2>&1 || true
    sleep 1
done
sinfo

# Two jobs through submitit, each a small study; then merged
cd "$work"
clustersim -m hydra/launcher=slurm hydra.launcher.partition=check hydra.launcher.cpus_per_task=1 \
    hydra.launcher.mem_gb=1 hydra.launcher.timeout_min=20 hydra.sweep.dir="$work/sweep" \
    dgp.n_subjects=6,12 n_reps=20 'estimators={ols: ols, ols_cr1: ols_cr1}' runner.n_jobs=1 \
    print_table=false report=false
clustersim-collect "$work/sweep" --out "$work/merged"
python3 - "$work" <<'EOF'
import sys
from pathlib import Path

import xarray as xr

work = Path(sys.argv[1])
logs = sorted((work / "sweep" / ".submitit").rglob("*_log.out"))
assert len(logs) >= 2, f"expected two SLURM job logs under {work / 'sweep' / '.submitit'}, found {len(logs)}"
merged = xr.open_zarr(work / "merged" / "results.zarr")
assert list(merged["n_subjects"].values) == [6, 12], merged["n_subjects"].values
assert int(merged.sizes["rep"]) == 20
print(f"SLURM check passed: 2 SLURM jobs ({', '.join(p.parent.name for p in logs[:2])}) merged into {work / 'merged'}")
EOF
