"""Plugins that ship with the service, registered exactly like third-party ones."""
