"""The energy collector's families as data (hpc_job_energy_* per job, hpc_energy_* per node)."""

from __future__ import annotations

from hpcwatch.exporters.families import FamilyTable, counter, gauge

FAMILIES = FamilyTable([
    counter("hpc_job_energy_joules_total",
            "Energy attributed to the job on this node, by component (cpu: RAPL packages and dram: RAPL DRAM by the "
            "job's share of busy CPU time; gpu: the GPUs the job holds, MIG by SM share; other: the rest of a "
            "metered node, by CPU share). Starts at 0 when the job (or the agent) starts.", "jobid", "component"),
    counter("hpc_energy_node_joules_total",
            "Energy this node used since the agent started, by component, as the energy collector measured it.",
            "component"),
    counter("hpc_energy_unattributed_joules_total",
            "The part of the node's energy no job ran: idle GPUs, CPU time of processes outside jobs, unused MIG "
            "slices. Jobs plus this equal the node's energy, per component.", "component"),
    gauge("hpc_energy_node_power_watts",
          "Power the node draws now, from its power meter (source: hwmon ACPI power_meter, or ipmi DCMI).", "source"),
])
