#!/bin/sh
# The first build step every service image shares: trust the extra CA certificates (e.g. a
# TLS-intercepting proxy's; none is fine), create /opt/venv and install the pinned requirements.
# Usage (in a Dockerfile): sh image-setup.sh DIR, where DIR holds requirements.txt and any *.crt.
set -eu
dir=$1
if ls "$dir"/*.crt >/dev/null 2>&1; then
    cp "$dir"/*.crt /usr/local/share/ca-certificates/
    update-ca-certificates >/dev/null
fi
python3 -m venv /opt/venv
# pip reads the system bundle, which now includes the extra certificates.
PIP_CERT=/etc/ssl/certs/ca-certificates.crt /opt/venv/bin/pip install -r "$dir/requirements.txt"
