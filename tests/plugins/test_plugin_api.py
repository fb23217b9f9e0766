"""The typed plugin API: what ``manage1to1_plugins`` offers, and what the host hands hooks."""

from __future__ import annotations

import pluggy
import pytest

import manage1to1_plugins
from licensing.orchestration.plugin_host import load_plugins
from manage1to1_plugins import (
    LicenseSource,
    PluginHost,
    RosterSource,
    SourceError,
    SourceOptions,
    hookimpl,
)


def test_every_built_in_source_is_typed_with_an_options_model(settings):
    plugins = load_plugins(settings, load_entry_points=False)

    for source in plugins.roster_sources.values():
        assert isinstance(source, RosterSource)
        assert issubclass(source.options_model, SourceOptions)
    for source in plugins.license_sources.values():
        assert isinstance(source, LicenseSource)
        assert issubclass(source.options_model, SourceOptions)


def test_hooks_receive_the_host_with_the_services_settings_and_clock(settings, clock):
    received: list[PluginHost] = []

    class Plugin:
        @hookimpl
        def register_roster_sources(self, host):
            received.append(host)
            return []

    plugins = load_plugins(settings, clock=clock, load_entry_points=False, extra_plugins=[Plugin()])
    assert "local" in plugins.roster_sources

    [host] = received
    assert host.settings is settings
    assert host.clock() == clock()
    assert host.records.status_problem("graduated") is None
    assert "not one of" in (host.records.status_problem("expelled") or "")


def test_a_misspelt_hook_implementation_fails_at_start_up(settings):
    class Misspelt:
        @hookimpl
        def register_roster_source(self, host):  # missing the "s"
            return []

    with pytest.raises(pluggy.PluginValidationError, match="register_roster_source"):
        load_plugins(settings, load_entry_points=False, extra_plugins=[Misspelt()])


def test_options_are_parsed_with_every_problem_named():
    class Options(SourceOptions):
        path: str
        page_size: int = 100

    assert Options.parse({"path": "x"}) == Options(path="x")
    with pytest.raises(SourceError) as raised:
        Options.parse({"page_size": "many", "pathh": "x"})
    message = str(raised.value)
    assert "path: Field required" in message
    assert "page_size:" in message
    assert "pathh: Extra inputs are not permitted" in message


def test_the_public_module_exports_what_a_plugin_needs():
    for name in ("hookimpl", "StudentRecord", "DistrictRef", "SignedLicense", "SourceError"):
        assert name in manage1to1_plugins.__all__
    for name in ("RosterFileError", "RowProblem", "RosterSource", "LicenseSource", "PluginHost"):
        assert name in manage1to1_plugins.__all__
    assert all(hasattr(manage1to1_plugins, name) for name in manage1to1_plugins.__all__)


def test_the_intake_rules_are_public_for_any_source():
    from manage1to1_plugins import intake

    assert [intake.flag(word) for word in ("TRUE", " yes", "1", "False", "no ", "0", True)] == [
        True,
        True,
        True,
        False,
        False,
        False,
        True,
    ]
    assert [intake.flag(word) for word in ("", "maybe", "2", None, 2)] == [None] * 5
    assert intake.oneroster_role(" Principal ") == "principal"
    assert intake.oneroster_role("ADMINISTRATOR") == "administrator"
    assert intake.oneroster_role("ext:counselor") == "ext:counselor"
    assert intake.oneroster_role("janitor") is None
    assert intake.oneroster_role("ext:") is None
    header = intake.match_columns(
        [" SourcedID ", "grdes", "ext_vendor_x", "Metadata.room", "role", "ROLE"],
        ["sourcedId", "role", "grades"],
        extension_prefix="metadata.",
    )
    assert header.indexes == {"sourcedId": 0, "role": 4}
    assert header.unknown == [("grdes", "grades"), ("ext_vendor_x", None)]
    assert (header.missing, header.repeated) == (["grades"], ["role"])
    assert intake.detect_encoding(b"\xef\xbb\xbfid\r\n").name is None
    assert intake.detect_encoding("id,név\n".encode("cp1252")).codec == "cp1252"
    assert intake.detect_encoding("id\n".encode("utf-16")).name == "UTF-16"


@pytest.mark.anyio
async def test_clients_refuse_a_server_whose_certificate_is_not_trusted_at_once_and_say_so(
    settings, tmp_path
):
    """Every client shares one TLS context (built once: it reads the whole CA bundle); sharing
    must not loosen it. A server with a self-signed certificate is refused, client after client,
    without asking again (it stays untrusted), and the error is described in those words."""
    import ssl

    import httpx

    from manage1to1_plugins.fields import certificate_failure, describe_error
    from tests.fakes.tls import untrusted_https_server

    assert settings.http.retries > 0  # the default policy retries connection errors
    host = load_plugins(settings, load_entry_points=False).host
    async with untrusted_https_server(tmp_path) as server:
        for number in (1, 2):
            async with host.create_client() as client:
                with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED") as caught:
                    await client.get(server.url + "/")
            assert server.connections == number  # one attempt, no retry
            assert certificate_failure(caught.value) is not None
            described = describe_error(caught.value)
            assert described.startswith(
                "the server's TLS certificate is not trusted (self-signed certificate)"
            ), described
            assert "SSL_CERT_FILE" in described
    # The same failure made elsewhere (a transport of a plugin's own) lacks the ssl module's
    # verify_message; it is still said in those words.
    try:
        try:
            raise ssl.SSLCertVerificationError(1, "certificate verify failed")
        except ssl.SSLCertVerificationError as cause:
            raise httpx.ConnectError("handshake failed") from cause
    except httpx.ConnectError as made_elsewhere:
        assert describe_error(made_elsewhere).startswith(
            "the server's TLS certificate is not trusted (certificate verify failed)"
        )
    # Trusted, but reached by a name the certificate does not carry: another issuer would not
    # help, so SSL_CERT_FILE is not suggested.
    async with untrusted_https_server(tmp_path) as server:
        trusted = ssl.create_default_context(cafile=str(tmp_path / "cert.pem"))
        async with httpx.AsyncClient(verify=trusted) as client:
            assert (await client.get(server.url + "/")).text == "ok"
            with pytest.raises(httpx.ConnectError) as caught:
                await client.get(server.url.replace("127.0.0.1", "localhost") + "/")
    described = describe_error(caught.value)
    assert described.startswith("the server's TLS certificate is not trusted (Hostname mismatch")
    assert described.endswith(
        "the certificate does not name the host in the address: use the host name it names"
    )
    assert certificate_failure(httpx.ConnectError("Connection refused")) is None
    assert describe_error(httpx.ConnectError("Connection refused")) == (
        "ConnectError: Connection refused"
    )
