"""Device telemetry in the dataflow: a ``StatefulLogic`` per device kind (and hash shard).

Telemetry is keyed ``<kind>:<shard>`` (``shards`` per kind, 1 by default): the River models of
a kind are shared by its devices in one step, while each device keeps only its compact
:class:`~gridwatch.models._device.DeviceState`. A utility has far fewer monitored devices than
meters (a transformer per few hundred meters, a few machines per industrial site), so a handful
of keys carry them; raise ``shards`` to spread a large kind over more workers (each shard then
learns its own copy of the kind's models).
"""

from __future__ import annotations

import logging
import pickle
import zlib
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, NamedTuple

import bytewax.operators as op
from bytewax.dataflow import Stream
from bytewax.operators import StatefulLogic

from gridwatch._schemas import CustomerClass, DeviceTelemetry, Event, Forecast, MeterMeta, Reading
from gridwatch.devices import Device, DeviceKind
from gridwatch.models._config import DetectionSettings
from gridwatch.models._device import DeviceState, DeviceThresholds, KindModel
from gridwatch.models._forecast import LoadForecaster

__all__ = ["CustomerLoad", "CustomerLoadLogic", "DeviceKindLogic", "DeviceLookup",
           "device_events", "registry_devices"]

DeviceLookup = Callable[[str], Device | None]
log = logging.getLogger(__name__)


class DeviceKindLogic(StatefulLogic[DeviceTelemetry, Event, bytes]):
    """One device kind (shard): its shared models and each device's compact state. Telemetry
    of a device the registry does not know is counted in ``unknown`` and not judged (it is
    still stored); telemetry the models cannot take is counted in ``failed`` and logged."""

    def __init__(self, resume: bytes | None, lookup: DeviceLookup,
                 thresholds: DeviceThresholds, tz: str = "UTC",
                 country: str | None = None) -> None:
        self.lookup = lookup
        self.thresholds = thresholds
        self.tz = tz
        self.country = country
        self.model: KindModel | None = None
        self.states: dict[str, DeviceState] = {}
        self.forecasters: dict[str, LoadForecaster] = {}
        self.unknown = 0
        self.failed = 0
        if resume:
            (self.model, self.states, self.forecasters, self.unknown,
             self.failed) = pickle.loads(resume)

    def on_item(self, value: DeviceTelemetry) -> tuple[list[Event | Forecast], bool]:
        dev = self.lookup(value.device_id)
        if dev is None:
            self.unknown += 1
            return [], StatefulLogic.RETAIN
        if self.model is None:
            self.model = KindModel(dev.kind.value)
        state = self.states.get(dev.id)
        if state is None:
            state = self.states[dev.id] = DeviceState(dev.id)
        out: list[Event | Forecast] = []
        try:
            out.extend(state.step(value, dev, self.model, self.thresholds))
            if dev.kind is DeviceKind.TRANSFORMER and "kva" in value.metrics:
                fc = self.forecasters.get(dev.id)
                if fc is None:
                    fc = self.forecasters[dev.id] = LoadForecaster(
                        dev.id, "transformer", dev.ratings.kva, tz=self.tz,
                        grid_cell=dev.grid_cell, country=self.country)
                forecasts, warnings = fc.update(value.ts, abs(value.metrics["kva"]))
                out.extend(forecasts)
                out.extend(warnings)
        except (ArithmeticError, ValueError, TypeError) as exc:
            # telemetry the models cannot take must not stop the engine: counted and logged
            # (the telemetry itself is stored by the points sink)
            self.failed += 1
            log.warning("device %s: telemetry at %s not judged (%s: %s)", dev.id,
                        value.ts.isoformat(), type(exc).__name__, exc)
        return out, StatefulLogic.RETAIN

    def snapshot(self) -> bytes:
        return pickle.dumps((self.model, self.states, self.forecasters, self.unknown,
                             self.failed))


class CustomerLoad(NamedTuple):
    """What an industrial customer's step needs of one of its meters' readings. It crosses to
    the customer's worker in this form, 102 bytes pickled, against 414 for a
    :class:`Reading` with every field (and a fifth of the time to pickle and unpickle)."""

    meter_id: str
    t: float  #: the reading's time, epoch seconds
    kw: float
    interval_s: int | None

    @classmethod
    def of(cls, r: Reading) -> CustomerLoad:
        return cls(r.meter_id, r.ts.timestamp(), r.kw, r.interval_s)


class CustomerLoadLogic(StatefulLogic[CustomerLoad, Event | Forecast, bytes]):
    """One industrial customer: sums its meters' power per interval (an interval is complete
    when a later one starts) and forecasts it against the contracted capacity; a load the
    forecaster cannot take is counted in ``failed`` and logged."""

    def __init__(self, resume: bytes | None, meta: Callable[[str], MeterMeta | None],
                 tz: str = "UTC", country: str | None = None) -> None:
        self.meta = meta
        self.tz = tz
        self.country = country
        self.fc: LoadForecaster | None = None
        self.open: dict[float, float] = {}
        self.capacity: dict[str, float] = {}
        self.failed = 0
        if resume:
            self.fc, self.open, self.capacity, self.failed = pickle.loads(resume)

    def on_item(self, value: CustomerLoad) -> tuple[list[Event | Forecast], bool]:
        m = self.meta(value.meter_id)
        if m is None or m.customer_id is None:
            return [], StatefulLogic.RETAIN
        if m.contracted_kva:
            self.capacity[value.meter_id] = m.contracted_kva
        t = value.t
        out: list[Event | Forecast] = []
        for done in sorted(x for x in self.open if x < t):
            total = self.open.pop(done)
            if self.fc is None:
                self.fc = LoadForecaster(m.customer_id, "customer", None, tz=self.tz,
                                         interval_s=value.interval_s or 900,
                                         grid_cell=m.grid_cell, customer_id=m.customer_id,
                                         country=self.country)
            self.fc.limit = sum(self.capacity.values()) or None
            try:
                forecasts, warnings = self.fc.update(datetime.fromtimestamp(done, UTC), total)
            except (ArithmeticError, ValueError, TypeError) as exc:
                self.failed += 1
                log.warning("customer %s: load at %s not forecast (%s: %s)", m.customer_id,
                            done, type(exc).__name__, exc)
                continue
            out.extend(forecasts)
            out.extend(warnings)
        self.open[t] = self.open.get(t, 0.0) + max(value.kw, 0.0)
        return out, StatefulLogic.RETAIN

    def snapshot(self) -> bytes:
        return pickle.dumps((self.fc, self.open, self.capacity, self.failed))


def device_key(t: DeviceTelemetry, lookup: DeviceLookup, shards: int = 1) -> str:
    dev = lookup(t.device_id)
    kind = dev.kind.value if dev is not None else t.kind
    return f"{kind}:{zlib.crc32(t.device_id.encode()) % shards}"


def device_events(telemetry: Stream[Any], lookup: DeviceLookup | None,
                  detection: DetectionSettings | None = None, *,
                  readings: Stream[Any] | None = None,
                  meta: Callable[[str], MeterMeta | None] | None = None, shards: int = 1,
                  thresholds: DeviceThresholds | None = None) -> Stream[Event | Forecast]:
    """The device steps of the dataflow: telemetry in, device events and transformer forecasts
    out; with ``readings`` and ``meta`` also the forecasts of industrial customers."""
    find: DeviceLookup = lookup if lookup is not None else (lambda _d: None)
    th = thresholds or DeviceThresholds()
    tz = detection.timezone if detection is not None else "UTC"
    country = detection.holiday_country if detection is not None else None
    only = op.filter("devices_only", telemetry, lambda x: isinstance(x, DeviceTelemetry))
    keyed = op.key_on("key_device_kind", only, lambda t: device_key(t, find, shards))
    judged = op.stateful("device_kind", keyed,
                         lambda resume: DeviceKindLogic(resume, find, th, tz, country))
    out = op.map("device_v", judged, lambda kv: kv[1])
    if readings is None or meta is None:
        return out
    info = meta

    def industrial(r: Any) -> tuple[str, CustomerLoad] | None:
        m = info(r.meter_id)
        if m is None or m.customer_id is None \
                or m.customer_class is not CustomerClass.INDUSTRIAL:
            return None
        return m.customer_id, CustomerLoad.of(r)

    # one step picks and keys an industrial customer's readings (every reading passes it)
    by_customer = op.filter_map("industrial_by_customer", readings, industrial)
    load = op.stateful("customer_load", by_customer,
                       lambda resume: CustomerLoadLogic(resume, info, tz, country))
    return op.merge("device_and_customer", out, op.map("customer_v", load, lambda kv: kv[1]))


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
