"""Page through every active student, then fetch one again by its global id.
Needs a MANAGE_SETTINGS token.

    M1T1_API=http://127.0.0.1:8000 M1T1_TOKEN=m1t1_... python active_students.py
"""

import os
from collections.abc import Iterator
from typing import Any

import httpx

API = os.environ.get("M1T1_API", "http://127.0.0.1:8000")
TOKEN = os.environ["M1T1_TOKEN"]

PAGE = """
query ActiveStudentsPage($first: Int!, $after: String) {
  activeStudents(first: $first, after: $after) {
    pageInfo { hasNextPage endCursor }
    nodes { id sourceId givenName familyName grade school }
  }
}
"""
STUDENT = """
query Student($id: ID!) {
  node(id: $id) { id ... on ActiveStudent { sourceId status whyCounted } }
}
"""


def graphql(client: httpx.Client, query: str, variables: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/graphql", json={"query": query, "variables": variables})
    body = response.json()
    if body.get("errors"):
        raise RuntimeError(body["errors"])
    response.raise_for_status()
    return body["data"]


def active_students(client: httpx.Client, page_size: int = 100) -> Iterator[dict[str, Any]]:
    """Every active student, page by page: `after` is the previous page's endCursor."""
    after = None
    while True:
        page = graphql(client, PAGE, {"first": page_size, "after": after})["activeStudents"]
        yield from page["nodes"]
        if not page["pageInfo"]["hasNextPage"]:
            return
        after = page["pageInfo"]["endCursor"]


def main() -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=API, headers=headers, timeout=30) as client:
        students = list(active_students(client))
        print(f"{len(students)} active students")
        if students:
            # An id is opaque and global: keep it, and refetch the object later with node(id:).
            first = graphql(client, STUDENT, {"id": students[0]["id"]})["node"]
            print(f"Refetched {first['sourceId']} ({first['status']}): {first['whyCounted']}")


if __name__ == "__main__":
    main()
