"""Node energy (`energy`, snapshot, node agent): RAPL, GPUs and a node power meter attributed to the jobs
on the node. `attribution` (pure), `ipmi` (parser), `sampler`, `families` (the table), `collector`.
"""
