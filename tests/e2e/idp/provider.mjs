// A real OpenID provider (oidc-provider from the npm registry) for custody's end-to-end tests.
//
//   node provider.mjs CONFIG.json
//
// CONFIG: {"port": P, "control_port": C, "keys": [private JWKs], "audience": {...}}
// Serves the provider on http://127.0.0.1:P (its issuer; custody allows plain http only to
// loopback) with two confidential clients using the client-credentials grant and resource
// indicators, whose access tokens are RFC 9068 JWTs (`typ: at+jwt`):
//   rs-client / rs-secret: signed RS256       es-client / es-secret: signed ES256
// Optionally (tests/e2e/test_sdk_mcp.py) MCP servers as resources, each token's audience its
// resource identifier (RFC 8707), and clients for them, signed ES256:
//   "mcp": {"resources": [URL, ...], "clients": {ID: {"secret": S, "scope": "what it may get"}}}
// A token request's scope is cut down to the client's `scope`, silently (no error).
// A token request carrying a `DPoP` proof (RFC 9449) gets an access token bound to its key.
// Resources: "https://orders.c.example" (audience config.audience.orders) and
// "https://agents.b.example" (audience config.audience.agents; these tokens carry `txn`, the
// origin of a delegation chain).
//
// A control server on 127.0.0.1:C (tests only):
//   POST /keys       {"keys": [...]}  the provider restarts in-process with these signing keys
//                                      (it signs with the first key of each alg; it publishes
//                                      all of them)
//   POST /jwks-mode  {"mode": "normal"|"malformed"|"oversized"|"down"}  what the JWKS URL
//                                      answers ("down": the whole provider answers 503)
//   GET  /stats                        {"discovery": n, "jwks": n}: requests served so far
import http from 'node:http';
import { readFileSync } from 'node:fs';
import Provider from 'oidc-provider';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const issuer = `http://127.0.0.1:${config.port}`;
const ORDERS = 'https://orders.c.example';
const AGENTS = 'https://agents.b.example';
const stats = { discovery: 0, jwks: 0 };
let mode = 'normal';
const mcp = { resources: [], clients: {}, ...config.mcp };

function build(keys) {
  const provider = new Provider(issuer, {
    jwks: { keys },
    clients: [
      { client_id: 'rs-client', client_secret: 'rs-secret', grant_types: ['client_credentials'],
        redirect_uris: [], response_types: [], token_endpoint_auth_method: 'client_secret_post',
        scope: 'orders:read orders:write' },
      { client_id: 'es-client', client_secret: 'es-secret', grant_types: ['client_credentials'],
        redirect_uris: [], response_types: [], token_endpoint_auth_method: 'client_secret_post',
        scope: 'orders:read orders:write' },
      ...Object.entries(mcp.clients).map(([id, c]) => ({
        client_id: id, client_secret: c.secret, grant_types: ['client_credentials'],
        redirect_uris: [], response_types: [], token_endpoint_auth_method: 'client_secret_post',
      })),
    ],
    scopes: ['orders:read', 'orders:write'],
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      // a token request with a DPoP proof gets a DPoP-bound access token (`cnf.jkt`)
      dPoP: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => ORDERS,
        useGrantedResource: () => true,
        getResourceServerInfo: (ctx, resource, client) => {
          if (mcp.resources.includes(resource) && mcp.clients[client.clientId]) {
            return {
              scope: mcp.clients[client.clientId].scope,
              audience: resource,
              accessTokenFormat: 'jwt',
              accessTokenTTL: 600,
              jwt: { sign: { alg: 'ES256' } },
            };
          }
          if (resource !== ORDERS && resource !== AGENTS) {
            throw new Error(`unknown resource ${resource}`);
          }
          return {
            scope: 'orders:read orders:write',
            audience: resource === ORDERS ? config.audience.orders : config.audience.agents,
            accessTokenFormat: 'jwt',
            accessTokenTTL: 600,
            jwt: { sign: { alg: client.clientId === 'es-client' ? 'ES256' : 'RS256' } },
          };
        },
      },
    },
    extraTokenClaims: (ctx, token) => (
      token.resourceServer?.audience === config.audience.agents ? { txn: 'txn-idp-1' } : undefined
    ),
  });
  provider.proxy = false;
  return provider;
}

let provider = build(config.keys);

const server = http.createServer((req, res) => {
  const path = new URL(req.url, issuer).pathname;
  if (path === '/.well-known/openid-configuration') stats.discovery += 1;
  if (path === '/jwks') stats.jwks += 1;
  if (mode === 'down') {
    res.writeHead(503, { 'content-type': 'text/plain' });
    res.end('down for the test');
    return;
  }
  if (path === '/jwks' && mode === 'malformed') {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end('{"keys":[{"kty":"RSA","kid":"x","n":"AQAB","e":"AQAB"}],"keys":[]}');
    return;
  }
  if (path === '/jwks' && mode === 'oversized') {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(`{"keys":[],"padding":"${'x'.repeat(2 * 1024 * 1024)}"}`);
    return;
  }
  provider.callback()(req, res);
});

const control = http.createServer((req, res) => {
  let body = '';
  req.on('data', (chunk) => { body += chunk; });
  req.on('end', () => {
    try {
      if (req.method === 'POST' && req.url === '/keys') {
        provider = build(JSON.parse(body).keys);
      } else if (req.method === 'POST' && req.url === '/jwks-mode') {
        mode = JSON.parse(body).mode;
      } else if (!(req.method === 'GET' && req.url === '/stats')) {
        res.writeHead(404);
        res.end();
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ mode, ...stats }));
    } catch (e) {
      res.writeHead(400, { 'content-type': 'text/plain' });
      res.end(String(e));
    }
  });
});

server.listen(config.port, '127.0.0.1', () => {
  control.listen(config.control_port, '127.0.0.1', () => {
    console.log(`provider ${issuer} ready`);
  });
});
process.on('SIGTERM', () => { server.close(); control.close(); process.exit(0); });
