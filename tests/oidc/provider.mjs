// A real OpenID Connect provider (the certified `oidc-provider` package) for DSSR's identity tests.
//
// It plays Keycloak's part in a JARVICE deployment: one realm whose token endpoint hands out
// RS256 JWT access tokens with the client credentials grant, at Keycloak's paths:
//   <base>/realms/<realm>/protocol/openid-connect/token   (the chart's JARVICE_KEYCLOAK_TOKEN_URL)
//   <base>/realms/<realm>/protocol/openid-connect/certs   (the realm's JWKS)
//
// Configuration is one JSON file (argv[2]):
//   {"port": 18080, "realm": "jarvice", "state_dir": "/tmp/x", "token_ttl": 3600,
//    "clients": [{"client_id": "...", "client_secret": "...", "claims": {"sun": "kirby", ...}}]}
// The signing key is made once and kept in state_dir (so a restarted provider signs with the same
// key, as a restarted Keycloak does); its public half is written to <state_dir>/jwks.json for
// Slurm's AuthAltParameters=jwks=...
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';

import * as jose from 'jose';
import Provider from 'oidc-provider';

const config = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const realmPath = `/realms/${config.realm}`;
const issuer = `http://127.0.0.1:${config.port}${realmPath}`;
const resource = 'urn:dssr:slurm';

async function signingKey() {
  const file = path.join(config.state_dir, 'signing-key.json');
  if (fs.existsSync(file)) return JSON.parse(fs.readFileSync(file, 'utf8'));
  const { privateKey } = await jose.generateKeyPair('RS256', { extractable: true });
  const jwk = { ...(await jose.exportJWK(privateKey)), alg: 'RS256', use: 'sig' };
  jwk.kid = await jose.calculateJwkThumbprint(jwk);
  fs.writeFileSync(file, JSON.stringify(jwk), { mode: 0o600 });
  return jwk;
}

function publicJwks(jwk) {
  const { kid, kty, n, e, alg, use } = jwk;
  return { keys: [{ kid, kty, n, e, alg, use }] };
}

const key = await signingKey();
fs.writeFileSync(path.join(config.state_dir, 'jwks.json'), JSON.stringify(publicJwks(key)));
const claimsByClient = Object.fromEntries(config.clients.map((c) => [c.client_id, c.claims || {}]));

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
      getResourceServerInfo: () => ({
        scope: 'openid',
        audience: 'slurm',
        accessTokenTTL: config.token_ttl || 3600,
        accessTokenFormat: 'jwt',
        jwt: { sign: { alg: 'RS256' } },
      }),
    },
  },
  extraTokenClaims: (ctx, token) => claimsByClient[token.clientId],
});
provider.proxy = false;

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
  console.log(`oidc provider ${issuer} listening`);
});
for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => server.close(() => process.exit(0)));
