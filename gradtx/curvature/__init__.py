"""See gradtx/__init__.py for the public names."""
