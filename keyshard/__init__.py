"""Keyshard client: the SDK and the ``keyshard`` command line."""
