"""Built-in plugin: clever (provides no source yet)."""
