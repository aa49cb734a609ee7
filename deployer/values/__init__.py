"""The stack's values: one typed model, loaded from layered YAML files and ``--set`` overrides.

Layering, lowest first: the shipped ``templates/values.yaml`` < each ``-f FILE`` in order <
each ``--set dotted.key=value`` in order. Mappings merge key by key; lists and scalars replace.
Every key path remembers which file (and line) set it last, so a validation error names the file,
the key path and the line a user has to fix.

The package: ``types`` (scalar types, the strict base), ``services`` and ``sections`` (the
model), ``sources`` (YAML with lines, merging with origins), ``problems`` (errors a user can
act on), ``loading`` (the entry points re-exported here).
"""

from deployer.values.loading import (
    canonical_json,
    default_values_file,
    json_schema,
    known_job_names,
    known_service_names,
    load_values,
    parse_set,
    values_hash,
)
from deployer.values.sections import (
    S3,
    Build,
    ComposeSettings,
    Llm,
    Mlflow,
    Registry,
    RestartPolicy,
    RollbackConfig,
    Stack,
    StackValues,
    Swarm,
    UpdateConfig,
)
from deployer.values.services import (
    Healthcheck,
    Job,
    Jobs,
    MinioService,
    Placement,
    PostgresService,
    Resources,
    ResourceSpec,
    Service,
    Services,
    SpreadPreference,
)
from deployer.values.types import DEFAULT_POSTGRES_PASSWORD, DEFAULT_S3_CREDENTIALS

__all__ = [
    "DEFAULT_POSTGRES_PASSWORD", "DEFAULT_S3_CREDENTIALS", "S3", "Build", "ComposeSettings",
    "Healthcheck", "Job", "Jobs", "Llm", "MinioService", "Mlflow", "Placement",
    "PostgresService", "Registry", "ResourceSpec", "Resources", "RestartPolicy",
    "RollbackConfig", "Service", "Services", "SpreadPreference", "Stack", "StackValues",
    "Swarm", "UpdateConfig", "canonical_json", "default_values_file", "json_schema",
    "known_job_names", "known_service_names", "load_values", "parse_set", "values_hash",
]
