#!/usr/bin/env bash
# Creates (or leaves alone, when it already matches) the Python venv the SpiNNaker peer tests run in:
# the real spalloc-server and SpiNNMan from PyPI, pinned. Tests find it at target/spinnaker-venv, or at
# $ACCEL_SPINNAKER_VENV. Idempotent: a venv whose recorded pins match is reused in well under a second.
#
# spalloc-server 1!7.0.0 requires SpiNNMan 1!7.0.0 exactly, so the one SpiNNMan serves both uses: as the
# spalloc server's BMP client and as the client of the Java spalloc service's REST API
# (spinnman/spalloc/spalloc_client.py). Both install on Python 3.11.
set -euo pipefail
cd "$(dirname "$0")/.."

venv="${ACCEL_SPINNAKER_VENV:-$PWD/target/spinnaker-venv}"
# SpiNNMan imports `packaging` (spinnman/spalloc/spalloc_client.py) without declaring it.
pins=("spalloc-server==1!7.0.0" "SpiNNMan==1!7.0.0" "packaging==24.2")

if [ -x "$venv/bin/python" ] && [ "$(cat "$venv/.pins" 2>/dev/null)" = "${pins[*]}" ]; then
    exit 0
fi
python3 -c 'import sys; sys.exit(sys.version_info < (3, 8))' || { echo "python3 >= 3.8 is needed" >&2; exit 1; }
if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c 'import ensurepip' >/dev/null 2>&1; then
    # Debian splits venv support out of python3.
    echo "installing: python3-venv"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
fi
rm -rf "$venv"
python3 -m venv "$venv"
"$venv/bin/pip" install -q --disable-pip-version-check "${pins[@]}"
echo "${pins[*]}" >"$venv/.pins"
# The build scripts decide at build time whether the tests that need the venv are ignored
# (sim/external_tools.rs); touching the file they include makes them look again.
touch sim/external_tools.rs
echo "spinnaker venv ready: $venv"
