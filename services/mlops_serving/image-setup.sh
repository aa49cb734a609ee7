#!/bin/sh
# The first build step every service image shares: trust the extra CA certificates (e.g. a
# TLS-intercepting proxy's; none is fine), create /opt/venv and install the pinned requirements.
# Usage (in a Dockerfile): sh image-setup.sh DIR, where DIR holds requirements.txt and certs/
# (the service's certs/ folder, copied whole: the engine's BuildKit refuses a *.crt glob that
# matches nothing, so the Dockerfiles copy the folder and the glob is here).
set -eu
dir=$1
if ls "$dir"/certs/*.crt >/dev/null 2>&1; then
    cp "$dir"/certs/*.crt /usr/local/share/ca-certificates/
    update-ca-certificates >/dev/null
fi
python3 -m venv /opt/venv
# Under BuildKit the Dockerfiles mount a cache at pip's cache folder: use it (the images set
# PIP_NO_CACHE_DIR, so without a mount, under the legacy builder, no cache lands in the layer).
if grep -q " /root/.cache/pip " /proc/mounts 2>/dev/null; then
    unset PIP_NO_CACHE_DIR
    export PIP_CACHE_DIR=/root/.cache/pip
fi
# pip reads the system bundle, which now includes the extra certificates.
PIP_CERT=/etc/ssl/certs/ca-certificates.crt /opt/venv/bin/pip install -r "$dir/requirements.txt"
# Size: drop what no service reads at run time, in this same layer (a later RUN could not
# shrink it): the packages' own test suites (60-130 MB per image: pandas, scipy, sklearn,
# pyarrow, numpy) and TensorFlow's C++ headers (290 MB, for building extensions only).
site=$(/opt/venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
find "$site" -type d -name tests -prune -exec rm -rf {} +
rm -rf "$site/tensorflow/include"
