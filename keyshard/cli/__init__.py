"""Command line entry points (``keyshard <group> <verb>``)."""
