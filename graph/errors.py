"""Errors the API reports as they are; anything else is masked so no internals leak."""

from __future__ import annotations

import logging

from graphql import GraphQLError
from strawberry.extensions import MaskErrors

from licensing.problems import Problem

logger = logging.getLogger("licensing.graphql")


class ClientError(GraphQLError):
    """An error meant for the caller, with a stable ``extensions.code``."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.message, extensions={"code": problem.code})


def is_internal(error: GraphQLError) -> bool:
    original = error.original_error
    if original is None or isinstance(original, GraphQLError):
        return False
    logger.error("Unexpected error in %s", error.path, exc_info=original)
    return True


def mask_internal_errors() -> MaskErrors:
    return MaskErrors(
        should_mask_error=is_internal,
        error_message="Internal error. The request was not completed; please try again.",
    )
