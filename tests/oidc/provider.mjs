// A real, independent OpenID provider for the tests: panva's certified oidc-provider (npm),
// configured like Reapit Connect as far as an OpenID client can tell (see README.md here).
//
//   node tests/oidc/provider.mjs [--port N] [--access-ttl SECONDS] [--issuer-path /PATH]
//                                [--no-rotate] [--id-token-claims] [--redirect-uri URI ...]
//
// Listens on 127.0.0.1 (port 0 = a free port), prints exactly one JSON line to stdout once it
// is listening, {"issuer": "http://127.0.0.1:PORT[/PATH]", "port": PORT}, then serves until
// SIGTERM/SIGINT, which ends it with exit code 0. Everything else (oidc-provider's notices,
// server errors) goes to stderr.
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import * as http from 'node:http';
import { parseArgs } from 'node:util';

import Provider from 'oidc-provider';

const { values: opts } = parseArgs({
  options: {
    port: { type: 'string', default: '0' },
    'access-ttl': { type: 'string', default: '3600' },
    'issuer-path': { type: 'string', default: '' },
    'no-rotate': { type: 'boolean', default: false },
    'id-token-claims': { type: 'boolean', default: false },
    'redirect-uri': { type: 'string', multiple: true },
  },
  strict: true,
});

function die(message) {
  process.stderr.write(`provider.mjs: ${message}\n`);
  process.exit(2);
}

const port = Number(opts.port);
if (!Number.isInteger(port) || port < 0 || port > 65535) die(`--port: not a port: ${opts.port}`);
const accessTtl = Number(opts['access-ttl']);
if (!Number.isInteger(accessTtl) || accessTtl < 1) die(`--access-ttl: not a positive integer: ${opts['access-ttl']}`);
let issuerPath = opts['issuer-path'];
if (issuerPath && (!issuerPath.startsWith('/') || /[?#\s]/u.test(issuerPath))) {
  die(`--issuer-path: must start with / and hold no query, fragment or space: ${issuerPath}`);
}
issuerPath = issuerPath.replace(/\/+$/u, '');

// RFC 8252 section 7.3: for a native client oidc-provider accepts these loopback URIs on any
// port (it compares them with the port stripped), so the agent may listen on port 0.
const redirectUris = opts['redirect-uri'] ?? ['http://127.0.0.1/callback'];

// Accounts, by the login name typed on the devInteractions page. The subject differs from the
// negotiator id on purpose (Cognito's `sub` is a UUID), so a client that reads `sub` where it
// should read `custom:reapit:userCode` fails the tests.
const ACCOUNTS = {
  JAS: {
    sub: '5f0e8c2a-1d6b-4c1e-9a3f-00000000a001',
    'custom:reapit:userCode': 'JAS',
    'custom:reapit:officeId': 'OXF',
    name: 'James Smith',
    email: 'jas@example.com',
    email_verified: true,
  },
  RPT: {
    sub: '5f0e8c2a-1d6b-4c1e-9a3f-00000000a002',
    'custom:reapit:userCode': 'RPT',
    'custom:reapit:officeId': 'OXF',
    name: 'Rachel Patel',
    email: 'rpt@example.com',
    email_verified: true,
  },
  // a Reapit Connect user who is not a negotiator: no custom:reapit:userCode at all
  nobody: {
    sub: '5f0e8c2a-1d6b-4c1e-9a3f-00000000a000',
    name: 'No Body',
    email: 'nobody@example.com',
    email_verified: true,
  },
};
const OTHER_PREFIX = 'user-';

function subjectFor(login) {
  // any other login is a negotiator whose id is the login itself
  return ACCOUNTS[login]?.sub ?? `${OTHER_PREFIX}${login}`;
}

function claimsFor(sub) {
  const known = Object.values(ACCOUNTS).find((account) => account.sub === sub);
  if (known) return { ...known };
  if (!sub.startsWith(OTHER_PREFIX)) return undefined;
  const login = sub.slice(OTHER_PREFIX.length);
  return {
    sub,
    'custom:reapit:userCode': login,
    name: login,
    email: `${login.toLowerCase()}@example.com`,
    email_verified: true,
  };
}

// devInteractions makes the typed login name the account id (the subject): swap in the subject
// before it sees the login form (oidc-provider reads an already-read body from req.body).
async function loginNameToSubject(req) {
  if (req.method !== 'POST' || !/^\/interaction\/[^/?]+(\?.*)?$/u.test(req.url)) return;
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  const form = new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
  if (form.get('prompt') === 'login' && form.get('login')) {
    form.set('login', subjectFor(form.get('login')));
  }
  req.body = form.toString();
}

const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = { ...privateKey.export({ format: 'jwk' }), alg: 'RS256', use: 'sig', kid: 'test-rs256' };

const configuration = {
  clients: [{
    client_id: 'tapi-agent',
    client_name: 'TAPI Agent (tests)',
    application_type: 'native',
    token_endpoint_auth_method: 'none',
    redirect_uris: redirectUris,
    post_logout_redirect_uris: ['http://127.0.0.1/signed-out'],
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
  }],
  responseTypes: ['code'],
  // PKCE: oidc-provider requires it (S256 only) for clients with token_endpoint_auth_method none
  claims: {
    openid: ['sub'],
    profile: ['name', 'custom:reapit:userCode', 'custom:reapit:officeId'],
    email: ['email', 'email_verified'],
  },
  // true (the default) = an ID token from the code flow carries only sub and the protocol claims;
  // the profile claims come from UserInfo. --id-token-claims puts them in the ID token too.
  conformIdTokenClaims: !opts['id-token-claims'],
  rotateRefreshToken: !opts['no-rotate'],
  async findAccount(_ctx, sub) {
    const claims = claimsFor(sub);
    if (!claims) return undefined;
    return {
      accountId: sub,
      async claims() { return claims; },
    };
  },
  features: {
    devInteractions: { enabled: true },
    revocation: { enabled: true },
    introspection: { enabled: true },
    rpInitiatedLogout: { enabled: true },
    userinfo: { enabled: true },
  },
  ttl: {
    AccessToken: accessTtl,
    AuthorizationCode: 600,
    IdToken: 3600,
    RefreshToken: 14 * 24 * 3600,
    Interaction: 3600,
    Session: 14 * 24 * 3600,
    Grant: 14 * 24 * 3600,
  },
  jwks: { keys: [signingKey] },
  cookies: { keys: [randomBytes(32).toString('base64url')] },
  // plain-text error pages keep a test's failure message readable
  async renderError(ctx, out) {
    ctx.type = 'text';
    ctx.body = `${out.error}: ${out.error_description ?? ''}\n`;
  },
};

let handler = (_req, res) => { res.writeHead(503).end(); };
const server = http.createServer(async (req, res) => {
  if (issuerPath) {
    // mount under the issuer's path the way express does (oidc-provider reads originalUrl)
    const { url } = req;
    if (url !== issuerPath && !url.startsWith(`${issuerPath}/`) && !url.startsWith(`${issuerPath}?`)) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not under the issuer path\n');
      return;
    }
    req.originalUrl = url;
    req.url = url.slice(issuerPath.length) || '/';
    if (req.url.startsWith('?')) req.url = `/${req.url}`;
  }
  try {
    await loginNameToSubject(req);
  } catch (err) {
    res.writeHead(400, { 'content-type': 'text/plain' }).end(`bad form: ${err.message}\n`);
    return;
  }
  handler(req, res);
});

server.listen(port, '127.0.0.1', () => {
  const actual = server.address().port;
  const issuer = `http://127.0.0.1:${actual}${issuerPath}`;
  const provider = new Provider(issuer, configuration);
  provider.on('server_error', (_ctx, err) => process.stderr.write(`server_error: ${err.stack}\n`));
  handler = provider.callback();
  process.stdout.write(`${JSON.stringify({ issuer, port: actual })}\n`);
});

function stop() {
  server.close(() => process.exit(0));
  server.closeAllConnections();
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
