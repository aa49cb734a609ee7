"""Titanic survival service: a scikit-learn RandomForest trained on the Kaggle ``train.csv``,
tracked and registered in MLflow, served by FastAPI."""
