"""License documents: what a signed payload says, how it is verified, and how one is issued.

The payload is JSON signed with Ed25519 over its exact bytes. Only keys the operator trusts
(``license_public_keys`` in the configuration, or ``*.pub`` files in the trusted-keys folder)
are accepted; a document that fails any check is refused with a reason an administrator can act on.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)
from sqlmodel import SQLModel

from db.limits import integer_maximum, text_length
from db.models import District, License
from db.private_files import make_private_directory
from licensing.domain.error_codes import ErrorCode
from plugins.records import SignedLicense


class LicenseRejected(Exception):
    """A license document that must not be believed; ``code`` says why, the message how to fix it
    (shown to the administrator), ``detail`` what only the server log gets (a path, a parser's
    words)."""

    def __init__(self, code: ErrorCode, message: str, *, detail: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.detail = detail


@dataclass(frozen=True)
class LicenseTerms:
    """What a verified license says."""

    license_id: str
    district: str
    licensed_to: str
    legal_entity_name: str | None
    total: int
    created_on: date
    expires_on: date
    deactivated: bool
    overage_allowance: float
    issued_at: datetime


@dataclass(frozen=True)
class TrustedKey:
    key_id: str
    public_key: Ed25519PublicKey


def trusted_keys(configured: list[str], keys_dir: Path) -> list[TrustedKey]:
    """The configured base64 public keys, then every ``*.pub`` file in ``keys_dir``."""
    keys = [
        TrustedKey(f"configured-{index}", _public_key(text))
        for index, text in enumerate(configured, start=1)
    ]
    if keys_dir.is_dir():
        for path in sorted(keys_dir.glob("*.pub")):
            try:
                keys.append(TrustedKey(path.stem, _public_key(path.read_text().strip())))
            except (ValueError, OSError):
                raise LicenseRejected(
                    ErrorCode.BAD_TRUSTED_KEY,
                    "One of the license signing keys this service trusts is not a valid key, "
                    "so no license can be checked. Ask whoever runs this service to fix or "
                    "remove it; the last good license is kept.",
                    detail=f"The trusted key file {path} is not a base64 Ed25519 public key.",
                ) from None
    return keys


def _public_key(text: str) -> Ed25519PublicKey:
    try:
        return Ed25519PublicKey.from_public_bytes(base64.b64decode(text, validate=True))
    except (binascii.Error, ValueError):
        raise ValueError(f"{text[:16]}... is not a base64 Ed25519 public key") from None


def verify_license(
    signed: SignedLicense, *, keys: list[TrustedKey], district_slug: str, now: datetime
) -> LicenseTerms:
    """The license's terms, after checking its signature and that it belongs to this district.

    When ``signed.max_age`` is set (a live server's answer), the payload must also carry a
    ``signed_at`` within ``max_age`` of ``now``, either way: an answer replayed later is refused.
    """
    candidates = [key for key in keys if key.key_id == signed.key_id] or keys
    if not candidates:
        raise LicenseRejected(
            ErrorCode.NO_TRUSTED_KEY,
            "No license signing key is trusted yet, so no license can be accepted.",
        )
    if not any(_signature_matches(key, signed) for key in candidates):
        raise LicenseRejected(
            ErrorCode.BAD_SIGNATURE,
            "The license signature does not match: the file was altered or not issued by "
            "Manage1to1. The last good license is kept.",
        )
    terms = parse_terms(signed.payload)
    if terms.district != district_slug:
        raise LicenseRejected(
            ErrorCode.WRONG_DISTRICT,
            f"This license was issued to district {terms.district!r}, not {district_slug!r}. "
            "Licenses are per district and cannot be transferred.",
        )
    if signed.max_age is not None:
        _check_fresh(signed.payload, max_age=signed.max_age, now=now)
    return terms


def _check_fresh(payload: bytes, *, max_age: timedelta, now: datetime) -> None:
    """Refuse a live answer whose ``signed_at`` is missing, or further than ``max_age`` from now."""
    try:
        text = json.loads(payload)["signed_at"]
        signed_at = datetime.fromisoformat(text)
    except (ValueError, KeyError, TypeError):
        raise LicenseRejected(
            ErrorCode.STALE_RESPONSE,
            "The licensing server's answer has no valid signed_at date, so it may be a replayed "
            "old answer; it was refused. The last good license is kept.",
        ) from None
    signed_at = (
        signed_at.replace(tzinfo=UTC) if signed_at.tzinfo is None else signed_at.astimezone(UTC)
    )
    drift = now - signed_at
    if abs(drift) > max_age:
        when = f"{_duration(drift)} ago" if drift > timedelta(0) else f"{_duration(-drift)} ahead"
        raise LicenseRejected(
            ErrorCode.STALE_RESPONSE,
            f"The licensing server's answer was signed at {signed_at:%Y-%m-%d %H:%M:%S} UTC, "
            f"{when} (at most {_duration(max_age)} either way is accepted): it may be a replayed "
            "answer, or this server's or the licensing server's clock is wrong. It was refused; "
            "the last good license is kept.",
        )


def _duration(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 2 * 3600:
        return f"{seconds // 60} min"
    if seconds < 2 * 86400:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} days"


def _signature_matches(key: TrustedKey, signed: SignedLicense) -> bool:
    try:
        key.public_key.verify(signed.signature, signed.payload)
    except InvalidSignature:
        return False
    return True


def _printable(value: str) -> str:
    # A NUL cannot be stored in PostgreSQL, and no name or id has a control character.
    if any(ord(character) < 32 or ord(character) == 127 for character in value):
        raise ValueError("must not contain NUL or other control characters")
    return value


def _fits(model: type[SQLModel], field: str, *, min_length: int = 1) -> StringConstraints:
    """Text that fits the column ``model.field``."""
    return StringConstraints(min_length=min_length, max_length=text_length(model, field))


# Each is text that fits its column, without control characters.
_PRINTABLE = AfterValidator(_printable)
LicenseId = Annotated[str, _fits(License, "license_id"), _PRINTABLE]
DistrictSlug = Annotated[str, _fits(District, "slug"), _PRINTABLE]
LicensedTo = Annotated[str, _fits(License, "licensed_to"), _PRINTABLE]
LegalEntityName = Annotated[str, _fits(License, "legal_entity_name", min_length=0), _PRINTABLE]
Seats = Annotated[int, Field(ge=0, le=integer_maximum(License, "total"))]
Allowance = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]


class LicenseDocument(BaseModel):
    """The signed payload, field by field: strict types (``true`` is not 1, ``"5"`` is not 5)
    and bounds that fit the columns it is stored in, so a value that does not fit is a refused
    license rather than a database error. Keys it does not know (``signed_at``) are left alone."""

    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)

    license_id: LicenseId
    district: DistrictSlug
    licensed_to: LicensedTo
    legal_entity_name: LegalEntityName | None = None
    seats: Seats
    created: date
    expires: date
    status: Literal["active", "deactivated"] = "active"
    overage_allowance: Allowance = 0.0
    issued_at: datetime

    @field_validator("issued_at")
    @classmethod
    def _in_utc(cls, issued_at: datetime) -> datetime:
        # A time without a zone is UTC, as the licensing service writes it.
        if issued_at.tzinfo is None:
            return issued_at.replace(tzinfo=UTC)
        try:
            return issued_at.astimezone(UTC)
        except OverflowError:
            raise ValueError("is out of range") from None

    @model_validator(mode="after")
    def _expires_after_created(self) -> LicenseDocument:
        if self.expires < self.created:
            raise ValueError(f"expires ({self.expires}) is before created ({self.created})")
        return self

    def terms(self) -> LicenseTerms:
        return LicenseTerms(
            license_id=self.license_id,
            district=self.district,
            licensed_to=self.licensed_to,
            legal_entity_name=self.legal_entity_name or None,
            total=self.seats,
            created_on=self.created,
            expires_on=self.expires,
            deactivated=self.status == "deactivated",
            overage_allowance=self.overage_allowance,
            issued_at=self.issued_at,
        )


MAX_REASONS = 5


def parse_terms(payload: bytes) -> LicenseTerms:
    """The terms of a license payload, or LicenseRejected(MALFORMED_LICENSE) naming each value
    that is missing, of the wrong type or out of range (never quoting the values themselves)."""
    try:
        return LicenseDocument.model_validate_json(payload).terms()
    except ValidationError as error:
        items = error.errors(include_url=False, include_input=False)
        reasons = [_reason(item) for item in items]
        more = len(reasons) - MAX_REASONS
        listed = "; ".join(reasons[:MAX_REASONS]) + (f"; and {more} more" if more > 0 else "")
        # The administrator is told which values are wrong; the validator's words go to the log.
        fields = list(dict.fromkeys(str(item["loc"][0]) for item in items if item["loc"]))
        wrong = (
            f"these values in it are not valid: {', '.join(fields[:MAX_REASONS])}"
            if fields
            else "its contents are not valid"
        )
        raise LicenseRejected(
            ErrorCode.MALFORMED_LICENSE,
            f"The license is signed but {wrong}. The last good license is kept; ask Manage1to1 "
            "for a corrected license.",
            detail=f"The license's contents are not valid: {listed}.",
        ) from None


def _reason(item: Any) -> str:
    """One validation error as ``field: what is wrong``, e.g. ``seats: Input should be a valid
    integer``."""
    where = ".".join(str(part) for part in item["loc"])
    message = str(item["msg"]).removeprefix("Value error, ").replace("Input should", "should")
    if item["type"] == "json_invalid":
        return "the document is not valid JSON"
    return f"{where}: {message}" if where else message


def terms_payload(terms: LicenseTerms, *, signed_at: datetime | None = None) -> bytes:
    """The canonical payload bytes for ``terms``, as the licensing service signs them.

    The licensing server adds ``signed_at`` (UTC) to every answer, so an old answer can be told
    from a fresh one; license files carry none.
    """
    document: dict[str, object] = {
        "license_id": terms.license_id,
        "district": terms.district,
        "licensed_to": terms.licensed_to,
        "legal_entity_name": terms.legal_entity_name,
        "seats": terms.total,
        "created": terms.created_on.isoformat(),
        "expires": terms.expires_on.isoformat(),
        "status": "deactivated" if terms.deactivated else "active",
        "overage_allowance": terms.overage_allowance,
        "issued_at": terms.issued_at.isoformat(),
    }
    if signed_at is not None:
        document["signed_at"] = utc_timestamp(signed_at)
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode("utf-8")


def utc_timestamp(moment: datetime) -> str:
    """ISO 8601 in UTC to the second, e.g. ``2026-11-28T15:00:00Z``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def sign_license(
    terms: LicenseTerms,
    *,
    private_key: Ed25519PrivateKey,
    key_id: str,
    signed_at: datetime | None = None,
) -> SignedLicense:
    payload = terms_payload(terms, signed_at=signed_at)
    return SignedLicense(payload=payload, signature=private_key.sign(payload), key_id=key_id)


def generate_signing_key(private_path: Path, public_path: Path) -> Ed25519PrivateKey:
    """A new key pair: the private key as PEM (owner-only), the public key as base64."""
    private_key = Ed25519PrivateKey.generate()
    make_private_directory(private_path.parent)
    public_path.parent.mkdir(parents=True, exist_ok=True)
    pem = private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    private_path.touch(mode=0o600)
    private_path.write_bytes(pem)
    public_raw = private_key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    public_path.write_text(base64.b64encode(public_raw).decode("ascii") + "\n")
    return private_key


def load_signing_key(path: Path) -> Ed25519PrivateKey:
    """The Ed25519 private key in the PEM file at ``path``; ValueError saying in one line why not."""
    if path.is_dir():
        raise ValueError(f"{path} is a folder, not a private key file")
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except FileNotFoundError:
        raise ValueError(f"there is no key file at {path}") from None
    except OSError as error:
        raise ValueError(f"cannot read {path}: {error.strerror}") from None
    except (ValueError, TypeError):  # not PEM, or a key protected by a password
        raise ValueError(f"{path} is not an unencrypted PEM private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path} is not an Ed25519 private key")
    return key
