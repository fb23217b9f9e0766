"""Why a district has no license to show, and what an administrator can do about it. A district
has none until its license source has answered once; that is a normal state, not an error."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from licensing.domain.states import LicenseSyncStatus


class LicenseUnavailableReason(StrEnum):
    """Why no license is shown."""

    NOT_REQUESTED = "NOT_REQUESTED"  # the license source has not been asked yet
    UPDATE_FAILED = "UPDATE_FAILED"  # it was asked, and the last request failed
    NOT_RECEIVED = "NOT_RECEIVED"  # it was asked, and no license has been stored since


@dataclass(frozen=True)
class LicenseAbsence:
    reason: LicenseUnavailableReason
    message: str
    last_attempt_at: datetime | None
    last_error: str | None


_FORCE = (
    "An administrator with the Manage Settings permission can select Force License Update to "
    "ask for it now; it is also asked for automatically on a schedule."
)
_SUPPORT = "If Manage1to1 has not issued your district's license yet, contact Manage1to1 Support."


def license_absence(
    *,
    last_status: LicenseSyncStatus | None,
    last_attempt_at: datetime | None,
    last_error: str | None,
) -> LicenseAbsence:
    """Why a district without a license has none, from how its last license refresh went."""
    if last_attempt_at is None:
        reason = LicenseUnavailableReason.NOT_REQUESTED
        message = (
            "No license has been received for this district yet: the license source has not "
            f"been asked for it. {_FORCE} {_SUPPORT}"
        )
    elif last_status is LicenseSyncStatus.FAILED:
        reason = LicenseUnavailableReason.UPDATE_FAILED
        cause = f": {last_error.rstrip('.')}." if last_error else "."
        message = (
            "No license has been received for this district yet: the last request to the "
            f"license source failed{cause} Once that is resolved, select Force License Update "
            f"(Manage Settings). {_SUPPORT}"
        )
    else:
        reason = LicenseUnavailableReason.NOT_RECEIVED
        message = f"No license has been received for this district yet. {_FORCE} {_SUPPORT}"
    return LicenseAbsence(
        reason=reason,
        message=message,
        last_attempt_at=last_attempt_at,
        last_error=last_error if reason is LicenseUnavailableReason.UPDATE_FAILED else None,
    )
