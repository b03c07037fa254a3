"""gridwatch.simulators: meter fleets with labelled, injected anomalies, and recorded-data replay.

``Fleet.load(path)`` reads a fleet file; ``Fleet.generate(seed)`` returns the readings (an
iterator in time order) and the ground-truth labels; the targets send them to MQTT or files.
``inject(load_series(readings), Mix.parse("spike=10,theft=3"), seed)`` writes the field's faults
into recorded data, with labels.

Names are imported on first use, so ``gridwatch --help`` does not pay for numpy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gridwatch._lazy import lazy_exports

if TYPE_CHECKING:
    from gridwatch.simulators._anomalies import Label, read_labels, write_labels
    from gridwatch.simulators._engine import Block, Simulation
    from gridwatch.simulators._fleet import Fleet
    from gridwatch.simulators._inject import INJECT_SHAPES, Mix, Series, inject, load_series
    from gridwatch.simulators._registry import registry_dict, write_registry
    from gridwatch.simulators._replay import ColumnMap, Replay, nab_labels
    from gridwatch.simulators._spec import ANOMALY_SHAPES, FleetError, SimMeter
    from gridwatch.simulators._targets import (
        CapturedMqtt,
        CsvTarget,
        JsonlTarget,
        MemoryTarget,
        MqttTarget,
        Pacer,
        SimulateError,
        open_target,
        parse_speed,
    )

_WHERE = {
    "ANOMALY_SHAPES": "_spec", "Fleet": "_fleet", "FleetError": "_spec", "SimMeter": "_spec",
    "Label": "_anomalies", "read_labels": "_anomalies", "write_labels": "_anomalies",
    "Block": "_engine", "Simulation": "_engine",
    "INJECT_SHAPES": "_inject", "Mix": "_inject", "Series": "_inject", "inject": "_inject",
    "load_series": "_inject",
    "registry_dict": "_registry", "write_registry": "_registry",
    "ColumnMap": "_replay", "Replay": "_replay", "nab_labels": "_replay",
    "CapturedMqtt": "_targets", "CsvTarget": "_targets", "JsonlTarget": "_targets",
    "MemoryTarget": "_targets",
    "MqttTarget": "_targets", "Pacer": "_targets", "SimulateError": "_targets",
    "open_target": "_targets", "parse_speed": "_targets",
}

__all__ = [
    "ANOMALY_SHAPES",
    "INJECT_SHAPES",
    "Block",
    "CapturedMqtt",
    "ColumnMap",
    "CsvTarget",
    "Fleet",
    "FleetError",
    "JsonlTarget",
    "Label",
    "MemoryTarget",
    "Mix",
    "MqttTarget",
    "Pacer",
    "Replay",
    "Series",
    "SimMeter",
    "SimulateError",
    "Simulation",
    "inject",
    "load_series",
    "nab_labels",
    "open_target",
    "parse_speed",
    "read_labels",
    "registry_dict",
    "write_labels",
    "write_registry",
]


__getattr__, __dir__ = lazy_exports(__name__, _WHERE, globals())
