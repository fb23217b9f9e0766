"""Built-in plugin: oneroster_csv (provides no source yet)."""
