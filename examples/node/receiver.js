#!/usr/bin/env node
// A webhookd receiver with Node.js's own modules only (http, crypto).
//
//   WEBHOOK_SECRET=whsec_... node examples/node/receiver.js --port 9000
//
// It verifies both signatures of every delivery, answers 401 with the reason
// when either fails, and 200 otherwise. During a secret rotation set
// WEBHOOK_SECRET to the new and the old secret, comma-separated.
'use strict';
const crypto = require('crypto');
const http = require('http');

const TOLERANCE = 5 * 60; // seconds a webhook-timestamp may be from now

function equal(a, b) {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && crypto.timingSafeEqual(x, y);
}

// Standard Webhooks: HMAC-SHA256 of "id.timestamp.body", keyed with the
// base64-decoded part of the secret after "whsec_".
function verifyStandard(secret, headers, body) {
  const id = headers['webhook-id'];
  const timestamp = headers['webhook-timestamp'];
  const signatures = headers['webhook-signature'];
  if (!id || !timestamp || !signatures) return 'missing header';
  if (!/^\d+$/.test(timestamp)) return 'timestamp is not unix seconds';
  if (Math.abs(Date.now() / 1000 - Number(timestamp)) > TOLERANCE) return 'timestamp outside the tolerance';
  const key = Buffer.from(secret.replace(/^whsec_/, ''), 'base64');
  const expected = crypto.createHmac('sha256', key)
    .update(`${id}.${timestamp}.`).update(body).digest('base64');
  for (const entry of signatures.split(' ')) { // "v1,<base64>", one per live secret
    const [version, sig] = entry.split(',');
    if (version === 'v1' && sig && equal(sig, expected)) return null;
  }
  return 'signature does not match';
}

// X-Webhook-Signature: hex HMAC-SHA256 of the body, keyed with the whole
// secret string; comma-separated, one per live secret.
function verifyXWebhook(secret, headers, body) {
  const signatures = headers['x-webhook-signature'];
  if (!signatures) return 'missing header';
  const expected = crypto.createHmac('sha256', secret).update(body).digest('hex');
  for (const sig of signatures.split(',')) {
    if (equal(sig.trim().toLowerCase(), expected)) return null;
  }
  return 'signature does not match';
}

// null when any secret verifies both signatures, else the reason.
function verify(secrets, headers, body) {
  let reason = 'no secret';
  for (const secret of secrets) {
    reason = verifyStandard(secret, headers, body) || verifyXWebhook(secret, headers, body);
    if (reason === null) return null;
  }
  return reason;
}

function main() {
  const args = process.argv.slice(2);
  const arg = (name, def) => (args.includes(name) ? args[args.indexOf(name) + 1] : def);
  const host = arg('--host', '127.0.0.1');
  const port = Number(arg('--port', '9000'));
  const secrets = (process.env.WEBHOOK_SECRET || '').split(',').map((s) => s.trim()).filter(Boolean);
  if (secrets.length === 0) {
    console.error("receiver.js: set WEBHOOK_SECRET to the subscription's secret (whsec_...)");
    process.exit(1);
  }
  http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks); // verify the raw bytes, never re-encoded JSON
      const delivery = req.headers['x-webhook-delivery'];
      const reason = verify(secrets, req.headers, body);
      if (reason) {
        console.log(`rejected delivery=${delivery}: ${reason}`);
        res.writeHead(401).end(reason + '\n');
        return;
      }
      const event = JSON.parse(body);
      // Deliveries are at least once: dedupe on X-Webhook-Delivery.
      console.log(`verified ${event.event} id=${event.id} delivery=${delivery} ` +
        `attempt=${req.headers['x-webhook-attempt']} data=${JSON.stringify(event.data)}`);
      res.writeHead(200).end();
    });
  }).listen(port, host, () => console.log(`listening on http://${host}:${port}`));
}

main();
