"""mlops-stack deployer: render, ship and run the MLOps stack on Compose and Swarm."""

__version__ = "0.1.0"
