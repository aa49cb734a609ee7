"""One router per concern: health, model metadata, predictions."""
