"""gridwatch.devices: devices of the registry (transformers of a grid cell, an industrial
site's equipment) with their kinds, owners, ratings and shifts."""

from gridwatch.devices._registry import Device, DeviceKind, Ratings, Shift, check_devices

__all__ = ["Device", "DeviceKind", "Ratings", "Shift", "check_devices"]
