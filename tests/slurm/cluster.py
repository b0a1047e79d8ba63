"""A throw-away single-node SLURM cluster on this machine, for the cluster tests.

Debian's packages (munge, slurmctld, slurmd, slurm-client) run here without systemd or cgroups:
munged, slurmctld and slurmd start in the foreground as children we keep the process ids of,
on 127.0.0.1, with state and logs in one scratch folder. With `accounting=True` a MariaDB server
(its database in the scratch folder) and slurmdbd start too, so that `sacct` works as on most
sites (Debian's slurmdbd, mariadb-server). Stopping cancels the jobs, then ends exactly those
processes. Nothing else on the machine is touched, except `/etc/slurm/slurm.conf` (and
`slurmdbd.conf`), which SLURM only reads from there (a file we did not write is never replaced).

    python tests/slurm/cluster.py start DIR [--accounting]   # prints the partition
    python tests/slurm/cluster.py stop
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

CONF = Path("/etc/slurm/slurm.conf")
MARKER = "# lbgap test cluster, state in "
PARTITION = "lbgap"
DBD_CONF = Path("/etc/slurm/slurmdbd.conf")
PORTS = (6817, 6818)
DB_PORTS = (6819, 3306)  # slurmdbd, MariaDB
TOOLS = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "sinfo", "scancel", "scontrol")
DB_TOOLS = ("slurmdbd", "sacct", "mariadbd", "mariadb-install-db")


class ClusterUnavailable(RuntimeError):
    """This machine cannot host the test cluster (a reason a test may skip on)."""


@dataclass
class Cluster:
    workdir: Path
    partition: str
    node: str
    cpus: int
    pids: dict[str, int]
    accounting: bool = False

    def save(self) -> None:
        data = {**asdict(self), "workdir": str(self.workdir)}
        (self.workdir / "cluster.json").write_text(json.dumps(data, indent=2))

    @classmethod
    def load(cls, workdir: Path) -> Cluster:
        data = json.loads((workdir / "cluster.json").read_text())
        return cls(**{**data, "workdir": Path(data["workdir"])})


# ---------------------------------------------------------------- checks
def check_machine(accounting: bool = False) -> None:
    """Say why no cluster can start here, before touching anything."""
    if os.geteuid() != 0:
        raise ClusterUnavailable("the test cluster needs root (slurmd runs jobs as any user)")
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        raise ClusterUnavailable(
            f"missing {', '.join(missing)}: apt-get install munge slurmctld slurmd slurm-client"
        )
    db_missing = [t for t in DB_TOOLS if accounting and shutil.which(t) is None]
    if db_missing:
        raise ClusterUnavailable(
            f"missing {', '.join(db_missing)}: apt-get install slurmdbd mariadb-server"
        )
    for conf in (CONF, DBD_CONF):
        if conf.exists() and not conf.read_text().startswith(MARKER):
            raise ClusterUnavailable(f"{conf} belongs to a real SLURM set-up; not replacing it")
    for port in PORTS + (DB_PORTS if accounting else ()):
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("0.0.0.0", port))
            except OSError as err:
                raise ClusterUnavailable(f"port {port} is in use (SLURM running?)") from err


def node_line() -> tuple[str, int, str]:
    """`slurmd -C`'s node description with 80% of the memory: (name, cpus, line)."""
    out = subprocess.run(["slurmd", "-C"], capture_output=True, text=True, check=True).stdout
    fields = dict(f.split("=", 1) for f in out.splitlines()[0].split())
    fields["RealMemory"] = str(int(int(fields["RealMemory"]) * 0.8))
    name = fields.pop("NodeName")
    line = " ".join(f"{k}={v}" for k, v in fields.items())
    return name, int(fields["CPUs"]), f"NodeName={name} NodeAddr=127.0.0.1 {line} State=UNKNOWN"


def slurm_conf(workdir: Path, node: str, node_desc: str, accounting: bool = False) -> str:
    """No cgroups; accounting in slurmdbd or none; jobs stay visible to squeue for 10 minutes."""
    storage = (
        f"accounting_storage/slurmdbd\nAccountingStorageHost=127.0.0.1\n"
        f"AccountingStoragePort={DB_PORTS[0]}"
        if accounting
        else "accounting_storage/none"
    )
    return f"""{MARKER}{workdir}
ClusterName=lbgaptest
SlurmctldHost={node}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
SlurmctldPort={PORTS[0]}
SlurmdPort={PORTS[1]}
StateSaveLocation={workdir}/state
SlurmdSpoolDir={workdir}/spool
SlurmctldPidFile={workdir}/slurmctld.pid
SlurmdPidFile={workdir}/slurmd.pid
SlurmctldLogFile={workdir}/slurmctld.log
SlurmdLogFile={workdir}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1000
EnforcePartLimits=ALL
AccountingStorageType={storage}
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
SwitchType=switch/none
MinJobAge=600
KillWait=10
InactiveLimit=0
ReturnToService=2
MailProg=/bin/true
{node_desc}
PartitionName={PARTITION} Nodes={node} Default=YES MaxTime=INFINITE State=UP
"""


def slurmdbd_conf(workdir: Path, node: str) -> str:
    """slurmdbd on 127.0.0.1, its tables in our MariaDB (no passwords: grant tables skipped)."""
    return f"""{MARKER}{workdir}
AuthType=auth/munge
DbdHost={node}
DbdAddr=127.0.0.1
DbdPort={DB_PORTS[0]}
SlurmUser=root
PidFile={workdir}/slurmdbd.pid
LogFile={workdir}/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort={DB_PORTS[1]}
StorageUser=root
StorageLoc=slurm_acct_db
"""


# ---------------------------------------------------------------- start
def munge_works() -> bool:
    enc = subprocess.run(["munge", "-n"], capture_output=True)
    if enc.returncode:
        return False
    return subprocess.run(["unmunge"], input=enc.stdout, capture_output=True).returncode == 0


def start_munged(workdir: Path) -> int | None:
    """Our own munged on the default socket, unless one already answers (then None)."""
    if munge_works():
        return None
    run_dir = Path("/run/munge")
    run_dir.mkdir(parents=True, exist_ok=True)
    shutil.chown(run_dir, "munge", "munge")
    log = workdir / "munged.log"
    log.touch()
    shutil.chown(log, "munge", "munge")
    with (workdir / "munged.out").open("w") as out:
        proc = subprocess.Popen(
            ["munged", "--foreground", f"--log-file={log}"],
            user="munge",
            group="munge",
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    wait_for(munge_works, 10, "munged did not answer")
    return proc.pid


def daemon(cmd: list[str], log: Path) -> int:
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    return proc.pid


def wait_for(check, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.3)
    raise RuntimeError(f"{what} within {seconds:.0f} s")


def node_idle() -> bool:
    out = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True)
    return out.returncode == 0 and out.stdout.strip() == "idle"


def port_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def sacct_works() -> bool:
    return subprocess.run(["sacct", "-X", "-n"], capture_output=True).returncode == 0


def start_accounting(cluster: Cluster) -> None:
    """MariaDB on 127.0.0.1 with its data in the scratch folder, then slurmdbd."""
    workdir = cluster.workdir
    db = workdir / "mariadb"
    init = ["mariadb-install-db", "--no-defaults", f"--datadir={db}", "--user=root",
            "--auth-root-authentication-method=normal", "--skip-test-db"]  # fmt: skip
    with (workdir / "mariadb-install.out").open("w") as out:
        subprocess.run(init, stdout=out, stderr=subprocess.STDOUT, check=True, timeout=120)
    cluster.pids["mariadbd"] = daemon(
        [
            "mariadbd",
            "--no-defaults",
            f"--datadir={db}",
            "--user=root",
            "--skip-grant-tables",
            "--bind-address=127.0.0.1",
            f"--port={DB_PORTS[1]}",
            f"--socket={workdir}/mysql.sock",
            f"--pid-file={workdir}/mariadbd.pid",
        ],  # fmt: skip
        workdir / "mariadbd.out",
    )
    cluster.save()
    wait_for(lambda: port_open(DB_PORTS[1]), 60, "MariaDB did not listen")
    DBD_CONF.write_text(slurmdbd_conf(workdir, cluster.node))
    DBD_CONF.chmod(0o600)
    cluster.pids["slurmdbd"] = daemon(["slurmdbd", "-D"], workdir / "slurmdbd.out")
    cluster.save()
    wait_for(lambda: port_open(DB_PORTS[0]), 60, "slurmdbd did not listen")


def start(workdir: Path, accounting: bool = False) -> Cluster:
    """Start munged (if none runs), [MariaDB, slurmdbd,] slurmctld and slurmd; return once the
    node is idle (and, with accounting, `sacct` answers)."""
    check_machine(accounting)
    workdir = Path(workdir).resolve()
    for sub in ("state", "spool"):
        (workdir / sub).mkdir(parents=True, exist_ok=True)
    node, cpus, desc = node_line()
    CONF.parent.mkdir(parents=True, exist_ok=True)
    CONF.write_text(slurm_conf(workdir, node, desc, accounting))
    cluster = Cluster(workdir, PARTITION, node, cpus, {}, accounting)
    try:
        munged = start_munged(workdir)
        if munged:
            cluster.pids["munged"] = munged
        cluster.save()
        if accounting:
            start_accounting(cluster)
        cluster.pids["slurmctld"] = daemon(
            ["slurmctld", "-D", "-c", "-i"], workdir / "slurmctld.out"
        )
        cluster.save()
        cluster.pids["slurmd"] = daemon(["slurmd", "-D"], workdir / "slurmd.out")
        cluster.save()
        wait_for(node_idle, 30, "the node did not become idle")
        if accounting:
            wait_for(sacct_works, 30, "sacct did not answer")
    except BaseException:
        stop(cluster)
        raise
    return cluster


# ---------------------------------------------------------------- stop
def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def end_process(pid: int, seconds: float = 10) -> None:
    """SIGTERM, then SIGKILL if it is still there after `seconds`."""
    if not alive(pid):
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + seconds
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
        with_child_reaped(pid)
    if alive(pid):
        os.kill(pid, signal.SIGKILL)
        with_child_reaped(pid)


def with_child_reaped(pid: int) -> None:
    """Collect our own child's exit status so it does not linger as a zombie."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def cancel_jobs() -> None:
    """Cancel every job of this throw-away cluster and wait until squeue shows none running."""
    subprocess.run(["scancel", "--full", "--user", "root"], capture_output=True, timeout=30)

    def none_running() -> bool:
        out = subprocess.run(
            ["squeue", "-h", "-t", "PD,R,CG", "-o", "%i"], capture_output=True, text=True
        )
        return out.returncode != 0 or not out.stdout.strip()

    try:
        wait_for(none_running, 30, "jobs did not end")
    except RuntimeError:
        pass


def stop(cluster: Cluster) -> None:
    """End the jobs, then slurmd, slurmctld, slurmdbd, MariaDB and our munged, by process id."""
    if "slurmctld" in cluster.pids and alive(cluster.pids["slurmctld"]):
        cancel_jobs()
    for name in ("slurmd", "slurmctld", "slurmdbd", "mariadbd", "munged"):
        if name in cluster.pids:
            end_process(cluster.pids[name], seconds=30 if name == "mariadbd" else 10)
    for conf in (CONF, DBD_CONF):
        if conf.exists() and conf.read_text().startswith(f"{MARKER}{cluster.workdir}\n"):
            conf.unlink()


def recorded_workdir() -> Path | None:
    """The scratch folder named in our slurm.conf, if the test cluster's config is in place."""
    if CONF.exists():
        first = CONF.read_text().splitlines()[0]
        if first.startswith(MARKER):
            return Path(first[len(MARKER) :])
    return None


def main(argv: list[str]) -> int:
    if argv[:1] == ["start"] and len(argv) in (2, 3) and argv[2:] in ([], ["--accounting"]):
        cluster = start(Path(argv[1]), accounting=argv[2:] == ["--accounting"])
        print(f"partition {cluster.partition} on {cluster.node}: {cluster.pids}")
        return 0
    if argv[:1] == ["stop"]:
        workdir = Path(argv[1]) if len(argv) > 1 else recorded_workdir()
        if workdir is None or not (workdir / "cluster.json").exists():
            print("no test cluster recorded", file=sys.stderr)
            return 1
        stop(Cluster.load(workdir))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
