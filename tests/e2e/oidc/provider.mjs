// A real OpenID provider (oidc-provider from the npm registry) with a test-control surface, for
// custody's end-to-end tests of remote key sources (DESIGN.md "Remote key sources").
//
//   node provider.mjs --port P --control-port C --keys KEYS.json [--resources RESOURCES.json]
//
// Each option may come from the environment instead: OIDC_PORT, OIDC_CONTROL_PORT, OIDC_KEYS,
// OIDC_RESOURCES. Port 0 picks a free port (the readiness line says which).
//
// KEYS.json: {"keys": [private JWKs]} (or a bare array). oidc-provider signs with the first key
// that fits an algorithm (keys carrying both `alg` and `use` rank before keys without) and
// publishes every public key at its jwks_uri.
//
// The provider: plain HTTP on 127.0.0.1, issuer http://127.0.0.1:P (custody allows http only to
// loopback), client-credentials grant with resource indicators; every resource's access tokens
// are RFC 9068 JWTs (header `typ: at+jwt` and `kid`; claims iss, sub = client_id, aud, exp, iat,
// jti, client_id, scope). The signing algorithm is chosen per client (getResourceServerInfo gets
// the client and answers `jwt.sign.alg`):
//   rs-client / rs-secret   client_secret_basic   RS256
//   es-client / es-secret   client_secret_post    ES256
//   ps-client / ps-secret   client_secret_basic   PS256 (needs an RSA key with alg PS256 or none)
// Scopes: orders:read orders:write. Resources: RESOURCES.json maps a resource indicator to
// {"audience"?: string (default: the indicator), "scope"?: string, "ttl"?: seconds,
//  "claims"?: {extra claims}}; by default only "https://orders.c.example" (scope
// "orders:read orders:write", ttl 600). A request without `resource` gets the first one.
//
// A requested scope the provider does not know is dropped from the grant, not refused. oidc-provider
// 9 prints "Unsupported runtime" on Node.js 20 (it asks for 22 LTS) and works there all the same.
//
// Readiness: one stdout line `OIDC-PROVIDER-READY {"issuer":..,"port":..,"control_port":..}`.
// SIGTERM or SIGINT: both servers close and the process exits 0.
//
// Control server, 127.0.0.1:C only, JSON in and out (tests only):
//   GET  /health                   {"ok": true, "issuer", "kids", "jwks_mode", "discovery_mode"}
//   POST /keys {"keys": [...]}     a new Provider instance on the new keys replaces the old one
//                                  in the same process (the HTTP server dispatches to whichever is
//                                  current); a key set oidc-provider refuses answers 400 and the
//                                  old instance stays.  Answers {"kids": [...]}.
//   POST /jwks-mode {"mode": M, "delay_ms"?: N}    what the jwks_uri answers:
//       normal             the provider's own answer
//       malformed          truncated JSON
//       duplicate-members  the current set with a second "keys" member (invalid for a strict
//                          reader, accepted by most JSON parsers)
//       oversized          the current set plus a padding member, 2 MiB + in all, Content-Length
//       oversized-chunked  the same, chunked, without Content-Length
//       not-json-object    a JSON array of the current keys
//       slow               the provider's own answer after delay_ms (default 8000)
//       trickle            200 and headers at once, then the current set a few bytes at a time
//                          over delay_ms (default 8000)
//       error              503
//   POST /discovery-mode {"mode": M}              what discovery answers:
//       normal             the provider's document, which oidc-provider serves at both
//                          /.well-known/openid-configuration and (RFC 8414)
//                          /.well-known/oauth-authorization-server
//       wrong-issuer       that document with "issuer" set to ISSUER/other, at both
//       rfc8414-only       openid-configuration is 404, oauth-authorization-server as normal
//       error              503 for both
//   GET  /stats                    {"discovery", "oauth_metadata", "jwks", "token"}: requests
//                                  received so far (every mode counts)
//   POST /stats/reset              zeroes them
import http from 'node:http';
import { readFileSync } from 'node:fs';
import Provider, { errors } from 'oidc-provider';

const DISCOVERY = '/.well-known/openid-configuration';
const OAUTH_METADATA = '/.well-known/oauth-authorization-server';
const JWKS = '/jwks';
const TOKEN = '/token';
const INTERNAL = 'x-custody-harness-internal';
const JWKS_TYPE = 'application/jwk-set+json; charset=utf-8'; // what oidc-provider answers

const CLIENTS = [
  { id: 'rs-client', secret: 'rs-secret', auth: 'client_secret_basic', alg: 'RS256' },
  { id: 'es-client', secret: 'es-secret', auth: 'client_secret_post', alg: 'ES256' },
  { id: 'ps-client', secret: 'ps-secret', auth: 'client_secret_basic', alg: 'PS256' },
];
const SCOPES = ['orders:read', 'orders:write'];
const DEFAULT_RESOURCES = {
  'https://orders.c.example': { scope: SCOPES.join(' '), ttl: 600 },
};
const JWKS_MODES = new Set(['normal', 'malformed', 'duplicate-members', 'oversized',
  'oversized-chunked', 'not-json-object', 'slow', 'trickle', 'error']);
const DISCOVERY_MODES = new Set(['normal', 'wrong-issuer', 'rfc8414-only', 'error']);

function option(name, env) {
  const i = process.argv.indexOf(`--${name}`);
  if (i !== -1 && i + 1 < process.argv.length) return process.argv[i + 1];
  return process.env[env];
}

function readKeys(path) {
  const parsed = JSON.parse(readFileSync(path, 'utf8'));
  return Array.isArray(parsed) ? parsed : parsed.keys;
}

const port = Number(option('port', 'OIDC_PORT') ?? 0);
const controlPort = Number(option('control-port', 'OIDC_CONTROL_PORT') ?? 0);
const keysPath = option('keys', 'OIDC_KEYS');
const resourcesPath = option('resources', 'OIDC_RESOURCES');
if (!keysPath) {
  console.error('usage: node provider.mjs --port P --control-port C --keys KEYS.json [--resources R.json]');
  process.exit(2);
}
const resources = resourcesPath ? JSON.parse(readFileSync(resourcesPath, 'utf8')) : DEFAULT_RESOURCES;
const resourceIds = Object.keys(resources);

let issuer; // known once the provider port is bound
let current; // { provider, handler, kids }
let jwksMode = { mode: 'normal', delayMs: 8000 };
let discoveryMode = 'normal';
const stats = { discovery: 0, oauth_metadata: 0, jwks: 0, token: 0 };

function build(keys) {
  const provider = new Provider(issuer, {
    jwks: { keys },
    clients: CLIENTS.map((c) => ({
      client_id: c.id,
      client_secret: c.secret,
      token_endpoint_auth_method: c.auth,
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      scope: SCOPES.join(' '),
    })),
    scopes: SCOPES,
    routes: { jwks: JWKS, token: TOKEN },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => resourceIds[0],
        useGrantedResource: () => true,
        getResourceServerInfo: (ctx, resource, client) => {
          const r = resources[resource];
          if (!r) throw new errors.InvalidTarget(`unknown resource ${resource}`);
          const alg = CLIENTS.find((c) => c.id === client.clientId)?.alg ?? 'RS256';
          return {
            scope: r.scope ?? SCOPES.join(' '),
            ...(r.audience ? { audience: r.audience } : {}),
            accessTokenFormat: 'jwt',
            accessTokenTTL: r.ttl ?? 600,
            jwt: { sign: { alg } },
          };
        },
      },
    },
    ttl: { ClientCredentials: (ctx, token) => token.resourceServer?.accessTokenTTL ?? 600 },
    extraTokenClaims: (ctx, token) => {
      const indicator = token.resourceServer?.identifier();
      return indicator ? resources[indicator]?.claims : undefined;
    },
  });
  provider.proxy = false;
  return { provider, handler: provider.callback(), kids: keys.map((k) => k.kid) };
}

// What the current provider itself answers at PATH (a loopback request that skips the counters
// and the modes).
async function own(path) {
  const r = await fetch(`${issuer}${path}`, { headers: { [INTERNAL]: '1' } });
  if (r.status !== 200) throw new Error(`${path}: ${r.status}`);
  return r.json();
}

function send(res, status, body, type = 'application/json; charset=utf-8') {
  const data = typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(data) });
  res.end(data);
}

function oversizedBody(jwks) {
  const head = JSON.stringify(jwks).slice(0, -1); // without the closing brace
  return `${head},"x-padding":"${'A'.repeat(2 * 1024 * 1024 + 4096)}"}`;
}

async function jwksResponse(req, res, handler) {
  const { mode, delayMs } = jwksMode;
  switch (mode) {
    case 'normal':
      return handler(req, res);
    case 'error':
      return send(res, 503, { error: 'temporarily_unavailable' });
    case 'slow': {
      const timer = setTimeout(() => {
        handler(req, res).catch(() => res.destroy());
      }, delayMs);
      res.on('close', () => clearTimeout(timer));
      return undefined;
    }
    default:
  }
  const jwks = await own(JWKS);
  switch (mode) {
    case 'malformed': {
      const text = JSON.stringify(jwks);
      return send(res, 200, text.slice(0, Math.floor(text.length / 2)), JWKS_TYPE);
    }
    case 'duplicate-members':
      return send(res, 200, `${JSON.stringify(jwks).slice(0, -1)},"keys":[]}`, JWKS_TYPE);
    case 'not-json-object':
      return send(res, 200, JSON.stringify(jwks.keys), JWKS_TYPE);
    case 'oversized':
      return send(res, 200, oversizedBody(jwks), JWKS_TYPE);
    case 'oversized-chunked': {
      const body = Buffer.from(oversizedBody(jwks));
      res.writeHead(200, { 'content-type': JWKS_TYPE }); // chunked: no length
      for (let i = 0; i < body.length; i += 64 * 1024) res.write(body.subarray(i, i + 64 * 1024));
      return res.end();
    }
    case 'trickle': {
      const body = Buffer.from(JSON.stringify(jwks));
      const steps = 40;
      const size = Math.ceil(body.length / steps);
      res.writeHead(200, { 'content-type': JWKS_TYPE, 'content-length': body.length });
      res.flushHeaders();
      let i = 0;
      const timer = setInterval(() => {
        res.write(body.subarray(i * size, (i + 1) * size));
        i += 1;
        if (i * size >= body.length) {
          clearInterval(timer);
          res.end();
        }
      }, delayMs / steps);
      res.on('close', () => clearInterval(timer));
      return undefined;
    }
    default:
      throw new Error(`unknown jwks mode ${mode}`);
  }
}

async function discoveryResponse(req, res, path, handler) {
  if (discoveryMode === 'error') return send(res, 503, { error: 'temporarily_unavailable' });
  if (discoveryMode === 'normal') return handler(req, res);
  if (discoveryMode === 'wrong-issuer') {
    return send(res, 200, { ...(await own(path)), issuer: `${issuer}/other` });
  }
  // rfc8414-only
  if (path === DISCOVERY) return send(res, 404, { error: 'not_found' });
  return handler(req, res);
}

const server = http.createServer((req, res) => {
  const { handler } = current; // the instance current when the request arrived serves it
  if (req.headers[INTERNAL]) return handler(req, res);
  const path = new URL(req.url, 'http://x').pathname;
  let work;
  if (path === DISCOVERY || path === OAUTH_METADATA) {
    stats[path === DISCOVERY ? 'discovery' : 'oauth_metadata'] += 1;
    work = discoveryResponse(req, res, path, handler);
  } else if (path === JWKS) {
    stats.jwks += 1;
    work = jwksResponse(req, res, handler);
  } else {
    if (path === TOKEN) stats.token += 1;
    work = handler(req, res);
  }
  Promise.resolve(work).catch((e) => {
    console.error(`provider: ${req.method} ${path}: ${e.stack ?? e}`);
    if (!res.headersSent) send(res, 500, { error: 'server_error' });
    else res.destroy();
  });
  return undefined;
});

function health() {
  return { ok: true, issuer, kids: current.kids, jwks_mode: jwksMode.mode, discovery_mode: discoveryMode };
}

const control = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const route = `${req.method} ${new URL(req.url, 'http://x').pathname}`;
    let body;
    try {
      body = chunks.length ? JSON.parse(Buffer.concat(chunks).toString('utf8')) : {};
    } catch (e) {
      return send(res, 400, { error: `body: ${e.message}` });
    }
    try {
      switch (route) {
        case 'GET /health':
          return send(res, 200, health());
        case 'GET /stats':
          return send(res, 200, stats);
        case 'POST /stats/reset':
          for (const k of Object.keys(stats)) stats[k] = 0;
          return send(res, 200, stats);
        case 'POST /keys':
          if (!Array.isArray(body.keys)) return send(res, 400, { error: 'keys: an array of JWKs' });
          current = build(body.keys); // throws (400) on a set oidc-provider refuses
          return send(res, 200, { kids: current.kids });
        case 'POST /jwks-mode':
          if (!JWKS_MODES.has(body.mode)) return send(res, 400, { error: `mode: one of ${[...JWKS_MODES]}` });
          jwksMode = { mode: body.mode, delayMs: Number(body.delay_ms ?? 8000) };
          return send(res, 200, health());
        case 'POST /discovery-mode':
          if (!DISCOVERY_MODES.has(body.mode)) {
            return send(res, 400, { error: `mode: one of ${[...DISCOVERY_MODES]}` });
          }
          discoveryMode = body.mode;
          return send(res, 200, health());
        default:
          return send(res, 404, { error: `no ${route}` });
      }
    } catch (e) {
      return send(res, 400, { error: String(e.message ?? e) });
    }
  });
});

function listen(srv, p) {
  return new Promise((resolve, reject) => {
    srv.once('error', reject);
    srv.listen(p, '127.0.0.1', () => resolve(srv.address().port));
  });
}

const boundPort = await listen(server, port);
issuer = `http://127.0.0.1:${boundPort}`;
current = build(readKeys(keysPath));
const boundControl = await listen(control, controlPort);
console.log(`OIDC-PROVIDER-READY ${JSON.stringify({ issuer, port: boundPort, control_port: boundControl })}`);

function shutdown() {
  for (const srv of [server, control]) {
    srv.close();
    srv.closeAllConnections();
  }
  process.exit(0);
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
