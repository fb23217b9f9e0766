"""Fuzzing /graphql with requests generated from the schema: hostile input never breaks it.

hypothesis-graphql writes queries and mutations from the real schema, valid ones and ones with a
single mistake each. Some literal arguments become variables, and some of those get values of the
wrong kind: huge or fractional numbers, nulls, NUL characters and unpaired surrogates, NaN, lists
of the district's own student ids, of another district's, of too many. Each request goes through
the real app, signed in with a MANAGE_SETTINGS token of a district that has a license, a roster
and an alert.

Every answer is below 500, JSON, free of tracebacks, exception names and file paths, every error
in it carries a code, and none is the masked internal error (that means a bug was hit). Queries
change nothing; a refused mutation changes nothing but the audit entry recording the refusal; no
request ever changes another district.

How many examples, for this file in all: LICENSING_FUZZ_EXAMPLES when set (say 5000, for a longer
hunt); otherwise 500 in CI (CI=true) and 200 on a developer's machine. On a developer's machine they
are new ones on every run, so the runs add up; in CI the same ones on every run, so CI is
deterministic. A failure prints the request
and how to reproduce it.
"""

from __future__ import annotations

import builtins
import json
import os
import re
import string
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from enum import Enum
from functools import cache
from typing import Any
from urllib.parse import urlencode

import graphql
import httpx
import pytest
from graphql import (
    ArgumentNode,
    DocumentNode,
    FieldNode,
    NameNode,
    OperationDefinitionNode,
    TypeInfo,
    TypeInfoVisitor,
    VariableDefinitionNode,
    VariableNode,
    Visitor,
)
from hypothesis import HealthCheck, event, given, note
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from hypothesis_graphql import Mode, mutations, queries
from sqlalchemy import func
from sqlmodel import select

from db.models import (
    Alert,
    AuditEvent,
    DistrictUsage,
    License,
    LicenseSettings,
    LicenseSyncState,
    RosterRecord,
)
from graph.errors import INTERNAL_ERROR_MESSAGE
from graph.schema import schema_sdl
from licensing.settings import Settings
from tests.utils.districts import TestDistrict, students
from tests.utils.graphql import graphql_data

pytestmark = pytest.mark.anyio

# --- How many examples ----------------------------------------------------------------------------

FUZZ_EXAMPLES_VARIABLE = "LICENSING_FUZZ_EXAMPLES"
IN_CI = os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}
# Read at import: the isolated_environment fixture removes LICENSING_* variables before each test.
_REQUESTED_EXAMPLES = os.environ.get(FUZZ_EXAMPLES_VARIABLE, "").strip()
# A developer runs the suite many times a day and gets new examples each time; CI runs fixed ones.
DEFAULT_EXAMPLES = 500 if IN_CI else 200
TOTAL_EXAMPLES = int(_REQUESTED_EXAMPLES) if _REQUESTED_EXAMPLES else DEFAULT_EXAMPLES


def fuzz_settings(share: float) -> hypothesis_settings:
    """This file's profile: ``share`` of the examples; in CI the same ones on every run."""
    return hypothesis_settings(
        max_examples=max(1, round(TOTAL_EXAMPLES * share)),
        derandomize=IN_CI,
        database=None,
        deadline=None,
        print_blob=True,
        # The app, its database and districts are built once per test, not per example; each
        # example leaves the district as it found it (restore_baseline), so examples stay
        # independent and a failure shrinks and replays.
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


# --- The districts under attack -------------------------------------------------------------------

HOME = "riverside"
OTHER = "hillside"
HOME_ACTIVE = 960
OTHER_ACTIVE = 120
BASE_THRESHOLD = 50

SCHEMA = graphql.build_schema(schema_sdl())

# --- Values ---------------------------------------------------------------------------------------

# Stands for a number of 5000 digits: beyond what Python converts by default, so it is written
# into the JSON text by hand (json.dumps would refuse it).
HUGE_NUMBER = "<huge number>"
HUGE_NUMBER_TEXT = "9" * 5000
# A variable declared but left out of "variables".
MISSING = object()

# NUL and control characters; half of the time unpaired surrogates too (refused at the door, so
# not always, or few requests would get further).
ANY_TEXT = st.text(max_size=30) | st.text(st.characters(exclude_categories=[]), max_size=30)
NUMBERS = st.one_of(
    st.integers(min_value=-5, max_value=1100),
    st.integers(),
    st.sampled_from([2**31 - 1, 2**31, -(2**31), -(2**31) - 1, 2**53 + 1, 2**63, 10**30]),
    st.floats(),  # NaN and infinities included: Python's JSON writes and reads them
    st.just(HUGE_NUMBER),
)
JSON_SCALARS = st.one_of(st.none(), st.booleans(), NUMBERS, ANY_TEXT)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(ANY_TEXT, children, max_size=4)
    ),
    max_leaves=10,
)
OWN_STUDENT_IDS = st.integers(1, HOME_ACTIVE).map(lambda number: f"{HOME}-{number:06d}")
OTHER_DISTRICT_IDS = st.integers(1, OTHER_ACTIVE).map(lambda number: f"{OTHER}-{number:06d}")
STUDENT_ID_LISTS = st.one_of(
    st.lists(
        st.one_of(
            OWN_STUDENT_IDS,
            OWN_STUDENT_IDS.map(lambda identifier: f" {identifier} "),
            OTHER_DISTRICT_IDS,
            ANY_TEXT,
        ),
        max_size=6,
    ),
    st.just([f"{HOME}-{number:06d}" for number in range(1, 1002)]),  # one more than allowed
    # Long ids: together longer than the audit log keeps.
    st.lists(st.text(string.ascii_letters, min_size=100, max_size=400), min_size=10, max_size=60),
)


def _string_node(value: str) -> graphql.StringValueNode:
    return graphql.StringValueNode(value=value)


CUSTOM_SCALARS = {
    "Date": st.one_of(st.dates().map(date.isoformat), st.text(max_size=20)).map(_string_node),
    "DateTime": st.one_of(
        st.datetimes(timezones=st.sampled_from([UTC, None])).map(datetime.isoformat),
        st.text(max_size=20),
    ).map(_string_node),
}


@cache
def hostile_values(type_name: str) -> st.SearchStrategy[object]:
    """Variable values for an argument of this type, most of them wrong."""
    type_ = graphql.type_from_ast(SCHEMA, graphql.parse_type(type_name))
    named = graphql.get_named_type(type_)
    options: list[st.SearchStrategy[object]] = [JSON_VALUES, st.just(MISSING), st.none()]
    if named.name == "Int":
        options.append(NUMBERS)
    if graphql.is_list_type(graphql.get_nullable_type(type_)) and named.name == "String":
        options.append(STUDENT_ID_LISTS)
    if graphql.is_enum_type(named):
        options.append(st.sampled_from(sorted(named.values)) | ANY_TEXT)
    if graphql.is_input_object_type(named):
        options.append(
            st.fixed_dictionaries({}, optional=dict.fromkeys(sorted(named.fields), JSON_VALUES))
        )
    return st.one_of(options)


# --- Documents ------------------------------------------------------------------------------------


def query_documents() -> st.SearchStrategy[DocumentNode]:
    return st.one_of(
        queries(SCHEMA, custom_scalars=CUSTOM_SCALARS, print_ast=_as_node, mode=mode)
        for mode in (Mode.POSITIVE, Mode.NEGATIVE)
    )


def mutation_documents() -> st.SearchStrategy[DocumentNode]:
    return st.one_of(
        mutations(SCHEMA, custom_scalars=CUSTOM_SCALARS, print_ast=_as_node, mode=mode)
        for mode in (Mode.POSITIVE, Mode.NEGATIVE)
    ).map(with_outcome_fields)


def _as_node(document: DocumentNode) -> DocumentNode:
    return document


OUTCOME_FIELDS = {
    selection.name.value: selection
    for selection in graphql.parse("{ errors { code } throttled }")
    .definitions[0]
    .selection_set.selections
}


def with_outcome_fields(document: DocumentNode) -> DocumentNode:
    """Each mutation also asks for ``errors`` (and ``throttled``), to tell a refusal when it sees one."""
    mutation_type = SCHEMA.mutation_type
    assert mutation_type is not None

    def with_outcome(selection: Any) -> Any:
        mutation = (
            mutation_type.fields.get(selection.name.value)
            if isinstance(selection, FieldNode)
            else None
        )
        if mutation is None or selection.selection_set is None:
            return selection
        payload = graphql.get_named_type(mutation.type)
        extra = [OUTCOME_FIELDS[name] for name in OUTCOME_FIELDS if name in payload.fields]
        selections = (*selection.selection_set.selections, *extra)
        return replace(
            selection, selection_set=replace(selection.selection_set, selections=selections)
        )

    definitions = []
    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode):
            selections = tuple(with_outcome(s) for s in definition.selection_set.selections)
            definition = replace(
                definition, selection_set=replace(definition.selection_set, selections=selections)
            )
        definitions.append(definition)
    return replace(document, definitions=tuple(definitions))


class _ArgumentsToVariables(Visitor):
    """Moves some literal arguments into variables: the same value, or a hostile one."""

    def __init__(self, draw: st.DrawFn, type_info: TypeInfo) -> None:
        super().__init__()
        self.draw = draw
        self.type_info = type_info
        self.definitions: list[VariableDefinitionNode] = []
        self.values: dict[str, object] = {}

    def enter_argument(self, node: ArgumentNode, *_args: object) -> ArgumentNode | None:
        argument = self.type_info.get_argument()
        if argument is None or isinstance(node.value, VariableNode):
            return None
        how = self.draw(st.sampled_from(("literal", "same value", "hostile value")))
        if how == "literal":
            return None
        variable = VariableNode(name=NameNode(value=f"v{len(self.definitions)}"))
        type_name = str(argument.type)
        self.definitions.append(
            VariableDefinitionNode(variable=variable, type=graphql.parse_type(type_name))
        )
        if how == "same value":
            value = graphql.value_from_ast_untyped(node.value)
        else:
            value = self.draw(hostile_values(type_name))
        if value is not MISSING:
            self.values[variable.name.value] = value
        return replace(node, value=variable)


@dataclass(frozen=True)
class FuzzRequest:
    document: DocumentNode = field(repr=False)  # the query below says it
    query: str
    variables: dict[str, object]
    operation_name: str | None

    def payload(self) -> dict[str, object]:
        payload: dict[str, object] = {"query": self.query, "variables": self.variables}
        if self.operation_name is not None:
            payload["operationName"] = self.operation_name
        return payload


@st.composite
def graphql_requests(draw: st.DrawFn, documents: st.SearchStrategy[DocumentNode]) -> FuzzRequest:
    document = draw(documents)
    lift = _ArgumentsToVariables(draw, TypeInfo(SCHEMA))
    document = graphql.visit(document, TypeInfoVisitor(lift.type_info, lift))
    name = draw(st.sampled_from([None, "Fuzz"]))
    document = replace(
        document,
        definitions=tuple(
            replace(
                definition,
                name=NameNode(value=name) if name else None,
                variable_definitions=tuple(lift.definitions),
            )
            if isinstance(definition, OperationDefinitionNode)
            else definition
            for definition in document.definitions
        ),
    )
    # Mostly none, as most clients send; sometimes the right name, an unknown one, or any text.
    how = draw(st.sampled_from(["omit"] * 4 + ["name", "unknown", "any text"]))
    operation_name = {"name": name, "unknown": "Other"}.get(how)
    if how == "any text":
        operation_name = draw(ANY_TEXT)
    return FuzzRequest(
        document=document,
        query=graphql.print_ast(document),
        variables=lift.values,
        operation_name=operation_name,
    )


def json_text(value: object) -> str:
    """JSON as a hostile client may write it: NaN, unpaired surrogates and 5000-digit numbers."""
    return json.dumps(value).replace(json.dumps(HUGE_NUMBER), HUGE_NUMBER_TEXT)


async def send(
    client: httpx.AsyncClient, token: str, request: FuzzRequest, method: str
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"}
    if method == "GET":
        params = {"query": request.query, "variables": json_text(request.variables)}
        if request.operation_name is not None:
            params["operationName"] = request.operation_name
        # Unpaired surrogates (in operationName) go out as the invalid UTF-8 they would be.
        query_string = urlencode(params, encoding="utf-8", errors="surrogatepass")
        return await client.get(f"/graphql?{query_string}", headers=headers)
    return await client.post(
        "/graphql",
        content=json_text(request.payload()).encode(),
        headers={**headers, "Content-Type": "application/json"},
    )


# --- What every answer must look like -------------------------------------------------------------

_EXCEPTION_NAMES = sorted(
    name
    for name, value in vars(builtins).items()
    if isinstance(value, type)
    and issubclass(value, BaseException)
    and (name.endswith(("Error", "Exception")) or name in {"StopIteration", "SystemExit"})
)
INTERNALS = re.compile(
    r"Traceback|File \"|\.py\b|site-packages|sqlalchemy|psycopg|sqlite3|pydantic|strawberry\."
    r"|\b(?:"
    + "|".join(
        [
            *_EXCEPTION_NAMES,
            "IntegrityError",
            "OperationalError",
            "ProgrammingError",
            "DataError",
            "StatementError",
            "GraphQLError",
        ]
    )
    + r")\b",
)


def assert_answered_safely(response: httpx.Response) -> dict[str, Any]:
    """A clear answer: below 500, JSON, every error with a message and a code, nothing internal."""
    assert response.status_code < 500, response.text
    assert response.headers.get("content-type", "").startswith("application/json"), (
        response.status_code,
        response.headers.get("content-type"),
        response.text[:500],
    )
    body = response.json()
    assert isinstance(body, dict), body
    errors = body.get("errors") or []
    assert "data" in body or errors, body
    if response.status_code >= 400:
        assert errors, body
    for error in errors:
        message = error.get("message")
        assert isinstance(message, str), error
        assert message.strip(), error
        code = (error.get("extensions") or {}).get("code")
        assert code, error
        masked = message == INTERNAL_ERROR_MESSAGE or code == "INTERNAL_SERVER_ERROR"
        assert not masked, "an unexpected error was hit (see the server log)"
    leaked = INTERNALS.findall(response.text)
    assert not leaked, (leaked, response.text[:2000])
    return body


# --- What the district looks like -----------------------------------------------------------------


@dataclass(frozen=True)
class DistrictRecord:
    """Everything about a district that a request could change, as stored."""

    facts: dict[str, Any]
    audit: tuple[tuple[str, str], ...]  # (action, outcome), oldest first

    def new_audit_outcomes(self, before: DistrictRecord) -> list[str]:
        return [outcome for _action, outcome in self.audit[len(before.audit) :]]


def district_record(service: Any, district_id: int) -> DistrictRecord:
    with service.database.read() as session:
        license_row = session.exec(select(License).where(License.district_id == district_id)).one()
        sync_state = session.get(LicenseSyncState, district_id)
        threshold = session.get(LicenseSettings, district_id)
        usage = session.get(DistrictUsage, district_id)
        alerts = session.exec(
            select(Alert).where(Alert.district_id == district_id).order_by(Alert.id)
        ).all()
        audit = session.exec(
            select(AuditEvent.action, AuditEvent.outcome)
            .where(AuditEvent.district_id == district_id)
            .order_by(AuditEvent.id)
        ).all()
        disabled = session.exec(
            select(RosterRecord.source_id).where(
                RosterRecord.district_id == district_id, RosterRecord.enabled.is_(False)
            )
        ).all()
        records = session.exec(
            select(func.count()).where(RosterRecord.district_id == district_id)
        ).one()
    return DistrictRecord(
        facts={
            "license": license_row.model_dump(),
            "sync state": sync_state.model_dump() if sync_state else None,
            "threshold": threshold.model_dump() if threshold else None,
            "usage": usage.model_dump() if usage else None,
            "alerts": [alert.model_dump() for alert in alerts],
            "disabled students": sorted(disabled),
            "roster records": records,
        },
        audit=tuple((action, outcome) for action, outcome in audit),
    )


@dataclass
class FuzzTarget:
    service: Any
    client: httpx.AsyncClient
    home: TestDistrict
    other: TestDistrict
    clock: Any

    async def settle(self) -> tuple[DistrictRecord, DistrictRecord]:
        """Both districts' records, once reading them changes nothing (alerts follow the clock)."""
        for district in (self.home, self.other):
            await self.service.district_state(district.id)
        return self.records()

    def records(self) -> tuple[DistrictRecord, DistrictRecord]:
        return (
            district_record(self.service, self.home.id),
            district_record(self.service, self.other.id),
        )

    async def restore_baseline(self) -> None:
        """Undo what accepted mutations changed, through the API, so the next example starts alike."""
        token = self.home.manager_token
        record = district_record(self.service, self.home.id)
        if record.facts["threshold"]["students_remaining_threshold"] != BASE_THRESHOLD:
            data = await graphql_data(
                self.client,
                token,
                "mutation($t: Int!) { setThreshold(studentsRemaining: $t) { errors { code } } }",
                {"t": BASE_THRESHOLD},
            )
            assert data["setThreshold"]["errors"] == []
        if record.facts["disabled students"]:
            data = await graphql_data(
                self.client,
                token,
                "mutation($ids: [String!]!) { reactivateStudents(ids: $ids) { errors { code } } }",
                {"ids": record.facts["disabled students"]},
            )
            assert data["reactivateStudents"]["errors"] == []


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The rate limit and the failed sign-in limit are tested on their own (test_rate_limit.py,
    test_failed_sign_in_limit.py); here they would only answer most examples with 429."""
    rate_limit = settings.rate_limit.model_copy(update={"enabled": False})
    sign_in = settings.sign_in.model_copy(update={"failures_per_address": 10**9})
    return settings.model_copy(update={"rate_limit": rate_limit, "sign_in": sign_in})


@pytest.fixture
async def target(make_district, client, service, clock) -> FuzzTarget:
    home = await make_district(
        HOME,
        seats=1000,
        active=HOME_ACTIVE,
        threshold=BASE_THRESHOLD,
        devices=3,
        roster=[
            *students(20, prefix=f"{HOME}-grad-", status="graduated"),
            *students(15, prefix=f"{HOME}-staff-", role="teacher"),
        ],
    )
    other = await make_district(OTHER, seats=300, active=OTHER_ACTIVE, threshold=25)
    fuzz_target = FuzzTarget(service=service, client=client, home=home, other=other, clock=clock)
    # The district really is the one described: a license, a roster, an alert.
    data = await graphql_data(client, home.manager_token, "{ license { display } alerts { kind } }")
    assert data == {"license": {"display": "960 / 1000"}, "alerts": [{"kind": "LICENSES_LOW"}]}
    return fuzz_target


# --- The properties -------------------------------------------------------------------------------


class Outcome(Enum):
    NOTHING_RAN = "refused before anything ran"
    ALL_REFUSED = "every mutation refused"
    UNKNOWN = "something may have been accepted"


def mutation_outcome(
    response: httpx.Response, body: dict[str, Any], document: DocumentNode
) -> Outcome:
    if response.status_code != 200:
        return Outcome.NOTHING_RAN
    data = body.get("data")
    errors = body.get("errors") or []
    if data is None:
        if all("path" not in error for error in errors):
            return Outcome.NOTHING_RAN
        return Outcome.UNKNOWN
    roots = [
        selection
        for definition in document.definitions
        if isinstance(definition, OperationDefinitionNode)
        for selection in definition.selection_set.selections
    ]
    if not all(isinstance(root, FieldNode) for root in roots):
        return Outcome.UNKNOWN
    for root in roots:
        payload = data.get((root.alias or root.name).value)
        refused = payload is None or bool(payload.get("errors")) or payload.get("throttled") is True
        if not refused:
            return Outcome.UNKNOWN
    return Outcome.ALL_REFUSED


def describe(request: FuzzRequest, method: str) -> None:
    note(f"{method} operationName={request.operation_name!r}")
    note(request.query)
    note(f"variables: {json_text(request.variables)[:2000]}")


@fuzz_settings(0.45)
@given(request=graphql_requests(query_documents()), method=st.sampled_from(["POST", "POST", "GET"]))
async def test_generated_queries_are_answered_safely_and_change_nothing(
    target: FuzzTarget, request: FuzzRequest, method: str
) -> None:
    describe(request, method)
    before = await target.settle()

    response = await send(target.client, target.home.manager_token, request, method)

    assert_answered_safely(response)
    event(f"{method} {response.status_code}")
    assert target.records() == before


@fuzz_settings(0.45)
@given(
    request=graphql_requests(mutation_documents()),
    method=st.sampled_from(["POST", "POST", "POST", "GET"]),
    cooled_down=st.booleans(),
)
async def test_generated_mutations_are_answered_safely_and_refusals_change_nothing(
    target: FuzzTarget, request: FuzzRequest, method: str, cooled_down: bool
) -> None:
    describe(request, method)
    if cooled_down:  # Force License Update may run for real, not only be throttled
        target.clock.advance(seconds=target.service.settings.force_update_cooldown_seconds + 1)
    home_before, other_before = await target.settle()

    response = await send(target.client, target.home.manager_token, request, method)

    body = assert_answered_safely(response)
    home_after, other_after = target.records()
    assert other_after == other_before, "a request changed another district"
    if method == "GET":
        assert response.status_code in (400, 405), "a mutation ran over GET"
    outcome = mutation_outcome(response, body, request.document)
    note(f"outcome: {outcome.value}")
    event(f"{method} {response.status_code}: {outcome.value}")
    if outcome is Outcome.NOTHING_RAN:
        assert home_after == home_before
    elif outcome is Outcome.ALL_REFUSED:
        assert home_after.facts == home_before.facts
        # A refusal is recorded (who tried what), and nothing else is.
        assert set(home_after.new_audit_outcomes(home_before)) <= {"rejected", "throttled"}
    await target.restore_baseline()


# --- Raw requests: envelopes, content types, bytes and tokens -------------------------------------

KNOWN_DOCUMENTS = [
    "{ license { display } }",
    "query Q($n: Int!) { licenseCheck(additionalStudents: $n) { allowed } }",
    "{ alerts(placement: DASHBOARD) { kind } usage { activeStudents } }",
    "mutation { setThreshold(studentsRemaining: 10) { errors { code } } }",
    "{ license { display ",
    "subscription { licenseChanged { display } }",
    "query A { license { total } } query B { usage { staff } }",
]
ENVELOPES = st.fixed_dictionaries(
    {},
    optional={
        "query": st.sampled_from(KNOWN_DOCUMENTS) | JSON_VALUES,
        "variables": JSON_VALUES,
        "operationName": st.sampled_from(["Q", "A", "B", "Nope"]) | JSON_VALUES,
        "extensions": JSON_VALUES,
    },
)
JSON_BODIES = st.one_of(ENVELOPES, st.lists(ENVELOPES, max_size=3), JSON_VALUES).map(
    lambda value: json_text(value).encode()
)


@st.composite
def broken_bytes(draw: st.DrawFn) -> bytes:
    """A JSON body with a few bytes overwritten: invalid UTF-8, cut short, or garbage."""
    body = bytearray(draw(JSON_BODIES))
    for _ in range(draw(st.integers(1, 3))):
        position = draw(st.integers(0, len(body)))
        body[position:position] = draw(st.binary(min_size=1, max_size=4))
    return bytes(body[: draw(st.integers(0, len(body)))]) if draw(st.booleans()) else bytes(body)


BODIES = st.one_of(JSON_BODIES, broken_bytes(), st.binary(max_size=200))
CONTENT_TYPES = st.sampled_from(
    [
        "application/json",
        "application/json; charset=utf-8",
        "application/json; charset=latin-1",
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/graphql",
        None,
    ]
)


@dataclass(frozen=True)
class TokenChoice:
    """The Authorization header to send, given the real token (None: no header)."""

    header: Callable[[str], bytes | None]
    valid: bool
    label: str


def _real_token(token: str) -> bytes:
    return f"Bearer {token}".encode()


TOKENS = st.one_of(
    st.just(TokenChoice(_real_token, True, "the real token")),
    st.sampled_from(
        [
            TokenChoice(lambda _token: None, False, "no header"),
            TokenChoice(lambda _token: b"Bearer", False, "a bare 'Bearer'"),
            TokenChoice(lambda _token: b"Bearer    ", False, "'Bearer' and spaces"),
            TokenChoice(lambda token: f"Basic {token}".encode(), False, "the Basic scheme"),
            TokenChoice(lambda token: f"Token {token}".encode(), False, "another scheme"),
            TokenChoice(lambda token: f"Bearer {token[:-1]}".encode(), False, "a cut token"),
            TokenChoice(lambda token: f"Bearer {token}x".encode(), False, "a longer token"),
        ]
    ),
    st.binary(max_size=80)
    .filter(lambda raw: not {ord("\r"), ord("\n"), 0} & set(raw))
    .map(lambda raw: TokenChoice(lambda _token: b"Bearer " + raw, False, f"Bearer {raw!r}")),
)


@fuzz_settings(0.10)
@given(
    method=st.sampled_from(["POST", "POST", "GET"]),
    body=BODIES,
    content_type=CONTENT_TYPES,
    token=TOKENS,
)
async def test_raw_requests_are_answered_safely(
    target: FuzzTarget, method: str, body: bytes, content_type: str | None, token: TokenChoice
) -> None:
    note(f"{method} {content_type} {token.label} body={body[:500]!r}")
    before = await target.settle()
    headers: dict[str, bytes] = {}
    header = token.header(target.home.manager_token)
    if header is not None:
        headers["Authorization"] = header
    if content_type is not None:
        headers["Content-Type"] = content_type.encode()

    if method == "GET":
        params = {"query": body.decode("utf-8", "replace")}
        response = await target.client.get("/graphql", params=params, headers=headers)
    else:
        response = await target.client.post("/graphql", content=body, headers=headers)

    answer = assert_answered_safely(response)
    event(f"{method} {response.status_code}")
    if not token.valid:
        assert response.status_code == 401, answer
        assert answer["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    if response.status_code != 200:
        assert target.records() == before
    await target.restore_baseline()
