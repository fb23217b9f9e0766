"""The signed offline license file: the embedded default license source.

Manage1to1 sends a district a signed license file; the administrator puts it where the service
looks (``<data_dir>/licenses/<slug>.license`` unless configured: the district's ``license_file``,
or ``path`` in its ``license_options``) and presses Force License Update.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from manage1to1_plugins import (
    DamagedLicenseError,
    DistrictRef,
    LicenseSource,
    PathOption,
    PluginHost,
    SignedLicense,
    SourceError,
    SourceOptions,
    hookimpl,
)


class LicenseFileOptions(SourceOptions):
    """``path``: the license file, when not the district's ``license_file`` or the default."""

    path: PathOption = None


class LicenseFileSource:
    name = "license_file"
    description = "A signed license file on this server's disk."
    options_model: ClassVar[type[SourceOptions]] = LicenseFileOptions

    def __init__(self, host: PluginHost) -> None:
        self.host = host

    def path_for(
        self, district: DistrictRef, options: LicenseFileOptions | Mapping[str, Any] | None = None
    ) -> Path:
        configured = LicenseFileOptions.parse(options).path
        if configured:
            return Path(configured)
        return Path(self.host.settings.license_file_for(district.slug))

    def fetch_license(
        self,
        *,
        district: DistrictRef,
        options: LicenseFileOptions | Mapping[str, Any] | None = None,
    ) -> SignedLicense:
        # The messages are the administrator's; the file's path on this server is in ``detail``,
        # which only the server log gets.
        path = self.path_for(district, options)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise SourceError(
                "There is no license file yet. Put the license file from Manage1to1 in place, "
                "then update the license again.",
                detail=f"No license file at {path}.",
            ) from None
        except OSError as error:
            raise SourceError(
                "The license file cannot be read. Ask whoever runs this service to check it; "
                "the last good license is kept.",
                detail=f"Cannot read the license file {path}: {error.strerror}.",
            ) from None
        try:
            return SignedLicense.from_envelope(data)
        except DamagedLicenseError as error:
            raise DamagedLicenseError(
                "The license file is damaged: its signature cannot match. Ask for a new "
                "license file; the last good license is kept.",
                detail=f"{path}: {error}: {error.detail}",
            ) from None
        except SourceError as error:
            raise SourceError(
                "The license file is not a license document. Ask for a new license file; the "
                "last good license is kept.",
                detail=f"{path}: {error}: {error.detail}",
            ) from None


@hookimpl(trylast=True)
def register_license_sources(host: PluginHost) -> list[LicenseSource]:
    return [LicenseFileSource(host)]
