"""Storage: models, the engine and session factory, migrations and queries."""
