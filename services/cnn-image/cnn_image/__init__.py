"""CIFAR-10 image classifier service: a small Keras CNN trained on the official
``cifar-10-batches-py`` archive, tracked and registered in MLflow, served by FastAPI."""
