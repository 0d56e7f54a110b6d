"""hpcwatch.exporters.scheduler: the scheduler-neutral model shared by the Slurm and Flux adapters.

`outcomes` maps scheduler states to (outcome, cause); `model` holds the neutral records
(`FinishedJob`, `QueueSnapshot`); `ledger` counts finished jobs exactly once across restarts;
`families` builds the `hpc_scheduler_*` metric families from them.
"""
