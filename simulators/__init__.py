"""gridwatch.simulators: meter fleets with labelled, injected anomalies, and recorded-data replay.

``Fleet.load(path)`` reads a fleet file; ``Fleet.generate(seed)`` returns the readings (an
iterator in time order) and the ground-truth labels; targets send them to MQTT or files.
"""

from gridwatch.simulators._anomalies import Label, read_labels, write_labels
from gridwatch.simulators._engine import Block, Simulation
from gridwatch.simulators._fleet import ANOMALY_SHAPES, Fleet, FleetError, SimMeter

__all__ = [
    "ANOMALY_SHAPES",
    "Block",
    "Fleet",
    "FleetError",
    "Label",
    "SimMeter",
    "Simulation",
    "read_labels",
    "write_labels",
]
