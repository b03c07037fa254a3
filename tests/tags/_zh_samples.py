"""One event of every type the engine raises, with evidence and an English summary shaped as
its detector writes them (src/models, src/stream), and the check that a Chinese text holds no
English word: what is allowed is listed in ``ALLOWED`` and ``english_words``.

Imported by name (``from _zh_samples import SAMPLES``) by the alert, tag and web tests.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]

_CONS = {"observed_kw": 12.4, "expected_kw": 3.1, "band_kw": "1.20–5.40", "energy_kwh": 18.6,
         "usual_daily_kwh": 40.2, "ratio": 4.0, "energy_share": 0.463, "lasted_min": 120.0,
         "readings": 8, "baseline": "time-of-week baseline for Mon 10:00 (31 samples)",
         "z": 6.2}
_DAY = {"day_ratio": 0.31, "day_kwh": 9.8, "usual_day_kwh": 31.6, "shape_corr": 0.91}
_DEV = {"device_id": "TX-01", "site": "S1"}

#: (type, evidence, English summary): every type and kind the detectors raise.
SAMPLES: list[tuple[str, dict[str, Any], str]] = [
    ("abnormal_consumption", _CONS | {"kind": "sustained_rise"},
     "sustained rise: 12.40 kW where 3.10 kW is usual for Mon 10:00; 18.6 kWh above usual over "
     "2.0 h"),
    ("abnormal_consumption", _CONS | {"kind": "sustained_drop", "energy_kwh": -9.5},
     "sustained drop: 0.40 kW where 3.10 kW is usual for Mon 10:00; 9.5 kWh below usual"),
    ("abnormal_consumption", _CONS | {"kind": "zero_consumption", "energy_kwh": -6.0},
     "zero consumption: 0.00 kW where 3.10 kW is usual for Mon 10:00"),
    ("abnormal_consumption", _CONS | {"kind": "spike", "record_kw": 8.0, "record_factor": 1.5,
                                      "record_days": 28},
     "spike: 12.40 kW for 30 min, beyond the meter's own record of 8.00 kW (last 28 days)"),
    ("abnormal_consumption", _DAY | {"kind": "level_shift_up", "day_ratio": 2.4, "days": 3,
                                     "threshold_ratio": 1.8,
                                     "baseline": "the meter's usual curve for this day type"},
     "level shift up: 3 days at 240% of the usual daily energy"),
    ("abnormal_consumption", _DAY | {"kind": "level_shift_down", "days": 3,
                                     "threshold_ratio": 1.8,
                                     "baseline": "the meter's usual curve for this day type"},
     "level shift down: 3 days at 31% of the usual daily energy"),
    ("possible_theft", _DAY | {"days_low": 4, "threshold_ratio": 0.5, "strong": True,
                               "baseline": "the meter's usual curve for this day type"},
     "4 days at 31% of the energy the meter's own history expects, with the usual daily shape"),
    ("possible_theft", {"window_ratio": 0.35, "window_hours": 12, "shape_corr": 0.88,
                        "swing_ratio": 0.9, "observed_kwh": 7.2, "expected_kwh": 20.5,
                        "threshold_ratio": 0.5, "strong": False,
                        "baseline": "the meter's usual mean load of each hour"},
     "12 h at 35% of the energy the meter usually draws in those hours, with the usual shape"),
    ("outage", {"kind": "last_gasp", "last_reading_at": "2026-05-04T01:45:00Z",
                "expected_interval_s": 900, "missed_intervals": 3, "last_kw": 2.1,
                "reason": "the last reading reported a power failure"},
     "no reading for 3 intervals (45 min): the last reading reported a power failure"),
    ("outage", {"kind": "silence", "last_reading_at": "2026-05-04T01:45:00Z",
                "expected_interval_s": 900, "missed_intervals": 3, "last_kw": 2.1,
                "reason": "the last reading had no voltage"},
     "no reading for 3 intervals (45 min): the last reading had no voltage"),
    ("comm_loss", {"kind": "silence", "last_reading_at": "2026-05-04T01:45:00Z",
                   "expected_interval_s": 900, "missed_intervals": 4, "last_kw": 2.1,
                   "reason": "the meter stopped reporting; its last reading looked normal"},
     "no reading for 4 intervals (60 min): the meter stopped reporting"),
    ("tamper", {"kind": "reverse_flow,cover_open", "kw": -1.2, "kwh": 1520.5,
                "previous_kwh": 1520.7, "has_export": False},
     "possible tampering: reverse_flow, cover_open"),
    ("register_frozen", {"kwh": 1520.5, "kw": 3.2, "expected_increment_kwh": 0.8},
     "the energy register stopped while power is flowing"),
    ("stuck_reading", {"kw": 3.2, "identical_readings": 12}, "the same value 3.2 kW repeated"),
    ("clock_drift", {"offset_s": 95.0, "interval_s": 900, "clock_invalid_flag": False},
     "timestamps are 95 s off the 900 s grid"),
    ("clock_drift", {"kind": "backwards", "timestamp": "2026-05-04T01:30:00Z",
                     "previous": "2026-05-04T01:45:00Z"}, "timestamps went backwards"),
    ("voltage_sag", {"observed_v": 190.2, "limit_v": 198.0, "nominal_v": 220.0,
                     "limit_pct": -10}, "voltage 190.2 V below the 198.0 V limit"),
    ("voltage_swell", {"observed_v": 246.0, "limit_v": 235.4, "nominal_v": 220.0,
                       "limit_pct": 7}, "voltage 246.0 V above the 235.4 V limit"),
    ("phase_imbalance", {"kind": "current", "unbalance_pct": 32.5,
                         "voltage": "(231.0, 229.5, 230.2)", "current": "(40.1, 22.0, 25.3)"},
     "current unbalance 32.5% between phases"),
    ("low_power_factor", {"observed_pf": 0.72, "limit_pf": 0.85, "kw": 120.0},
     "power factor 0.72 below 0.85"),
    ("over_capacity_risk", {"contracted_kva": 630, "current_kva": 580.2, "projected_kva": 650.5,
                            "projected_crossing": "2026-05-04T02:30:00Z", "lead_min": 30.0,
                            "trend_kw_per_interval": 12.5, "horizon_min": 60},
     "demand projected to reach 650.5 kVA of the contracted 630 kVA in 30 min"),
    ("overload_forecast", {"forecast": 540.0, "limit": 500.0, "lead_min": 45.0, "horizon": 3,
                           "expected_at": "2026-05-04T02:45:00+00:00",
                           "target_kind": "transformer"},
     "transformer load of TX-01 forecast to reach 108% of its limit in 45 min"),
    ("capacity_forecast", {"forecast": 660.0, "limit": 630.0, "lead_min": 30.0, "horizon": 2,
                           "expected_at": "2026-05-04T02:30:00+00:00",
                           "target_kind": "customer"},
     "demand of C0001 forecast to reach 105% of its limit in 30 min"),
    ("feeder_outage", {"silent_meters": 9, "meters_in_cell": 10, "share_silent": 0.9,
                       "meters_back": 0, "lasted_min": 15.0},
     "probable feeder outage in cell CELL-A: 9 of 10 meters went silent together"),
    ("device_overload", _DEV | {"device_kind": "transformer", "load_of_rated": 1.18,
                                "kva": 743.4, "rated_kva": 630},
     "transformer TX-01: loaded above its rating"),
    ("device_overload", _DEV | {"device_kind": "motor", "current_of_rated": 1.25,
                                "mean_current_a": 125.0, "rated_current_a": 100.0},
     "motor TX-01: loaded above its rating"),
    ("device_overheating", _DEV | {"device_kind": "transformer", "oil_temp_c": 98.0,
                                   "winding_temp_c": 112.0, "oil_temp_c_above_model": 14.2,
                                   "winding_temp_c_above_model": 15.0},
     "transformer TX-01: overheating (temperatures above its thermal model)"),
    ("phase_unbalance", _DEV | {"device_kind": "motor", "unbalance": 0.22, "current_a": 80.0,
                                "current_b": 61.0, "current_c": 59.0},
     "motor TX-01: three-phase current unbalance"),
    ("sensor_fault", _DEV | {"device_kind": "motor", "winding_temp_c": 70.0,
                             "bearing_temp_c": 20.0, "sensor": "bearing_temp_c",
                             "mode": "stuck"},
     "motor TX-01: a temperature sensor disagrees with the others"),
    ("off_shift_running", _DEV | {"device_kind": "compressor", "kw": 45.0,
                                  "hours_outside_shift": 2.5, "shift": "8-18 h"},
     "compressor TX-01: running outside its shift"),
    ("inverter_trip", _DEV | {"device_kind": "pv_inverter", "kw": 0.0, "irradiance_w_m2": 820.0,
                              "expected_kw": 41.0},
     "pv_inverter TX-01: inverter produces nothing in sunshine"),
    ("compressor_wear", _DEV | {"device_kind": "compressor", "power_above_model_of_rated": 0.12,
                                "flow_m3min": 10.5, "kw": 61.0},
     "compressor TX-01: draws more power for the same output (wear)"),
]

_TYPE_PATTERNS = (
    r'\btype="([a-z_]+)"', r'\bETYPE = "([a-z_]+)"',
    r'etype = "([a-z_]+)" if [^\n]* else "([a-z_]+)"',
    r'\b(?:cond|fire|resolve)\(\s*rec,\s*(?:ev,\s*)?"([a-z_]+)"', r'conds\["([a-z_]+)"\]',
)


def raised_types() -> set[str]:
    """The event types the detectors' source can raise (read from src/models, src/stream and
    src/devices, so a new detector's type is seen without anyone listing it)."""
    found: set[str] = set()
    for folder in ("models", "stream", "devices"):
        for path in (REPO / "src" / folder).glob("*.py"):
            text = path.read_text(encoding="utf-8")
            for pat in _TYPE_PATTERNS:
                for m in re.finditer(pat, text):
                    found.update(g for g in m.groups() if g)
    return found


#: ASCII that a Chinese message may hold: the product name (signature and subject tag), units
#: (kW, kWh, kVA, V, A, W/m², m³/min, °C, h, min), time-zone abbreviations; ids, URLs and
#: commands are removed by ``english_words`` before the check.
ALLOWED = {"gridwatch", "kW", "kWh", "kVA", "V", "A", "W", "h", "min", "CST", "UTC"}

_URL = re.compile(r"https?://\S+|(?<![\w/])/(?:customer|alert|cell|portal)/\S+")
_COMMAND = re.compile(r"gridwatch alerts (?:ack|list|show)(?: --[a-z-]+ \S+)*(?: (?!--)\S+)?")
_WORD = re.compile(r"[A-Za-z]+")


def english_words(text: str, ids: Iterable[str] = ()) -> list[str]:
    """ASCII words longer than 3 letters in ``text`` outside URLs, the ``gridwatch alerts ...``
    commands, the given ids (meter, customer, cell, device, fingerprint) and ``ALLOWED``."""
    text = _COMMAND.sub(" ", _URL.sub(" ", text))
    for ident in sorted(ids, key=len, reverse=True):
        if ident:
            text = re.sub(rf"(?<![\w-]){re.escape(ident)}(?![\w-])", " ", text)
    return [w for w in _WORD.findall(text) if len(w) > 3 and w not in ALLOWED]
