"""The dashboard's widgets: they display model objects and never talk to Docker."""
