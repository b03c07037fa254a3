#!/usr/bin/env bash
# Installs what gridwatch needs on a Debian or Ubuntu machine: the private services (as apt
# packages, when run as root) and a virtualenv with the package and its dev extras.
# Idempotent: a second run installs nothing and takes a second.
set -euo pipefail

VENV=${VENV:-.venv}
PYTHON=${PYTHON:-}

# Debian package -> a command it provides (checked before installing anything).
declare -A APT_CMDS=(
  [mosquitto]=/usr/sbin/mosquitto
  [mosquitto-clients]=/usr/bin/mosquitto_pub
  [influxdb]=/usr/bin/influxd
  [victoria-metrics]=/usr/bin/victoria-metrics
  [prometheus-alertmanager]=/usr/bin/prometheus-alertmanager
  [openssl]=/usr/bin/openssl
  [make]=/usr/bin/make
  [gcc]=/usr/bin/gcc
  # the workspace's browser tests: headless chromium driven by Selenium
  [chromium]=/usr/bin/chromium
  [chromium-driver]=/usr/bin/chromedriver
)

missing=()
for pkg in "${!APT_CMDS[@]}"; do
  [ -x "${APT_CMDS[$pkg]}" ] || missing+=("$pkg")
done

pick_python() {
  for cand in "$PYTHON" python3.12 python3.11 python3; do
    [ -n "$cand" ] || continue
    if command -v "$cand" >/dev/null 2>&1 &&
       "$cand" -c 'import sys; sys.exit(0 if (3, 11) <= sys.version_info[:2] <= (3, 12) else 1)' 2>/dev/null; then
      echo "$cand"; return 0
    fi
  done
  return 1
}

py=$(pick_python || true)
if [ -z "$py" ]; then
  missing+=(python3 python3-venv python3-dev)
elif ! "$py" -c 'import venv, ensurepip' >/dev/null 2>&1; then
  missing+=(python3-venv)
fi

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then
    echo "bootstrap: installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "bootstrap: missing Debian packages: ${missing[*]}" >&2
    echo "bootstrap: run 'sudo apt-get install ${missing[*]}' or run make as root" >&2
    exit 1
  fi
  py=$(pick_python) || { echo "bootstrap: needs Python 3.11 or 3.12" >&2; exit 1; }
fi

stamp="$VENV/.gridwatch-installed"
if [ ! -x "$VENV/bin/python" ]; then
  echo "bootstrap: creating virtualenv $VENV with $("$py" --version)"
  "$py" -m venv "$VENV"
fi
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "bootstrap: installing gridwatch and its dependencies into $VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip >/dev/null
  "$VENV/bin/python" -m pip install -q -e '.[dev]'
  touch "$stamp"
fi
# The detectors' compiled quiet path: numba compiles it on a machine's first use and keeps the
# machine code beside the module; done here, once, so that no engine or test pays for it.
"$VENV/bin/python" -m gridwatch.models._warm
