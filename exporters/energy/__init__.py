"""hpcwatch.exporters.energy: node energy (RAPL, GPUs, a node power meter) attributed to the jobs on the node."""
