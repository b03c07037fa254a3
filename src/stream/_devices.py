"""Device telemetry in the dataflow: a ``StatefulLogic`` per device kind (and hash shard).

Telemetry is keyed ``<kind>:<shard>`` (``shards`` per kind, 1 by default): the River models of
a kind are shared by its devices in one step, while each device keeps only its compact
:class:`~gridwatch.models._device.DeviceState`. A utility has far fewer monitored devices than
meters (a transformer per few hundred meters, a few machines per industrial site), so a handful
of keys carry them; raise ``shards`` to spread a large kind over more workers (each shard then
learns its own copy of the kind's models).
"""

from __future__ import annotations

import pickle
import zlib
from collections.abc import Callable
from typing import Any

import bytewax.operators as op
from bytewax.dataflow import Stream
from bytewax.operators import StatefulLogic

from gridwatch._schemas import DeviceTelemetry, Event
from gridwatch.devices import Device
from gridwatch.models._device import DeviceState, DeviceThresholds, KindModel

__all__ = ["DeviceKindLogic", "DeviceLookup", "device_events", "registry_devices"]

DeviceLookup = Callable[[str], Device | None]


class DeviceKindLogic(StatefulLogic[DeviceTelemetry, Event, bytes]):
    """One device kind (shard): its shared models and each device's compact state. Telemetry
    of a device the registry does not know is counted in ``unknown`` and not judged (it is
    still stored)."""

    def __init__(self, resume: bytes | None, lookup: DeviceLookup,
                 thresholds: DeviceThresholds) -> None:
        self.lookup = lookup
        self.thresholds = thresholds
        self.model: KindModel | None = None
        self.states: dict[str, DeviceState] = {}
        self.unknown = 0
        if resume:
            self.model, self.states, self.unknown = pickle.loads(resume)

    def on_item(self, value: DeviceTelemetry) -> tuple[list[Event], bool]:
        dev = self.lookup(value.device_id)
        if dev is None:
            self.unknown += 1
            return [], StatefulLogic.RETAIN
        if self.model is None:
            self.model = KindModel(dev.kind.value)
        state = self.states.get(dev.id)
        if state is None:
            state = self.states[dev.id] = DeviceState(dev.id)
        return state.step(value, dev, self.model, self.thresholds), StatefulLogic.RETAIN

    def snapshot(self) -> bytes:
        return pickle.dumps((self.model, self.states, self.unknown))


def device_key(t: DeviceTelemetry, lookup: DeviceLookup, shards: int = 1) -> str:
    dev = lookup(t.device_id)
    kind = dev.kind.value if dev is not None else t.kind
    return f"{kind}:{zlib.crc32(t.device_id.encode()) % shards}"


def device_events(telemetry: Stream[Any], lookup: DeviceLookup | None, *, shards: int = 1,
                  thresholds: DeviceThresholds | None = None) -> Stream[Event]:
    """The device-detection steps of the dataflow: telemetry in, device events out."""
    find: DeviceLookup = lookup if lookup is not None else (lambda _d: None)
    th = thresholds or DeviceThresholds()
    only = op.filter("devices_only", telemetry, lambda x: isinstance(x, DeviceTelemetry))
    keyed = op.key_on("key_device_kind", only, lambda t: device_key(t, find, shards))
    judged = op.stateful("device_kind", keyed, lambda resume: DeviceKindLogic(resume, find, th))
    return op.map("device_v", judged, lambda kv: kv[1])


def registry_devices(settings: Any, router: Any = None) -> DeviceLookup | None:
    """Device facts for the dataflow: the router's registry when there is a router (it follows
    reloads), else the registry file of the settings; none without one."""
    if router is not None:
        return lambda device_id: router.registry.device(device_id)
    path = settings.alerts.registry
    if not path.exists():
        return None
    from gridwatch.alerts import Registry

    return Registry.load(path).device
