"""The domain's reads and writes through ``db/``: one module per thing the product keeps.

Functions here take a session or a ``Database`` and plain values, apply the rules from
``licensing.domain`` and write audit and change events with the rows they change. They never call
the orchestration layer (``licensing.orchestration``) or a plugin.
"""
