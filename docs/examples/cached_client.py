"""Poll cheaply: persisted queries (hash first, the document only when the server asks for it)
over GET, with If-None-Match, reusing the last answer on 304. Needs a VIEW_LICENSE token.

    M1T1_API=http://127.0.0.1:8000 M1T1_TOKEN=m1t1_... python cached_client.py
"""

import hashlib
import json
import os
from typing import Any

import httpx

API = os.environ.get("M1T1_API", "http://127.0.0.1:8000")
TOKEN = os.environ["M1T1_TOKEN"]

LICENSE = "query License { license { display level } alerts { kind message } }"


class CachingClient:
    def __init__(self, client: httpx.Client) -> None:
        self.client = client
        self.answers: dict[tuple[str, str], tuple[str, dict[str, Any]]] = {}  # -> (ETag, body)

    def query(self, document: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        sha256 = hashlib.sha256(document.encode()).hexdigest()
        params = {
            "extensions": json.dumps({"persistedQuery": {"version": 1, "sha256Hash": sha256}}),
            "variables": json.dumps(variables or {}),
        }
        key = (sha256, params["variables"])
        cached = self.answers.get(key)
        headers = {"If-None-Match": cached[0]} if cached else {}
        response = self.client.get("/graphql", params=params, headers=headers)
        if response.status_code == 200 and codes(response.json()) == ["PERSISTED_QUERY_NOT_FOUND"]:
            print("server did not know the hash: sending the document once")
            response = self.client.get(
                "/graphql", params={**params, "query": document}, headers=headers
            )
        if response.status_code == 304 and cached:
            print("304 Not Modified: reusing the last answer")
            return cached[1]["data"]
        body = response.json()
        if body.get("errors"):
            raise RuntimeError(body["errors"])
        response.raise_for_status()
        if "etag" in response.headers:
            self.answers[key] = (response.headers["etag"], body)
        else:
            self.answers.pop(key, None)  # an answer without a tag: forget the old one
        print(f"200 with ETag {response.headers.get('etag')}")
        return body["data"]


def codes(body: dict[str, Any]) -> list[str]:
    return [error.get("extensions", {}).get("code") for error in body.get("errors", [])]


def main() -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=API, headers=headers, timeout=30) as http:
        client = CachingClient(http)
        for _ in range(2):
            data = client.query(LICENSE)
            print(
                f"license {data['license']['display'] if data['license'] else 'not received yet'}"
            )


if __name__ == "__main__":
    main()
