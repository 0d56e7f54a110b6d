"""Real daemons for tests and `hpcwatch demo`: each starts on loopback, in a work directory, on free
ports, and stops cleanly (process groups killed, nothing left behind), also when start-up fails.

    with SlurmCluster(tmpdir) as slurm:
        jobid = slurm.sbatch(wrap="sleep 30")
"""

from hpcwatch.harness.util import DaemonError, MissingDaemon, free_port, wait_http, which

__all__ = ["DaemonError", "MissingDaemon", "free_port", "wait_http", "which"]
