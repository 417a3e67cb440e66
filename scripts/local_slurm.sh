#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, for trying `hydra/launcher=slurm` and for the
# tests: Debian's slurm-wlm + munge, the node sized by `slurmd -C` (this machine's CPUs and
# memory), no accounting database. Needs root.
#
#   scripts/local_slurm.sh install   apt-get the packages (slurm-wlm, munge)
#   scripts/local_slurm.sh start     write /etc/slurm/slurm.conf, start munged, slurmctld, slurmd
#   scripts/local_slurm.sh stop      stop the three daemons
#   scripts/local_slurm.sh status    sinfo
set -euo pipefail

CONF=/etc/slurm/slurm.conf
STATE=/var/lib/slurm
LOGS=/var/log/slurm

HEADER="# Written by tokentango's scripts/local_slurm.sh"

die() { echo "local_slurm: $*" >&2; exit 1; }

# Never touch a real cluster's configuration or daemons.
ours() { [ ! -e "$CONF" ] || head -n 1 "$CONF" | grep -qF "$HEADER"; }

install_packages() {
    [ "$(id -u)" = 0 ] || die "installing needs root"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null
}

write_conf() {
    local host node
    host=$(hostname -s)
    # "NodeName=<host> CPUs=.. Boards=.. SocketsPerBoard=.. ... RealMemory=..": this machine.
    node=$(slurmd -C | head -n 1)
    mkdir -p "$(dirname "$CONF")" "$STATE/slurmctld" "$STATE/slurmd" "$LOGS"
    cat >"$CONF" <<EOF
$HEADER: a one-node cluster on $host.
ClusterName=tokentango
SlurmctldHost=$host
SlurmUser=root
AuthType=auth/munge
# No cgroups needed (containers, CI): processes tracked by their parent, no task binding.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
# A test cluster answers fast: schedule every few seconds, and let a requeued job start
# again after 15 s (its wait is the credential lifetime, 120 s by default).
SchedulerParameters=sched_interval=5,bf_interval=5
AuthInfo=cred_expire=15
# No accounting database: squeue shows jobs while they are known, the run folders after.
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
StateSaveLocation=$STATE/slurmctld
SlurmdSpoolDir=$STATE/slurmd
SlurmctldLogFile=$LOGS/slurmctld.log
SlurmdLogFile=$LOGS/slurmd.log
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
ReturnToService=2
# Keep finished jobs visible to squeue/scontrol for 5 minutes.
MinJobAge=300
# Seconds between SIGTERM and SIGKILL at a time limit or cancel.
KillWait=30
$node State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
}

start() {
    [ "$(id -u)" = 0 ] || die "starting the daemons needs root"
    command -v slurmctld >/dev/null && command -v munged >/dev/null \
        || die "slurm-wlm and munge are not installed (run: $0 install)"
    ours || die "$CONF was not written by this script: a real cluster's? left alone"
    write_conf
    mkdir -p /run/munge && chown munge:munge /run/munge
    [ -s /etc/munge/munge.key ] || { mungekey --create 2>/dev/null || create-munge-key -f; }
    chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
    pgrep -x munged >/dev/null || runuser -u munge -- /usr/sbin/munged
    pkill -x slurmctld 2>/dev/null || true
    pkill -x slurmd 2>/dev/null || true
    sleep 1
    slurmctld
    slurmd
    # Wait for the node to come up idle (or mixed/allocated when jobs survived a restart).
    for _ in $(seq 1 30); do
        if sinfo -h -o %T 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; then
            sinfo
            return 0
        fi
        sleep 1
    done
    scontrol update nodename="$(hostname -s)" state=resume 2>/dev/null || true
    sinfo -h -o %T 2>/dev/null | grep -qE '^(idle|mixed|allocated)' \
        || die "the node did not come up; see $LOGS/slurmctld.log and $LOGS/slurmd.log"
    sinfo
}

stop() {
    ours || die "$CONF was not written by this script: a real cluster's? left alone"
    pkill -x slurmd 2>/dev/null || true
    pkill -x slurmctld 2>/dev/null || true
    pkill -x munged 2>/dev/null || true
}

case "${1:-}" in
    install) install_packages ;;
    start) start ;;
    stop) stop ;;
    status) sinfo ;;
    *) die "usage: $0 install|start|stop|status" ;;
esac
