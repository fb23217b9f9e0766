"""Wiring: the Starlette application, the command line and the demo district."""
