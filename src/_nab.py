"""The Numenta Anomaly Benchmark: corpus reader, scorer and the detectors run over it.

The scorer follows NAB's published rules (Lavin & Ahmad 2015; NAB's ``sweeper.py``): each file is
a stream scored one record at a time; the first 15% of each file (at most 750 records) is
probation; a detection inside a window earns a scaled sigmoid of its relative position (earlier is
better; only the best detection of a window counts); a detection outside every window costs the
profile's FP weight times a sigmoid of its distance after the previous window; a missed window
costs the FN weight. One threshold per profile is chosen by a sweep over all files, and the raw
score is normalised so that the null detector scores 0 and the perfect detector 100.

Held-out reporting: the corpus splits deterministically into a tuning half and a held-out half of
files (CRC-32 of the file name, even → tuning). :func:`nab_split_score` fixes each profile's
threshold (and :func:`tune_detector` the detector's parameters) on the tuning half only, and
reports that fixed choice on the held-out half and on all files, beside NAB's own convention
(threshold swept over all files).
"""

from __future__ import annotations

import csv
import itertools
import json
import math
import zlib
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np

#: NAB's cost matrices (config/profiles.json), used when the corpus has no profiles file.
PROFILES: dict[str, dict[str, float]] = {
    "standard": {"tpWeight": 1.0, "fnWeight": 1.0, "fpWeight": 0.11},
    "reward_low_FP_rate": {"tpWeight": 1.0, "fnWeight": 1.0, "fpWeight": 0.22},
    "reward_low_FN_rate": {"tpWeight": 1.0, "fnWeight": 2.0, "fpWeight": 0.11},
}

#: The published scoreboard (NAB v1.1 README): standard, reward low FP, reward low FN.
SCOREBOARD: dict[str, tuple[float, float, float]] = {
    "ARTime": (74.9, 65.1, 80.4),
    "Numenta HTM": (70.5, 62.6, 75.2),
    "CAD OSE": (69.9, 67.0, 73.2),
    "earthgecko Skyline": (58.2, 46.2, 63.9),
    "KNN CAD": (58.0, 43.4, 64.8),
    "Relative Entropy": (54.6, 47.6, 58.8),
    "Random Cut Forest": (51.7, 38.4, 59.7),
    "Twitter ADVec": (47.1, 33.6, 53.5),
    "Windowed Gaussian": (39.6, 20.9, 47.4),
    "Etsy Skyline": (35.7, 27.1, 44.5),
    "Bayesian changepoint": (17.7, 3.2, 32.2),
    "Random": (11.0, 1.2, 19.5),
    "Null": (0.0, 0.0, 0.0),
}

PROBATION_PERCENT = 0.15


def _ts(text: str) -> datetime:
    return datetime.fromisoformat(text.strip().replace(" ", "T"))


@dataclass
class NabFile:
    name: str  # "<category>/<file>.csv"
    timestamps: list[datetime]
    values: np.ndarray
    windows: list[tuple[datetime, datetime]]


def load_corpus(root: Path) -> list[NabFile]:
    """Every data file of the corpus with its label windows, in a stable order."""
    root = Path(root)
    windows = json.loads((root / "labels" / "combined_windows.json").read_text())
    files = []
    for name in sorted(windows):
        path = root / "data" / name
        ts: list[datetime] = []
        vals: list[float] = []
        with path.open(newline="") as fh:
            for row in csv.DictReader(fh):
                ts.append(_ts(row["timestamp"]))
                vals.append(float(row["value"]))
        files.append(NabFile(name, ts, np.asarray(vals, dtype=np.float64),
                             [(_ts(a), _ts(b)) for a, b in windows[name]]))
    return files


def load_profiles(root: Path) -> dict[str, dict[str, float]]:
    path = Path(root) / "config" / "profiles.json"
    if not path.exists():
        return PROFILES
    data = json.loads(path.read_text())
    return {name: dict(p["CostMatrix"]) for name, p in data.items()}


def scaled_sigmoid(x: float) -> float:
    """NAB's reward curve: 0.987 at a window's left edge, 0 at its right edge, towards -1 after."""
    if x >= 3.0:
        return -1.0
    return 2.0 / (1.0 + math.exp(5.0 * x)) - 1.0


@dataclass
class _Prepared:
    """Per-file arrays for fast threshold sweeps: sweep score and window index of each row."""

    scores: np.ndarray
    sweep: np.ndarray  # weighted score if the row were a detection
    window: np.ndarray  # window index, -1 outside every window, -2 probation
    n_windows: int


def prepare(f: NabFile, scores: np.ndarray, cost: dict[str, float]) -> _Prepared:
    """The per-row score a detection would earn, as NAB's ``Sweeper.calcSweepScore``."""
    n = len(f.timestamps)
    index = {t: i for i, t in enumerate(f.timestamps)}
    limits = [(index[a], index[b]) for a, b in f.windows if a in index and b in index]
    probation = min(math.floor(PROBATION_PERCENT * n), PROBATION_PERCENT * 5000)
    max_tp = scaled_sigmoid(-1.0)
    sweep = np.zeros(n)
    window = np.full(n, -1, dtype=np.int64)
    prev_right: int | None = None
    prev_width = 0.0
    w = 0
    cur: tuple[int, int] | None = None
    scorable: set[int] = set()
    for i in range(n):
        if cur is None and w < len(limits) and i == limits[w][0]:
            cur = limits[w]
        if cur is not None:
            width = float(cur[1] - cur[0] + 1)
            pos = -(cur[1] - i + 1) / width
            sweep[i] = scaled_sigmoid(pos) * cost["tpWeight"] / max_tp
            window[i] = w
        else:
            pos = 3.0 if prev_right is None else abs(prev_right - i) / float(prev_width - 1)
            sweep[i] = scaled_sigmoid(pos) * cost["fpWeight"]
        if i < probation:
            window[i] = -2
        elif cur is not None:
            scorable.add(w)
        if cur is not None and i == cur[1]:
            prev_right, prev_width = i, float(cur[1] - cur[0] + 1)
            cur = None
            w += 1
    # renumber scorable windows 0..k-1 (a window wholly in probation does not count)
    remap = {old: new for new, old in enumerate(sorted(scorable))}
    window = np.array([remap.get(int(x), -2) if x >= 0 else x for x in window], dtype=np.int64)
    return _Prepared(np.asarray(scores, dtype=np.float64), sweep, window, len(remap))


def score_at(p: _Prepared, threshold: float, fn_weight: float) -> float:
    """Raw NAB score of one file at one threshold."""
    det = p.scores >= threshold
    total = float(p.sweep[det & (p.window == -1)].sum())
    for w in range(p.n_windows):
        hit = det & (p.window == w)
        total += float(p.sweep[hit].max()) if hit.any() else -fn_weight
    return total


def _changes(p: _Prepared, fn_weight: float) -> tuple[float, np.ndarray, np.ndarray]:
    """The file's raw score as a step function of the threshold: the score with no detection,
    and (score value, change) pairs that apply once the threshold is at or below the value."""
    base = -fn_weight * p.n_windows
    out = p.window == -1
    at = [p.scores[out]]
    delta = [p.sweep[out]]
    for w in range(p.n_windows):
        rows = np.flatnonzero(p.window == w)
        order = rows[np.argsort(-p.scores[rows], kind="stable")]
        best = -fn_weight
        for i in order:
            if p.sweep[i] > best:
                at.append(np.array([p.scores[i]]))
                delta.append(np.array([p.sweep[i] - best]))
                best = float(p.sweep[i])
    return base, np.concatenate(at), np.concatenate(delta)


def best_threshold(prepared: list[_Prepared], fn_weight: float) -> tuple[float, float]:
    """The threshold that maximises the summed raw score over all files (an exact sweep over
    every distinct score, as NAB's optimiser intends), and that score."""
    base = 0.0
    ats, deltas = [], []
    for p in prepared:
        b, a, d = _changes(p, fn_weight)
        base += b
        ats.append(a)
        deltas.append(d)
    at = np.concatenate(ats)
    delta = np.concatenate(deltas)
    order = np.argsort(-at, kind="stable")
    at, delta = at[order], delta[order]
    total = base + np.cumsum(delta)
    # a threshold includes every score at or above it: evaluate at the end of each tie group
    ends = np.flatnonzero(np.append(at[1:] != at[:-1], True))
    if ends.size == 0:
        return 1.0 + 1e-9, base
    k = int(np.argmax(total[ends]))
    if total[ends][k] <= base:
        return float(at[0]) + 1e-9, base
    return float(at[ends[k]]), float(total[ends][k])


def _prepare_all(files: list[NabFile], scores: list[np.ndarray],
                 cost: dict[str, float]) -> list[_Prepared]:
    return [prepare(f, s, cost) for f, s in zip(files, scores, strict=True)]


def _unit_scores(det: NabDetector | Callable[[np.ndarray], np.ndarray],
                 values: np.ndarray) -> np.ndarray:
    """A detector's scores of one series, clipped to NAB's [0, 1]."""
    raw = det.run(values) if isinstance(det, NabDetector) else det(values)
    return np.clip(np.asarray(raw, dtype=np.float64), 0.0, 1.0)


@dataclass
class NabResult:
    detector: str
    scores: dict[str, float] = field(default_factory=dict)  # profile -> normalised score
    thresholds: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    records: int = 0
    #: the same scores with thresholds fixed on the tuning half (see :func:`nab_split_score`)
    split: SplitResult | None = None


def nab_score(files: list[NabFile], scores: list[np.ndarray],
              profiles: dict[str, dict[str, float]], detector: str = "") -> NabResult:
    """Normalised NAB score per profile, with the threshold chosen by a sweep over all files."""
    res = NabResult(detector)
    for pname, cost in profiles.items():
        prepared = _prepare_all(files, scores, cost)
        t, best = best_threshold(prepared, cost["fnWeight"])
        res.scores[pname] = _normalise(best, prepared, cost)
        res.thresholds[pname] = round(t, 6)
    return res


class NabDetector:
    """A streaming univariate detector for NAB, built from the same ideas as the meter model:
    Gaussian scoring of residuals against an adaptive level, then the anomaly *likelihood* of
    the recent residuals against their own long-run distribution (as Numenta's), a new-extreme
    (spatial) cue, and a refractory period after a detection so one anomaly is one alarm.

    ``__init__`` holds hyperparameters only; ``score_one`` scores before ``learn_one``.
    """

    def __init__(self, alpha: float = 0.05, long_window: int = 2000, short_window: int = 8,
                 refractory: int = 100, spatial_margin: float = 0.0,
                 alarm_level: float = 0.5) -> None:
        self.alpha = alpha
        self.long_window = long_window
        self.short_window = short_window
        self.refractory = refractory
        self.spatial_margin = spatial_margin
        self.alarm_level = alarm_level
        self._reset()

    def _reset(self) -> None:
        self._n = 0
        self._mean = 0.0
        self._dev = 0.0
        self._lo = math.inf
        self._hi = -math.inf
        self._raw: deque[float] = deque()
        self._sum = 0.0
        self._sumsq = 0.0
        self._short: deque[float] = deque(maxlen=self.short_window)
        self._quiet = 0

    def score_one(self, x: float) -> float:
        """Anomaly score in [0, 1] of value ``x`` given everything before it."""
        if self._n < 2:
            return 0.0
        raw = abs(x - self._mean) / max(self._dev, 1e-9 + 1e-6 * abs(self._mean))
        short = [*self._short, raw][-self.short_window:]
        s_mean = sum(short) / len(short)
        if len(self._raw) >= 30:
            k = len(self._raw)
            mu = self._sum / k
            sd = math.sqrt(max(self._sumsq / k - mu * mu, 0.0))
            z = (s_mean - mu) / max(sd, 1e-3)
            likelihood = 1.0 - 0.5 * math.erfc(z / math.sqrt(2))
        else:
            likelihood = 0.5
        log_score = math.log(1.0000000001 - likelihood) / math.log(1.0000000001 - 0.9999999999)
        span = self._hi - self._lo
        if span > 0 and (x > self._hi + self.spatial_margin * span
                         or x < self._lo - self.spatial_margin * span):
            log_score = max(log_score, 1.0)
        return min(max(log_score, 0.0), 1.0)

    def learn_one(self, x: float) -> None:
        if self._n >= 1:
            resid = abs(x - self._mean)
            raw = resid / max(self._dev, 1e-9 + 1e-6 * abs(self._mean))
            self._raw.append(raw)
            self._sum += raw
            self._sumsq += raw * raw
            if len(self._raw) > self.long_window:
                old = self._raw.popleft()
                self._sum -= old
                self._sumsq -= old * old
            self._short.append(raw)
            self._dev += self.alpha * (resid - self._dev) if self._n > 1 else resid
        a = max(1.0 / (self._n + 1), self.alpha)
        self._mean += a * (x - self._mean)
        self._lo = min(self._lo, x)
        self._hi = max(self._hi, x)
        self._n += 1

    def run(self, values: Iterable[float]) -> np.ndarray:
        """Score a whole stream, one record at a time (no look-ahead), with the refractory
        period applied: after a score above ``alarm_level`` the next ``refractory`` records
        report 0."""
        self._reset()
        out = []
        for x in values:
            s = self.score_one(float(x))
            self.learn_one(float(x))
            if self._quiet > 0:
                self._quiet -= 1
                s = 0.0
            elif s >= self.alarm_level:
                self._quiet = self.refractory
            out.append(s)
        return np.asarray(out)


def hst_scores(values: Iterable[float], seed: int = 42) -> np.ndarray:
    """Plain River ``HalfSpaceTrees`` (defaults) behind a ``MinMaxScaler``: the baseline."""
    from river import anomaly, preprocessing

    model = preprocessing.MinMaxScaler() | anomaly.HalfSpaceTrees(seed=seed)
    out = []
    for v in values:
        x = {"x": float(v)}
        out.append(model.score_one(x))
        model.learn_one(x)
    return np.asarray(out)


def nab_half(name: str) -> str:
    """``tune`` or ``held``: the stable half of the corpus a file belongs to."""
    return "tune" if zlib.crc32(name.encode()) % 2 == 0 else "held"


def _normalise(raw: float, prepared: list[_Prepared], cost: dict[str, float]) -> float:
    """NAB's normalised score of a raw score: 0 for the null detector (every window missed),
    100 for the perfect one."""
    n_windows = sum(p.n_windows for p in prepared)
    null = -cost["fnWeight"] * n_windows
    perfect = cost["tpWeight"] * n_windows
    return round(100.0 * (raw - null) / (perfect - null), 1) if perfect > null else 0.0


def _normalised(prepared: list[_Prepared], threshold: float, cost: dict[str, float]) -> float:
    raw = sum(score_at(p, threshold, cost["fnWeight"]) for p in prepared)
    return _normalise(raw, prepared, cost)


@dataclass
class SplitResult:
    """NAB scores with each profile's threshold fixed on the tuning half."""

    detector: str
    tune: list[str]
    held: list[str]
    thresholds: dict[str, float] = field(default_factory=dict)
    on_tune: dict[str, float] = field(default_factory=dict)
    on_held: dict[str, float] = field(default_factory=dict)
    on_all: dict[str, float] = field(default_factory=dict)
    #: NAB's convention: threshold swept over all files (an upper estimate)
    swept_on_all: dict[str, float] = field(default_factory=dict)
    params: dict[str, float] = field(default_factory=dict)


def nab_split_score(files: list[NabFile], scores: list[np.ndarray],
                    profiles: dict[str, dict[str, float]], detector: str = "") -> SplitResult:
    """Thresholds chosen by a sweep over the tuning half, scored on the tuning half, the
    held-out half and all files; and NAB's swept-on-all score."""
    tune = [i for i, f in enumerate(files) if nab_half(f.name) == "tune"]
    held = [i for i, f in enumerate(files) if nab_half(f.name) == "held"]
    res = SplitResult(detector, [files[i].name for i in tune], [files[i].name for i in held])
    for pname, cost in profiles.items():
        prepared = _prepare_all(files, scores, cost)
        t, _ = best_threshold([prepared[i] for i in tune], cost["fnWeight"])
        res.thresholds[pname] = round(t, 6)
        res.on_tune[pname] = _normalised([prepared[i] for i in tune], t, cost)
        res.on_held[pname] = _normalised([prepared[i] for i in held], t, cost)
        res.on_all[pname] = _normalised(prepared, t, cost)
        t_all, _ = best_threshold(prepared, cost["fnWeight"])
        res.swept_on_all[pname] = _normalised(prepared, t_all, cost)
    return res


#: The detector parameters :func:`tune_detector` tries (on the tuning half only).
GRID: dict[str, tuple[float, ...]] = {
    "alpha": (0.02, 0.05, 0.1),
    "refractory": (50, 100, 200),
    "long_window": (1000, 2000),
}


def tune_detector(files: list[NabFile], profiles: dict[str, dict[str, float]],
                  grid: dict[str, tuple[float, ...]] | None = None,
                  profile: str = "standard") -> SplitResult:
    """Choose :class:`NabDetector` parameters from ``grid`` by the ``profile`` score on the
    tuning half (threshold swept there too), then report the choice as
    :func:`nab_split_score` does. Held-out files never influence the choice."""
    grid = GRID if grid is None else grid
    tune_files = [f for f in files if nab_half(f.name) == "tune"]
    cost = profiles[profile]
    best: tuple[float, dict[str, float]] | None = None
    keys = sorted(grid)
    for combo in itertools.product(*(grid[k] for k in keys)):
        params = dict(zip(keys, combo, strict=True))
        det = make_detector(params)
        prepared = [prepare(f, _unit_scores(det, f.values), cost) for f in tune_files]
        t, _ = best_threshold(prepared, cost["fnWeight"])
        score = _normalised(prepared, t, cost)
        if best is None or score > best[0]:
            best = (score, params)
    assert best is not None
    det = make_detector(best[1])
    res = nab_split_score(files, [_unit_scores(det, f.values) for f in files], profiles,
                          "gridwatch (tuned on the tuning half)")
    res.params = best[1]
    return res


def make_detector(params: dict[str, float]) -> NabDetector:
    """A :class:`NabDetector` with ``params`` (the others at their defaults)."""
    d = NabDetector()
    return NabDetector(
        alpha=float(params.get("alpha", d.alpha)),
        long_window=int(params.get("long_window", d.long_window)),
        short_window=int(params.get("short_window", d.short_window)),
        refractory=int(params.get("refractory", d.refractory)),
        spatial_margin=float(params.get("spatial_margin", d.spatial_margin)),
        alarm_level=float(params.get("alarm_level", d.alarm_level)))


def run_nab(root: Path, detectors: dict[str, Callable[[np.ndarray], np.ndarray]],
            results_dir: Path | None = None) -> list[NabResult]:
    """Run each detector over every corpus file and score it for every profile. With
    ``results_dir``, write NAB-format result files (``timestamp,value,anomaly_score,label``)."""
    import time

    files = load_corpus(root)
    profiles = load_profiles(root)
    results = []
    for name, fn in detectors.items():
        t0 = time.perf_counter()
        scores = [_unit_scores(fn, f.values) for f in files]
        elapsed = time.perf_counter() - t0
        res = nab_score(files, scores, profiles, name)
        res.split = nab_split_score(files, scores, profiles, name)
        res.seconds = round(elapsed, 2)
        res.records = sum(len(f.values) for f in files)
        results.append(res)
        if results_dir is not None:
            write_results(results_dir, name, files, scores)
    return results


def write_results(results_dir: Path, detector: str, files: list[NabFile],
                  scores: list[np.ndarray]) -> None:
    for f, s in zip(files, scores, strict=True):
        category, fname = f.name.split("/", 1)
        out = Path(results_dir) / detector / category / f"{detector}_{fname}"
        out.parent.mkdir(parents=True, exist_ok=True)
        with out.open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["timestamp", "value", "anomaly_score", "label"])
            for t, v, a in zip(f.timestamps, f.values, s, strict=True):
                label = int(any(lo <= t <= hi for lo, hi in f.windows))
                w.writerow([t.strftime("%Y-%m-%d %H:%M:%S"), repr(float(v)), f"{a:.6f}", label])
