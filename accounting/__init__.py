"""hpcwatch.accounting: one summary per finished job, kept in Parquet, priced, and reported to its owner.

record (the summary and its Parquet schema), sacct (the batched accounting reader), enrich (bounded,
batched Prometheus range queries), prices (the operator's price table) and cost, store (the dataset),
rules (the notes a report gives), report and cli (`hpcwatch job report`).
"""
