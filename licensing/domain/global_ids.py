"""The opaque ids the GraphQL API gives its objects (``Node.id``), for answers that are not
GraphQL, such as webhook bodies, so a receiver can pass them to ``node(id:)``.

The format is strawberry's Relay global id, base64 of ``"<Type>:<key>"``, which graph/nodes.py
decodes; tests/plugins/test_webhooks.py checks that a webhook's id is the one the API answers.
"""

from __future__ import annotations

import base64


def global_id(type_name: str, key: int | str) -> str:
    """The global id of the object of GraphQL type ``type_name`` with this key in its district."""
    return base64.b64encode(f"{type_name}:{key}".encode()).decode("ascii")
