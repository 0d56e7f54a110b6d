"""IBM Storage Scale / GPFS (`gpfs`, snapshot): `parse` (mmpmon fs_io_s, mmdf -Y, mmhealth node show
-Y), `collector` runs the commands and registers the collector.
"""
