"""hpcwatch.exporters.scheduler: what the Slurm and Flux adapters share.

`outcomes` maps scheduler states to (outcome, cause); `model` holds the neutral records
(`FinishedJob`, `QueueSnapshot`); `ledger` counts finished jobs exactly once across restarts;
`families` declares and builds the `hpc_scheduler_*` families; `adapter` is the collector base
(ledger, state file, snapshot, cache, the seven shared options) each adapter implements reads for.
"""
