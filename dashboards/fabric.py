"""Fabric: InfiniBand/RoCE bandwidth per port, port state, error counters, congestion, saturated counters."""

from __future__ import annotations

from hpcwatch.dashboards.helpers import (
    ANY_BAD,
    HIGH_BAD_RATIO,
    NODE,
    Dashboard,
    Q,
    bargauge,
    cluster_variable,
    down_count,
    instance_variable,
    row,
    stat,
    table,
    timeseries,
)

from hpcwatch import metric_names as n

UID = "hpcwatch-fabric"
RI = "$__rate_interval"
PORT = "{{instance}} {{device}}/{{port}}"


def ctr(metric: str, counter: str) -> str:
    """A per-counter series of the fabric error / hw_counters families, with the dashboard filters."""
    return f'{metric}{{counter="{counter}",{NODE}}}'


def build() -> Dashboard:
    s = NODE
    panels = [
        row("Ports"),
        stat("Ports", "HCA ports the node agents report.", f"count({n.FABRIC_PORT_STATE}{{{s}}})", "none"),
        stat("Ports not active", "Ports whose logical state is not Active (4): no traffic can flow.",
             down_count(f"{n.FABRIC_PORT_STATE}{{{s}}}", f"!= bool {n.FABRIC_STATE_ACTIVE}"), "none", ANY_BAD),
        stat("Physical state changes (1h)", "Physical link state transitions in the last hour: flapping links.",
             f"sum(changes({n.FABRIC_PORT_PHYS_STATE}{{{s}}}[1h]))", "none", ANY_BAD),
        stat("Saturated counters", "Error counters pinned at their maximum: IB counters stop instead of "
             "wrapping, so a flat line there hides new errors. Reset them with perfquery -R.",
             f"sum({n.FABRIC_COUNTER_SATURATED}{{{s}}})", "none", ANY_BAD),
        row("Bandwidth"),
        timeseries("Transmit", "Bytes sent per second per port.",
                   [Q(f"rate({n.FABRIC_TRANSMIT_BYTES}{{{s}}}[{RI}])", PORT)], "Bps", min_=0),
        timeseries("Receive", "Bytes received per second per port.",
                   [Q(f"rate({n.FABRIC_RECEIVE_BYTES}{{{s}}}[{RI}])", PORT)], "Bps", min_=0),
        bargauge("Link utilisation", "Transmit and receive rate as a share of the port's link rate.",
                 [Q(f"rate({n.FABRIC_TRANSMIT_BYTES}{{{s}}}[{RI}]) / on (instance, device, port) "
                    f"{n.FABRIC_PORT_RATE}{{{s}}}", f"{PORT} tx", instant=True),
                  Q(f"rate({n.FABRIC_RECEIVE_BYTES}{{{s}}}[{RI}]) / on (instance, device, port) "
                    f"{n.FABRIC_PORT_RATE}{{{s}}}", f"{PORT} rx", instant=True)],
                 thresholds=HIGH_BAD_RATIO, w=24),
        row("Errors"),
        timeseries("Symbol and link errors", "Symbol errors and link error recoveries per second: a bad cable, "
                   "transceiver or port.",
                   [Q(f"rate({ctr(n.FABRIC_ERRORS, n.FABRIC_SYMBOL_ERROR)}[{RI}])", f"{PORT} symbol"),
                    Q(f"rate({ctr(n.FABRIC_ERRORS, n.FABRIC_LINK_ERROR_RECOVERY)}[{RI}])", f"{PORT} link recovery")],
                   "short", ANY_BAD, 0),
        timeseries("Link downed", "Times the link went down (increase over the interval).",
                   [Q(f"increase({ctr(n.FABRIC_ERRORS, n.FABRIC_LINK_DOWNED)}[{RI}])", PORT)], "none", ANY_BAD, 0),
        timeseries("Receive errors and transmit discards", "Malformed packets received and packets dropped on "
                   "transmit, per second.",
                   [Q(f"rate({ctr(n.FABRIC_ERRORS, n.FABRIC_RCV_ERRORS)}[{RI}])", f"{PORT} rcv errors"),
                    Q(f"rate({ctr(n.FABRIC_ERRORS, n.FABRIC_XMIT_DISCARDS)}[{RI}])", f"{PORT} xmit discards")],
                   "short", ANY_BAD, 0),
        table("Port state", "Logical (4 = Active) and physical (5 = LinkUp) state of every port.",
              [Q(f"{n.FABRIC_PORT_STATE}{{{s}}}", "state"), Q(f"{n.FABRIC_PORT_PHYS_STATE}{{{s}}}", "phys state")],
              "none", hide=("Time", "__name__", "job"), w=12),
        row("Congestion"),
        timeseries("Transmit wait", "Ticks per second a port had data to send but no credits: congestion "
                   "downstream.", [Q(f"rate({n.FABRIC_TRANSMIT_WAIT}{{{s}}}[{RI}])", PORT)], "short", min_=0),
        timeseries("RoCE ECN and CNP", "RoCE packets marked with ECN and congestion notification packets sent.",
                   [Q(f"rate({ctr(n.FABRIC_HW_EVENTS, n.FABRIC_ECN_MARKED)}[{RI}])", f"{PORT} ecn marked"),
                    Q(f"rate({ctr(n.FABRIC_HW_EVENTS, n.FABRIC_CNP_SENT)}[{RI}])", f"{PORT} cnp sent")], "pps", min_=0),
        table("Saturated counters", "Counters pinned at their maximum width.",
              [Q(f"{n.FABRIC_COUNTER_SATURATED}{{{s}}} == 1", "")], "none",
              hide=("Time", "__name__", "Value", "job"), w=24, h=6),
    ]
    return Dashboard(UID, "hpcwatch / Fabric", "InfiniBand and RoCE ports: bandwidth, state, errors, "
                     "congestion and saturated counters.", "fabric", panels,
                     [cluster_variable(n.FABRIC_PORT_STATE), instance_variable(n.FABRIC_PORT_STATE)], ("fabric",))
