"""The spec language: models, loader, merge and JSON Schema."""
