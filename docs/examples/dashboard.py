"""Who am I, and the dashboard, with httpx. Needs a VIEW_LICENSE token.

M1T1_API=http://127.0.0.1:8000 M1T1_TOKEN=m1t1_... python dashboard.py
"""

import os
from typing import Any

import httpx

API = os.environ.get("M1T1_API", "http://127.0.0.1:8000")
TOKEN = os.environ["M1T1_TOKEN"]

DASHBOARD = """
query Dashboard {
  viewer { district { slug name timeZone } token { name permissions } }
  license { display used total remaining level status expiresAt daysUntilExpiration stale }
  licenseUnavailable { reason message }
  usage { activeStudents staff inactiveStudents devices }
  alerts { kind severity message }
}
"""


class GraphQLError(Exception):
    """The answer's `errors`: each has a message for people and extensions.code for programs."""

    def __init__(self, status: int, errors: list[dict[str, Any]]) -> None:
        self.status = status
        self.codes = [error.get("extensions", {}).get("code") for error in errors]
        super().__init__(
            "; ".join(f"{e.get('extensions', {}).get('code')}: {e['message']}" for e in errors)
        )


def graphql(
    client: httpx.Client, query: str, variables: dict[str, Any] | None = None
) -> dict[str, Any]:
    response = client.post("/graphql", json={"query": query, "variables": variables or {}})
    body = response.json()  # every answer, refusals included, is a JSON object
    if body.get("errors"):
        raise GraphQLError(response.status_code, body["errors"])
    response.raise_for_status()
    return body["data"]


def main() -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=API, headers=headers, timeout=30) as client:
        data = graphql(client, DASHBOARD)
    viewer = data["viewer"]
    print(
        f"Signed in to {viewer['district']['name']} ({viewer['district']['slug']}) "
        f"as {viewer['token']['name']!r}, may {', '.join(viewer['token']['permissions'])}"
    )
    license = data["license"]
    if license is None:
        # No license received yet: the rest of the dashboard still answers.
        unavailable = data["licenseUnavailable"]
        print(f"No license yet ({unavailable['reason']}): {unavailable['message']}")
    else:
        print(
            f"Licenses: {license['display']} ({license['level']}, {license['status']}), "
            f"expires {license['expiresAt']}"
        )
    print(f"Active students: {data['usage']['activeStudents']}")
    for alert in data["alerts"]:
        print(f"Alert {alert['kind']} ({alert['severity']}): {alert['message']}")


if __name__ == "__main__":
    main()
