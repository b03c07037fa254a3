"""Private servers on free loopback ports, for tests and ``make demo``.

Each server runs from Debian's package binary in its own temporary directory, listens on
127.0.0.1 only, and is stopped (and can be restarted on the same port, with the same data) by
its handle. Nothing here reaches beyond this machine.
"""

from __future__ import annotations

import contextlib
import functools
import os
import random
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final


class ServiceError(RuntimeError):
    """A private server could not be started; the message says which and why."""


@functools.cache
def _ephemeral_range() -> tuple[int, int]:
    """The kernel's range for outgoing connections' source ports (and for ``bind(0)``)."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999  # Linux's default


#: Ports this process has handed out, so two servers of one test never get the same one.
_HANDED_OUT: set[int] = set()
_RNG: Final = random.SystemRandom()


def free_port() -> int:
    """A loopback port that is free now and outside the kernel's ephemeral range.

    A port from ``bind(0)`` lies inside that range, so between this call and the server's own
    bind any outgoing connection on the machine (a client of another server, for one) may be
    given it as its source port, and the server then fails with "address already in use".
    Below the range only listeners take ports, and every port handed out is remembered.
    """
    low, high = _ephemeral_range()
    first, last = (10_000, low - 1) if low > 11_000 else (high + 1, 65_535)
    if len(_HANDED_OUT) > (last - first) // 2:  # a long run: the first servers are long gone
        _HANDED_OUT.clear()
    for _ in range(1000):
        port = _RNG.randint(first, last)
        if port in _HANDED_OUT:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _HANDED_OUT.add(port)
        return port
    raise ServiceError(f"no free loopback port in {first}-{last} after 1000 tries")


def find_binary(name: str, *candidates: str) -> str:
    for cand in (*candidates, shutil.which(name)):
        if cand and os.access(cand, os.X_OK):
            return cand
    raise ServiceError(
        f"{name} is not installed: run 'make setup' as root (installs the Debian package) "
        f"or 'apt-get install' it"
    )


def _tcp_open(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
        return True
    return False


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=0.5) as resp:
            return 200 <= resp.status < 300
    except (urllib.error.URLError, OSError, ValueError):
        return False


@dataclass
class Service:
    """A server process with a fixed port and data directory across restarts."""

    name: str
    workdir: Path
    port: int
    argv: list[str]
    ready: Callable[[], bool]
    extra_ports: dict[str, int] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    start_timeout: float = 30.0

    @property
    def host(self) -> str:
        return "127.0.0.1"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / f"{self.name}.log"

    def start(self) -> Service:
        if self.running:
            return self
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child process
        self.proc = subprocess.Popen(
            self.argv, cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServiceError(
                    f"{self.name} exited with code {self.proc.returncode} at start; "
                    f"last log lines:\n{self.tail()}"
                )
            if self.ready():
                return self
            time.sleep(0.05)
        self.stop()
        raise ServiceError(
            f"{self.name} did not become ready in {self.start_timeout}s:\n{self.tail()}"
        )

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout)
        self.proc = None
        # Wait until the port is free again so a restart can bind it.
        deadline = time.monotonic() + timeout
        while _tcp_open(self.port) and time.monotonic() < deadline:
            time.sleep(0.05)

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def restart(self) -> Service:
        self.stop()
        return self.start()

    def tail(self, n: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"


def mosquitto(workdir: Path, *, port: int | None = None, extra_conf: str = "",
              anonymous: bool = True) -> Service:
    """Debian's mosquitto with persistence, so persistent sessions survive a restart."""
    binary = find_binary("mosquitto", "/usr/sbin/mosquitto")
    workdir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    conf = workdir / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\n"
        f"allow_anonymous {'true' if anonymous else 'false'}\n"
        f"persistence true\n"
        f"persistence_location {workdir}/\n"
        f"autosave_interval 1\n"
        f"max_queued_messages 0\n"
        f"max_inflight_messages 0\n"
        f"message_size_limit 0\n"
        # As root, mosquitto would drop to the 'mosquitto' user and lose access to workdir.
        f"{'user root' if os.geteuid() == 0 else ''}\n"
        f"{extra_conf}\n"
    )
    return Service("mosquitto", workdir, port, [binary, "-c", str(conf)],
                   ready=lambda: _tcp_open(port))


#: The size at which InfluxDB writes its in-memory cache out as a TSM file
#: (``[data] cache-snapshot-memory-size``), as the private server is configured. InfluxDB's own
#: default, 25 MB, is filled once or twice by each 15-minute interval of a 100,000-meter fleet:
#: each snapshot then writes every meter's series with one or two values, and those files and
#: their compactions cost the database more than twice the CPU a reading
#: (``benchmarks/storage.py --fleet``; docs/storage.md, *InfluxDB for a utility's fleet*).
INFLUX_CACHE_SNAPSHOT: Final = "256m"


def influxdb(workdir: Path, *, port: int | None = None,
             cache_snapshot: str | None = INFLUX_CACHE_SNAPSHOT,
             data_conf: Sequence[str] = ()) -> Service:
    """Debian's InfluxDB 1.6.7: the v1 ``/write`` and InfluxQL ``/query`` API.
    ``cache_snapshot`` sets ``cache-snapshot-memory-size`` (None: InfluxDB's default);
    ``data_conf``: more lines of its ``[data]`` section (``wal-fsync-delay = "100ms"``), to
    measure a setting against this configuration (``benchmarks/storage.py --data-conf``)."""
    binary = find_binary("influxd", "/usr/bin/influxd")
    workdir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    rpc = free_port()
    conf = workdir / "influxdb.conf"
    conf.write_text(
        f'reporting-disabled = true\nbind-address = "127.0.0.1:{rpc}"\n'
        f'[meta]\n  dir = "{workdir}/meta"\n'
        f'[data]\n  dir = "{workdir}/data"\n  wal-dir = "{workdir}/wal"\n'
        f'  query-log-enabled = false\n'
        # The defaults (100,000 values per tag, 1,000,000 series) reject the points of a
        # utility's meters beyond the first 100,000 (partial write: max-values-per-tag).
        f'  max-values-per-tag = 0\n  max-series-per-database = 0\n'
        + (f'  cache-snapshot-memory-size = "{cache_snapshot}"\n' if cache_snapshot else '')
        + "".join(f"  {line}\n" for line in data_conf)
        + f'[monitor]\n  store-enabled = false\n'
        f'[http]\n  bind-address = "127.0.0.1:{port}"\n  log-enabled = false\n'
        f'  max-body-size = 0\n'
        f'[continuous_queries]\n  enabled = false\n'
    )
    return Service("influxdb", workdir, port, [binary, "run", "-config", str(conf)],
                   ready=lambda: _http_ok(f"http://127.0.0.1:{port}/ping"),
                   extra_ports={"rpc": rpc})


def victoria_metrics(workdir: Path, *, port: int | None = None) -> Service:
    """Debian's VictoriaMetrics: serves the InfluxDB v2 write endpoint ``/api/v2/write``."""
    binary = find_binary("victoria-metrics", "/usr/bin/victoria-metrics")
    workdir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    argv = [
        binary, f"-storageDataPath={workdir}/data", f"-httpListenAddr=127.0.0.1:{port}",
        "-retentionPeriod=100y", "-search.latencyOffset=0s", "-search.disableCache",
        "-loggerLevel=WARN", "-influxSkipSingleField",
    ]
    return Service("victoria-metrics", workdir, port, argv,
                   ready=lambda: _http_ok(f"http://127.0.0.1:{port}/health"))


def alertmanager(workdir: Path, *, port: int | None = None) -> Service:
    """Debian's Prometheus Alertmanager with a single null receiver."""
    binary = find_binary("prometheus-alertmanager", "/usr/bin/prometheus-alertmanager")
    workdir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    conf = workdir / "alertmanager.yml"
    conf.write_text("route:\n  receiver: 'null'\nreceivers:\n  - name: 'null'\n")
    argv = [
        binary, f"--config.file={conf}", f"--storage.path={workdir}/data",
        f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address=",
        "--log.level=warn",
    ]
    return Service("alertmanager", workdir, port, argv,
                   ready=lambda: _http_ok(f"http://127.0.0.1:{port}/-/ready"))
