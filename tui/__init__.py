"""mlops-tui: a Textual dashboard for the MLOps stack on Docker Swarm (local or over SSH)."""
