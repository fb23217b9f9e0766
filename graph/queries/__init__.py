"""The GraphQL queries: the tab's root fields (``root``), usage history and forecast
(``history``), the audit log and scheduled jobs (``operations``)."""

from graph.queries.root import Query

__all__ = ["Query"]
