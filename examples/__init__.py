"""hpcwatch.examples: example SLO specs, shipped as package data (`hpcwatch generate` reads slo/hpc-catalogue.yaml)."""
