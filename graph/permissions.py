"""Permission classes attached to fields; resolvers never check permissions themselves."""

from __future__ import annotations

from typing import Any, ClassVar

from strawberry.permission import BasePermission
from strawberry.types import Info

from licensing.domain.error_codes import ErrorCode
from licensing.storage.tokens import Permission


class _RequiresPermission(BasePermission):
    required: ClassVar[Permission]
    # strawberry reads this from the class; its BasePermission declares it per instance.
    error_extensions: ClassVar[dict[str, Any]] = {"code": ErrorCode.FORBIDDEN}  # type: ignore[misc]

    def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        return info.context.principal.may(self.required)


PERMISSION_MESSAGES = {
    Permission.VIEW_LICENSE: "This token may not view the license: it needs VIEW_LICENSE or "
    "MANAGE_SETTINGS.",
    Permission.MANAGE_SETTINGS: "This token may not change licensing settings: it needs "
    "MANAGE_SETTINGS.",
}


class CanViewLicense(_RequiresPermission):
    required = Permission.VIEW_LICENSE
    message = PERMISSION_MESSAGES[Permission.VIEW_LICENSE]


class CanManageSettings(_RequiresPermission):
    required = Permission.MANAGE_SETTINGS
    message = PERMISSION_MESSAGES[Permission.MANAGE_SETTINGS]
