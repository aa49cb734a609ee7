"""Choices and defaults of command-line options, kept free of imports so that building the
parsers (``deployer --help``, every command's start) loads nothing heavy."""

from __future__ import annotations

#: ``docker stack deploy --resolve-image`` modes.
RESOLVE_IMAGE_CHOICES = ("never", "always", "changed")
#: Without a registry (the common case for this tool: images are shipped, not pulled), any
#: other mode makes the CLI query a registry for every service (~20 s each without DNS) and
#: then keep the local image anyway. Users deploying registry images can pass ``always``.
DEFAULT_RESOLVE_IMAGE = "never"

#: The Swarm secret of the Gemini key, and the environment variable it is read from.
GOOGLE_KEY = "google_api_key"
GOOGLE_ENV = "GOOGLE_API_KEY"
#: Secrets a push may deploy without a value (``--allow-missing-secret``).
OPTIONAL_SECRETS = (GOOGLE_KEY,)

#: What ``deployer render`` can write, and the file name of each.
RENDER_TARGETS = ("compose", "swarm", "env")
FILENAMES = {
    "compose": "docker-compose.yml",
    "swarm": "swarm-stack.yml",
    "env": ".env.example",
}

#: ``deployer models register``: what a Keras file's last layer gives, and the pixel range it
#: was trained on (the choices of the services' ``python -m cnn_image.register``).
MODEL_OUTPUTS = ("logits", "probabilities")
MODEL_INPUT_SCALINGS = ("0-255", "0-1")
