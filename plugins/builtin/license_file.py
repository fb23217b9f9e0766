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
        path = self.path_for(district, options)
        # The message reaches administrators through the API: the file's name, never the
        # server's folders (the operator finds those in the configuration).
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise SourceError(
                f"No license file at {path.name} in the server's license folder."
            ) from None
        except OSError as error:
            raise SourceError(
                f"Cannot read the license file {path.name}: {error.strerror}."
            ) from None
        try:
            return SignedLicense.from_envelope(data)
        except DamagedLicenseError as error:
            raise DamagedLicenseError(f"{path.name}: {error}") from None
        except SourceError as error:
            raise SourceError(f"{path.name}: {error}") from None


@hookimpl(trylast=True)
def register_license_sources(host: PluginHost) -> list[LicenseSource]:
    return [LicenseFileSource(host)]
