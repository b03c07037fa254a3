"""The fleet: a fleet file's settings (:class:`~gridwatch.simulators._spec.FleetSpec`) together
with the meters and the data they describe.

The top of the simulator's one-way chain of modules: ``_spec`` (the settings) ← ``_population``,
``_anomalies``, ``_load`` ← ``_engine`` ← here. Nothing below imports this module.
"""

from __future__ import annotations

from collections.abc import Iterator

from gridwatch._schemas import Reading
from gridwatch.simulators._anomalies import Label
from gridwatch.simulators._engine import Simulation
from gridwatch.simulators._population import build_meters
from gridwatch.simulators._spec import (
    ANOMALY_SHAPES,
    BDEW_PROFILES,
    ClassSpec,
    FleetError,
    FleetSpec,
    SimMeter,
    parse_duration,
)

__all__ = [
    "ANOMALY_SHAPES",
    "BDEW_PROFILES",
    "ClassSpec",
    "Fleet",
    "FleetError",
    "SimMeter",
    "parse_duration",
]


class Fleet(FleetSpec):
    """A simulated meter fleet, as read from ``config/fleets/<name>.yaml`` (``Fleet.load``),
    with its meters and its data."""

    def meters(self, seed: int | None = None) -> list[SimMeter]:
        """The fleet's meters, drawn deterministically from ``seed`` (default: the fleet's)."""
        return build_meters(self, self.seed if seed is None else seed)

    def generate(self, seed: int | None = None) -> tuple[Iterator[Reading], list[Label]]:
        """All readings in time order across meters (generated interval by interval, so memory
        stays bounded) and the ground-truth labels of the injected anomalies."""
        sim = Simulation(self, self.seed if seed is None else seed)
        return sim.readings(), sim.labels
