"""Built-in plugin: oneroster_rest (provides no source yet)."""
