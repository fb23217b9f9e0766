"""A webhook receiver: verifies X-Manage1to1-Signature over the raw body, refuses a bad or old
one with 401, and handles each Idempotency-Key once. Python's standard library only.

    M1T1_WEBHOOK_SECRET=the-shared-secret PORT=8080 python webhook_receiver.py
"""

import hashlib
import hmac
import json
import os
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SECRET = os.environ["M1T1_WEBHOOK_SECRET"]
PORT = int(os.environ.get("PORT", "8080"))
TOLERANCE_SECONDS = 300
seen_keys: set[str] = set()  # keep these in your database in production


def verify(secret: str, header: str, body: bytes) -> bool:
    """header: the X-Manage1to1-Signature value, "t=<Unix seconds>,v1=<hex HMAC-SHA256>"."""
    try:
        fields = dict(part.split("=", 1) for part in header.split(","))
        timestamp, given = int(fields["t"]), fields["v1"]
    except (KeyError, ValueError):
        return False
    if abs(time.time() - timestamp) > TOLERANCE_SECONDS:
        return False  # a replayed request
    expected = hmac.new(
        secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256
    ).hexdigest()
    return hmac.compare_digest(expected, given)


class Receiver(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if not verify(SECRET, self.headers.get("X-Manage1to1-Signature", ""), body):
            self.send_response(401)
            self.end_headers()
            print("refused: bad signature", flush=True)
            return
        key = self.headers["Idempotency-Key"]
        if key not in seen_keys:  # a repeat delivery is acknowledged and otherwise ignored
            seen_keys.add(key)
            event = json.loads(body)
            alert = event["alert"]
            print(
                f"verified {event['event']} {alert['kind']} for {event['district']['slug']}: "
                f"{alert['message']}",
                flush=True,
            )
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass  # quiet: print only the events


if __name__ == "__main__":
    server = ThreadingHTTPServer(("127.0.0.1", PORT), Receiver)
    print(f"listening on http://127.0.0.1:{server.server_port}/", flush=True)
    server.serve_forever()
