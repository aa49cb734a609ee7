"""mlops_serving: what the stack's service images share.

- :mod:`mlops_serving.secrets`: the one way to read ``<NAME>_FILE`` secrets (standard library
  only, so the mlflow-server and S3 store entrypoints use it before anything else is imported);
- :mod:`mlops_serving.settings`: pydantic-settings bases on top of it;
- :mod:`mlops_serving.registry`, :mod:`~mlops_serving.loader`, :mod:`~mlops_serving.retry`:
  the MLflow registry lookup, alias polling and cached loading of the model services;
- :mod:`mlops_serving.app`, :mod:`~mlops_serving.deps`, :mod:`~mlops_serving.health`,
  :mod:`~mlops_serving.serve`, :mod:`~mlops_serving.train_cli`: their FastAPI app factory,
  dependencies, health router, server and training command.

Each service keeps what is its own (its flavour: data, training, schemas, predict router) in a
package named after it. Nothing here is imported by this ``__init__``: a service pays only for
the modules it uses.
"""
