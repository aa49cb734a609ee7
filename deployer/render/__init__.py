"""Values -> the text of docker-compose.yml, swarm-stack.yml and .env.example, validated.

Division of labour: ``context`` and ``env`` compute each service's *facts* (image, command,
environment, healthcheck test, ports, volumes, secrets) in Python, where they can be typed and
tested; the Jinja2 templates in ``templates/`` (``templating``) only lay them out as YAML for one
target; ``checks`` validates the text before anything is written; ``objects`` names the external
secrets and configs; ``api`` is the entry point (re-exported here).
"""

from deployer.render.api import render, render_all, write_files
from deployer.render.objects import (
    bucket_init_script,
    secret_name,
    swarm_configs,
    swarm_secret_bases,
    swarm_secret_values,
)
from deployer.render.targets import (
    FILENAMES,
    NETWORK,
    SECRETS_DIR,
    TARGETS,
    UNSET_VERSION,
    RenderedFile,
    Target,
)

__all__ = [
    "FILENAMES", "NETWORK", "SECRETS_DIR", "TARGETS", "UNSET_VERSION", "RenderedFile", "Target",
    "bucket_init_script", "render", "render_all", "secret_name", "swarm_configs",
    "swarm_secret_bases", "swarm_secret_values", "write_files",
]
