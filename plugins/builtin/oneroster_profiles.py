"""What each SIS vendor's OneRoster REST service needs, and reading the address an administrator
pastes: a bare host, the service URL, or the URL of one endpoint such as ``.../users``.

A profile holds only what a vendor documents (or what is OneRoster's own default where it does
not): where the token endpoint is, how the client id and secret travel to it (RFC 6749 section
2.3.1: HTTP Basic, ``client_secret_basic``, or form fields, ``client_secret_post``), which
version and signing a bare host means, the page size and any request pacing. docs/vendors/ says
where each value comes from and which are not known.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit, urlunsplit

from manage1to1_plugins import SourceError
from manage1to1_plugins.fields import checked_base_url

PATHS = {
    "1.2": "/ims/oneroster/rostering/v1p2",
    "1.1": "/ims/oneroster/v1p1",
}
# Where a service URL ends, by the version it serves. ``/ims/oneroster/v1p2`` is not the 1.2
# binding's path, but some servers publish it, and it can only mean 1.2.
SERVICE_PATHS = (
    ("/ims/oneroster/rostering/v1p2", "1.2"),
    ("/ims/oneroster/v1p2", "1.2"),
    ("/ims/oneroster/v1p1", "1.1"),
)
# What may follow a service URL in a pasted endpoint URL (the OneRoster 1.1 and 1.2 rostering
# collections, lower case); anything else is not understood rather than guessed at.
COLLECTIONS = frozenset(
    {
        "academicsessions",
        "classes",
        "courses",
        "demographics",
        "enrollments",
        "gradingperiods",
        "orgs",
        "schools",
        "students",
        "teachers",
        "terms",
        "users",
    }
)
CLIENT_AUTH_METHODS = ("client_secret_basic", "client_secret_post")
DEFAULT_PAGE_SIZE = 1000


@dataclass(frozen=True)
class VendorProfile:
    """One vendor's known settings; ``None`` means "not known: the generic behaviour"."""

    name: str
    title: str
    # The version a bare host means (a pasted service URL names its own).
    version: str = "1.2"
    # How the client id and secret are sent to the token endpoint.
    client_auth_method: str = "client_secret_basic"
    # The token endpoint when the configuration names none: "service" for <base>/token,
    # "campus" for Infinite Campus's <instance>/oauth2/token?appName=..., or a fixed URL.
    token_endpoint: str = "service"
    # The signing a 1.1 service uses when ``auth`` is not given.
    v1p1_auth: str = "oauth2"
    # What a bare host's path is before /ims/... (Infinite Campus serves under /campus/api).
    api_prefix: str = ""
    page_size: int = DEFAULT_PAGE_SIZE
    requests_per_minute: int | None = None


PROFILES = {
    profile.name: profile
    for profile in (
        VendorProfile("generic", "OneRoster"),
        # PowerSchool's OneRoster documentation: POST https://accounts.powerschool.com/as/token.oauth2
        # with client_id and client_secret as form fields.
        VendorProfile(
            "powerschool",
            "PowerSchool",
            client_auth_method="client_secret_post",
            token_endpoint="https://accounts.powerschool.com/as/token.oauth2",
        ),
        # Infinite Campus: service URL https://<host>/campus/api/ims/oneroster/rostering/v1p2 and
        # token URL https://<host>/campus/oauth2/token?appName=<appName>, HTTP Basic.
        VendorProfile(
            "infinite_campus", "Infinite Campus", token_endpoint="campus", api_prefix="/campus/api"
        ),
        # ClassLink's direct OneRoster access is 1.1 signed with OAuth 1.0a.
        VendorProfile("classlink", "ClassLink", version="1.1", v1p1_auth="oauth1"),
        VendorProfile("skyward", "Skyward"),
        # Aeries implements OneRoster 1.1: token at <Aeries URL>/token, HTTP Basic.
        VendorProfile("aeries", "Aeries", version="1.1"),
    )
}


def profile_named(name: object) -> VendorProfile:
    """The profile called ``name`` (``generic`` when none is given), or SourceError."""
    word = str(name or "generic").strip().lower()
    if word == "clever":
        raise SourceError(
            'OneRoster REST: Clever is a source of its own: use kind = "clever" with the '
            "district's Clever token, not the OneRoster REST source."
        )
    if word not in PROFILES:
        raise SourceError(f"OneRoster REST: profile {word!r} is not one of {', '.join(PROFILES)}.")
    return PROFILES[word]


@dataclass(frozen=True)
class ServiceLocation:
    """Where the OneRoster service is: ``service_url`` + ``/students`` is a collection."""

    base_url: str  # everything before /ims/...
    service_url: str  # base_url + the version's path
    version: str


def locate_service(
    pasted: object, *, profile: VendorProfile, version: str | None
) -> ServiceLocation:
    """The OneRoster service at the address an administrator pasted, or SourceError saying why
    it cannot be understood. ``version`` is the configured version (None: not configured)."""
    url = checked_base_url(
        pasted, where="OneRoster REST: base_url", carries="credentials and student data"
    )
    parts = urlsplit(url)
    origin = urlunsplit((parts.scheme, parts.netloc, "", "", ""))
    path = parts.path.rstrip("/")
    lowered = path.lower()
    for marker, marker_version in SERVICE_PATHS:
        at = lowered.find(marker)
        end = at + len(marker)
        if at < 0 or (end < len(lowered) and lowered[end] != "/"):
            continue
        rest = path[end:].strip("/")
        if rest and rest.split("/")[0].lower() not in COLLECTIONS:
            raise SourceError(
                f"OneRoster REST: base_url {url!r} goes on after the OneRoster service "
                f"({path[:end]}) with {rest!r}, which is not a OneRoster collection: paste the "
                "service URL your SIS shows (ending in /ims/oneroster/...)."
            )
        if version is not None and version != marker_version:
            raise SourceError(
                f"OneRoster REST: base_url {url!r} is a OneRoster {marker_version} address but "
                f'version = "{version}": remove version, or paste the {version} address.'
            )
        return ServiceLocation(
            base_url=origin + path[:at], service_url=origin + path[:end], version=marker_version
        )
    if "/ims/" in lowered + "/":
        raise SourceError(
            f"OneRoster REST: base_url {url!r} is not a OneRoster 1.1 or 1.2 address (those go on "
            "with /ims/oneroster/v1p1 or /ims/oneroster/rostering/v1p2)."
        )
    if "/oauth" in lowered or lowered.endswith("/token"):
        raise SourceError(
            f"OneRoster REST: base_url {url!r} looks like the token endpoint: put it in "
            "token_url, and the OneRoster service URL (or the server's address) in base_url."
        )
    chosen = version or profile.version
    if profile.api_prefix and not path:
        path = profile.api_prefix
    elif profile.api_prefix.endswith("/api") and not lowered.endswith("/api"):
        # An instance's address (https://<host>/campus): its API is under /api.
        path += "/api"
    base = origin + path
    return ServiceLocation(base_url=base, service_url=base + PATHS[chosen], version=chosen)


def default_token_url(
    profile: VendorProfile, location: ServiceLocation, *, app_name: str | None
) -> str:
    """The profile's token endpoint for this service, or SourceError when it needs more."""
    if profile.token_endpoint == "service":
        return f"{location.base_url}/token"
    if profile.token_endpoint == "campus":
        if not app_name:
            raise SourceError(
                "OneRoster REST: Infinite Campus's token URL names the connection's appName: "
                "paste the Token URL Campus shows (…/oauth2/token?appName=…) into token_url, "
                "or give the appName in option app_name."
            )
        instance = location.base_url.removesuffix("/api")
        return f"{instance}/oauth2/token?{urlencode({'appName': app_name})}"
    return profile.token_endpoint
