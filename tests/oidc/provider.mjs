// A real OpenID Connect provider (the certified `oidc-provider` package) for DSSR's identity tests.
//
// It plays Keycloak's part in a JARVICE deployment: one realm whose token endpoint hands out
// RS256 JWT access tokens with the client credentials grant, at Keycloak's paths:
//   <base>/realms/<realm>/protocol/openid-connect/token   (the chart's JARVICE_KEYCLOAK_TOKEN_URL)
//   <base>/realms/<realm>/protocol/openid-connect/certs   (the realm's JWKS)
//
// Configuration is one JSON file (argv[2]):
//   {"port": 18080, "realm": "jarvice", "state_dir": "/tmp/x", "token_ttl": 3600,
//    "signing_key": "/var/lib/dssr-test-cluster/oidc_rs256.pem",
//    "clients": [{"client_id": "...", "client_secret": "...", "token_ttl": 15,
//                 "claims": {"sun": "kirby", ...}}]}
// Each client is confidential (client_secret_post or _basic) and gets the client credentials
// grant; its access tokens carry its `claims` and live its `token_ttl` (else the top-level one).
// The signing key is `signing_key` (a PKCS#8 PEM: the test cluster's, whose public half Slurm
// reads through AuthAltParameters=jwks=...), else one made once and kept in state_dir (so a
// restarted provider signs with the same key, as a restarted Keycloak does). Its kid is the key's
// RFC 7638 thumbprint; the public JWKS is also written to <state_dir>/jwks.json.
// Tokens say typ JWT, as Keycloak's do. Every token issued is logged as `issued a token to <client_id>` (never the token).
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';

import * as jose from 'jose';
import Provider from 'oidc-provider';

const config = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const realmPath = `/realms/${config.realm}`;
const issuer = `http://127.0.0.1:${config.port}${realmPath}`;
const resource = 'urn:dssr:slurm';

async function withKid(privateJwk) {
  const jwk = { ...privateJwk, alg: 'RS256', use: 'sig' };
  const { kty, n, e } = jwk;
  jwk.kid = await jose.calculateJwkThumbprint({ kty, n, e });
  return jwk;
}

async function signingKey() {
  if (config.signing_key) {
    const pem = fs.readFileSync(config.signing_key, 'utf8');
    return withKid(await jose.exportJWK(await jose.importPKCS8(pem, 'RS256', { extractable: true })));
  }
  const file = path.join(config.state_dir, 'signing-key.json');
  if (fs.existsSync(file)) return JSON.parse(fs.readFileSync(file, 'utf8'));
  const { privateKey } = await jose.generateKeyPair('RS256', { extractable: true });
  const jwk = await withKid(await jose.exportJWK(privateKey));
  fs.writeFileSync(file, JSON.stringify(jwk), { mode: 0o600 });
  return jwk;
}

function publicJwks(jwk) {
  const { kid, kty, n, e, alg, use } = jwk;
  return { keys: [{ kid, kty, n, e, alg, use }] };
}

const key = await signingKey();
fs.writeFileSync(path.join(config.state_dir, 'jwks.json'), JSON.stringify(publicJwks(key)));
const clientsById = Object.fromEntries(config.clients.map((c) => [c.client_id, c]));
const ttlOf = (clientId) => clientsById[clientId].token_ttl || config.token_ttl || 3600;

const provider = new Provider(issuer, {
  clients: config.clients.map((c) => ({
    client_id: c.client_id,
    client_secret: c.client_secret,
    grant_types: ['client_credentials'],
    redirect_uris: [],
    response_types: [],
    token_endpoint_auth_method: 'client_secret_post',
  })),
  clientAuthMethods: ['client_secret_post', 'client_secret_basic'],
  jwks: { keys: [key] },
  routes: { token: '/protocol/openid-connect/token', jwks: '/protocol/openid-connect/certs' },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => resource,
      useGrantedResource: () => true,
      getResourceServerInfo: (ctx, indicator, client) => ({
        scope: 'openid',
        audience: 'slurm',
        accessTokenTTL: ttlOf(client.clientId),
        accessTokenFormat: 'jwt',
        jwt: { sign: { alg: 'RS256' } },
      }),
    },
  },
  ttl: { ClientCredentials: (ctx, token, client) => ttlOf(client.clientId) },
  extraTokenClaims: (ctx, token) => clientsById[token.clientId].claims || {},
  // Keycloak's access tokens say typ JWT, not RFC 9068's at+jwt; Slurm 22.05 (its libjwt)
  // refuses any typ but JWT ("initial jwt_decode failure: Invalid argument").
  formats: { customizers: { jwt: (ctx, token, jwt) => { jwt.header = { typ: 'JWT' }; } } },
});
provider.proxy = false;
provider.on('grant.success', (ctx) => console.log(`issued a token to ${ctx.oidc.client.clientId}`));
provider.on('grant.error', (ctx, error) => console.log(`refused a token: ${error.message}`));

const callback = provider.callback();
const server = http.createServer((req, res) => {
  if (req.url === realmPath || req.url.startsWith(`${realmPath}/`)) {
    req.originalUrl = req.url; // how oidc-provider learns where it is mounted
    req.url = req.url.slice(realmPath.length) || '/';
    return callback(req, res);
  }
  res.writeHead(404, { 'content-type': 'application/json' });
  return res.end('{"error":"not_found"}');
});
server.listen(config.port, '127.0.0.1', () => {
  console.log(`oidc provider ${issuer} listening, signing key ${key.kid}`);
});
// Kept-alive connections would hold close() open: a stopped provider must be gone at once.
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => {
    server.closeAllConnections();
    server.close(() => process.exit(0));
  });
}
