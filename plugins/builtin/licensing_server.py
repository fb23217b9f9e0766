"""Built-in plugin: licensing_server (provides no source yet)."""
