"""Stay within the token's budget: read extensions.cost, and on 429 wait Retry-After seconds.
Needs a VIEW_LICENSE token.

    M1T1_API=http://127.0.0.1:8000 M1T1_TOKEN=m1t1_... python rate_limited.py
"""

import os
import time
from typing import Any

import httpx

API = os.environ.get("M1T1_API", "http://127.0.0.1:8000")
TOKEN = os.environ["M1T1_TOKEN"]
REQUESTS = int(os.environ.get("REQUESTS", "20"))
MAX_ATTEMPTS = 5

DASHBOARD = "{ license { display level } usage { activeStudents } alerts { kind message } }"


def graphql(
    client: httpx.Client, query: str, variables: dict[str, Any] | None = None
) -> dict[str, Any]:
    """One operation, sent again after Retry-After while the token's budget cannot pay it."""
    for _attempt in range(MAX_ATTEMPTS):
        response = client.post("/graphql", json={"query": query, "variables": variables or {}})
        if response.status_code == 429:
            # RATE_LIMITED (or COSTLY_OPERATION_RUNNING): nothing ran. Retry-After is in seconds.
            wait = int(response.headers.get("Retry-After", "1"))
            print(f"429 {response.json()['errors'][0]['extensions']['code']}: waiting {wait} s")
            time.sleep(wait)
            continue
        body = response.json()
        if body.get("errors"):
            raise RuntimeError(body["errors"])
        response.raise_for_status()
        cost = body["extensions"]["cost"]
        print(
            f"cost {cost['requested']}, {cost['remaining']} of {cost['bucketSize']} points left "
            f"(+{cost['restoreRate']}/s)"
        )
        return body["data"]
    raise RuntimeError(f"still rate limited after {MAX_ATTEMPTS} attempts")


def main() -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=API, headers=headers, timeout=30) as client:
        for _ in range(REQUESTS):
            data = graphql(client, DASHBOARD)
    print(f"done: {data['usage']['activeStudents']} active students")


if __name__ == "__main__":
    main()
