// Interoperability with an independent RFC 9578 implementation, @cloudflare/privacypass-ts.
// Driven by outside/device/tests/privacypass_interop.rs (run by `cargo xtask test`):
//
//   node interop.mjs issue ISSUER_REQUEST_URL CREDENTIAL 'PrivateToken challenge=..., token-key=...'
//     privacypass-ts parses the gateway's WWW-Authenticate value, sends ONE
//     application/private-token-request to pp-issuer, finalizes the response and prints the
//     token (base64url) for the gateway to accept.
//   node interop.mjs verify TOKEN_B64URL CHALLENGE_B64URL TOKEN_KEY_B64URL
//     privacypass-ts parses a token made by our client, checks it answers the challenge and
//     names the key, and verifies its signature; prints "ok".
import { webcrypto } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { base64url } from 'rfc4648';
import {
  publicVerif,
  util,
  Token,
  TokenChallenge,
  WWWAuthenticateHeader,
  TOKEN_TYPES,
} from '@cloudflare/privacypass-ts';

// Node 18 (Debian bookworm's) has WebCrypto but not as a global; privacypass-ts uses the global.
globalThis.crypto ??= webcrypto;

const { Client, Origin, BlindRSAMode } = publicVerif;
const BLIND_RSA = TOKEN_TYPES.BLIND_RSA;
const b64 = (s) => base64url.parse(s, { loose: true });

function equal(a, b) {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

// POST with node:http (no dependence on the fetch of a particular Node build).
function post(url, data, headers) {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method: 'POST', headers }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () =>
        resolve({
          status: res.statusCode,
          type: res.headers['content-type'],
          body: new Uint8Array(Buffer.concat(chunks)),
        }),
      );
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(Buffer.from(data));
  });
}

async function issue(url, credential, header) {
  const [www] = WWWAuthenticateHeader.parse(header);
  if (!www) throw new Error('no PrivateToken challenge in the header');
  const client = new Client(BlindRSAMode.PSS);
  const request = await client.createTokenRequest(www.challenge, www.tokenKey);
  const { status, type, body } = await post(url, request.serialize(), {
    'content-type': 'application/private-token-request',
    accept: 'application/private-token-response',
    authorization: `Bearer ${credential}`,
  });
  if (status !== 200) throw new Error(`issuer answered HTTP ${status}`);
  if (type !== 'application/private-token-response') {
    throw new Error('issuer answered another media type');
  }
  const token = await client.finalize(client.deserializeTokenResponse(body));
  console.log(base64url.stringify(token.serialize(), { pad: false }));
}

async function verify(tokenText, challengeText, keyText) {
  const token = Token.deserialize(BLIND_RSA, b64(tokenText));
  const challenge = TokenChallenge.deserialize(b64(challengeText));
  const spki = b64(keyText);
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', challenge.serialize()));
  if (!equal(token.authInput.challengeDigest, digest)) throw new Error('token answers another challenge');
  const keyId = new Uint8Array(await crypto.subtle.digest('SHA-256', spki));
  if (!equal(token.authInput.tokenKeyId, keyId)) throw new Error('token names another key');
  const key = await crypto.subtle.importKey(
    'spki',
    util.convertRSASSAPSSToEnc(spki),
    BLIND_RSA.rsaParams,
    true,
    ['verify'],
  );
  if (!(await new Origin(BlindRSAMode.PSS).verify(token, key))) throw new Error('signature does not verify');
  console.log('ok');
}

const [mode, ...args] = process.argv.slice(2);
try {
  if (mode === 'issue' && args.length === 3) await issue(...args);
  else if (mode === 'verify' && args.length === 3) await verify(...args);
  else throw new Error('usage: interop.mjs issue URL CREDENTIAL HEADER | verify TOKEN CHALLENGE KEY');
} catch (e) {
  console.error(`privacypass-ts interop: ${e.message}`);
  process.exit(1);
}
