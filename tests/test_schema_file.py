"""schema.graphql is generated from the code; it must never drift from it."""

from pathlib import Path

from graph.schema import schema_sdl

SCHEMA_FILE = Path(__file__).resolve().parent.parent / "schema.graphql"


def test_schema_graphql_matches_the_code():
    assert SCHEMA_FILE.read_text() == schema_sdl(), (
        "schema.graphql is out of date: run `make schema` (licensing schema --write schema.graphql)."
    )


def test_contract_names_of_the_spec_are_present():
    sdl = schema_sdl()
    # license is null while a district has none (licenseUnavailable says why); licenseSettings
    # and licenseCheck may be refused (permission, argument) without nulling the other fields.
    for fragment in (
        "license: License\n",
        "licenseUnavailable: LicenseUnavailable\n",
        "usage: Usage!",
        "alerts(placement: AlertPlacement = null, includeResolved: Boolean! = false): [Alert!]!",
        "licenseSettings: LicenseSettings\n",
        "licenseCheck(additionalStudents: Int! = 1): LicenseCheck\n",
        "viewer: Viewer!",
        "setThreshold(studentsRemaining: Int!): SetThresholdPayload!",
        "forceLicenseUpdate: ForceLicenseUpdatePayload!",
    ):
        assert fragment in sdl
