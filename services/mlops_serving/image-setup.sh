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
# pip reads the system bundle, which now includes the extra certificates.
export PIP_CERT=/etc/ssl/certs/ca-certificates.crt
# Under BuildKit the Dockerfiles mount a cache at /root/.cache/pip, kept between builds (never in
# the image): the wheels are downloaded into a wheelhouse there, which `pip download` fills only
# with what it lacks (pip's own HTTP cache would not do: a proxy may strip the headers it needs),
# and installed from it. Without the mount (the legacy builder) pip installs as usual.
if grep -q " /root/.cache/pip " /proc/mounts 2>/dev/null; then
    wheels=/root/.cache/pip/wheelhouse
    mkdir -p "$wheels"
    /opt/venv/bin/pip download --dest "$wheels" -r "$dir/requirements.txt"
    /opt/venv/bin/pip install --no-index --find-links "$wheels" -r "$dir/requirements.txt"
else
    /opt/venv/bin/pip install -r "$dir/requirements.txt"
fi
# Size: drop what no service reads at run time, in this same layer (a later RUN could not
# shrink it): the packages' own test suites (60-130 MB per image: pandas, scipy, sklearn,
# pyarrow, numpy) and TensorFlow's C++ headers (290 MB, for building extensions only).
site=$(/opt/venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
find "$site" -type d -name tests -prune -exec rm -rf {} +
rm -rf "$site/tensorflow/include"
