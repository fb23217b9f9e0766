"""Follow the district's alerts over a websocket (graphql-transport-ws) with the `websockets`
library. Needs a VIEW_LICENSE token. Prints the alerts now, then again on every change.

    M1T1_API=http://127.0.0.1:8000 M1T1_TOKEN=m1t1_... python subscribe_alerts.py
"""

import asyncio
import json
import os

from websockets.asyncio.client import connect

API = os.environ.get("M1T1_API", "http://127.0.0.1:8000")
TOKEN = os.environ["M1T1_TOKEN"]
# https://host becomes wss://host, http://host ws://host.
URL = API.replace("http", "ws", 1) + "/graphql"

ALERTS_CHANGED = "subscription { alertsChanged { id kind severity message } }"


async def follow_alerts() -> None:
    async with connect(
        URL,
        subprotocols=["graphql-transport-ws"],
        additional_headers={"Authorization": f"Bearer {TOKEN}"},
    ) as websocket:
        await websocket.send(json.dumps({"type": "connection_init"}))
        ack = json.loads(await websocket.recv())
        if ack["type"] != "connection_ack":
            raise RuntimeError(f"not signed in: {ack}")
        await websocket.send(
            json.dumps({"id": "alerts", "type": "subscribe", "payload": {"query": ALERTS_CHANGED}})
        )
        async for raw in websocket:
            message = json.loads(raw)
            if message["type"] == "ping":
                await websocket.send(json.dumps({"type": "pong"}))
            elif message["type"] == "next":
                payload = message["payload"]
                if payload.get("errors"):
                    # e.g. UNAUTHENTICATED (token revoked) or RATE_LIMITED: the subscription ends.
                    print(f"error: {payload['errors']}", flush=True)
                    continue
                alerts = payload["data"]["alertsChanged"]  # the whole list, never a difference
                summary = ", ".join(f"{alert['kind']} ({alert['severity']})" for alert in alerts)
                print(f"alerts now: {summary or 'none'}", flush=True)
            elif message["type"] == "error":
                raise RuntimeError(message["payload"])
            elif message["type"] == "complete":
                return


if __name__ == "__main__":
    asyncio.run(follow_alerts())
