#!/usr/bin/env python3
"""A webhookd receiver with the Python standard library only (3.9+).

    WEBHOOK_SECRET=whsec_... python3 examples/python/receiver.py --port 9000

It verifies both signatures of every delivery, answers 401 with the reason
when either fails, and 200 otherwise. During a secret rotation set
WEBHOOK_SECRET to the new and the old secret, comma-separated.
"""
import argparse
import base64
import hashlib
import hmac
import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TOLERANCE = 5 * 60  # seconds a webhook-timestamp may be from now


def verify_standard(secret, headers, body):
    """Standard Webhooks: HMAC-SHA256 of "id.timestamp.body", keyed with the
    base64-decoded part of the secret after "whsec_"."""
    msg_id = headers.get("webhook-id")
    timestamp = headers.get("webhook-timestamp")
    signatures = headers.get("webhook-signature")
    if not (msg_id and timestamp and signatures):
        return "missing header"
    try:
        sent = int(timestamp)
    except ValueError:
        return "timestamp is not unix seconds"
    if abs(time.time() - sent) > TOLERANCE:
        return "timestamp outside the tolerance"
    key = base64.b64decode(secret.removeprefix("whsec_"))
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256)
    expected = base64.b64encode(mac.digest()).decode()
    for entry in signatures.split():  # "v1,<base64>", one per live secret
        version, _, sig = entry.partition(",")
        if version == "v1" and hmac.compare_digest(sig, expected):
            return None
    return "signature does not match"


def verify_x_webhook(secret, headers, body):
    """X-Webhook-Signature: hex HMAC-SHA256 of the body, keyed with the whole
    secret string; comma-separated, one per live secret."""
    signatures = headers.get("X-Webhook-Signature")
    if not signatures:
        return "missing header"
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    for sig in signatures.split(","):
        if hmac.compare_digest(sig.strip().lower(), expected):
            return None
    return "signature does not match"


def verify(secrets, headers, body):
    """None when any secret verifies both signatures, else the reason."""
    reason = "no secret"
    for secret in secrets:
        reason = verify_standard(secret, headers, body) or verify_x_webhook(secret, headers, body)
        if reason is None:
            return None
    return reason


class Handler(BaseHTTPRequestHandler):
    secrets = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        reason = verify(self.secrets, self.headers, body)
        if reason:
            self.send_response(401)
            self.end_headers()
            self.wfile.write(reason.encode() + b"\n")
            print(f"rejected delivery={self.headers.get('X-Webhook-Delivery')}: {reason}", flush=True)
            return
        event = json.loads(body)
        # Deliveries are at least once: dedupe on X-Webhook-Delivery.
        print(f"verified {event['event']} id={event['id']} delivery={self.headers.get('X-Webhook-Delivery')} "
              f"attempt={self.headers.get('X-Webhook-Attempt')} data={json.dumps(event['data'])}", flush=True)
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass  # one line per delivery above is enough


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    args = parser.parse_args()
    secrets = [s.strip() for s in os.environ.get("WEBHOOK_SECRET", "").split(",") if s.strip()]
    if not secrets:
        sys.exit("receiver.py: set WEBHOOK_SECRET to the subscription's secret (whsec_...)")
    Handler.secrets = secrets
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    print(f"listening on http://{args.host}:{args.port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
