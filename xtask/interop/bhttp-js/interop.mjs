// The inner BHTTP messages of the one-shot path, across two implementations: for each case in
// DIR/cases.json, decode DIR/rust-N.bin (encoded by the bhttp crate through pp_client::inner)
// with bhttp-js and compare it field by field with the case; then encode the case with bhttp-js
// into DIR/js-N.bin, for the Rust side to decode and compare. Exit status 1 on any difference.
//
// Usage: node interop.mjs DIR
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { BHttpDecoder, BHttpEncoder } from "bhttp-js";

const dir = process.argv[2];
const cases = JSON.parse(readFileSync(join(dir, "cases.json"), "utf8"));
const decoder = new BHttpDecoder();
const encoder = new BHttpEncoder();
const fromHex = (h) => Uint8Array.from(h.match(/../g) ?? [], (b) => parseInt(b, 16));
const toHex = (u) => Buffer.from(u).toString("hex");
let failed = 0;

function expect(n, what, got, want) {
  if (got !== want) {
    console.error(`case ${n}: ${what}: bhttp-js read ${JSON.stringify(got)}, want ${JSON.stringify(want)}`);
    failed += 1;
  }
}

async function compare(n, c, message) {
  const headers = [...message.headers].map(([k, v]) => `${k}: ${v}`).sort();
  const want = c.headers.map(([k, v]) => `${k.toLowerCase()}: ${v}`).sort();
  expect(n, "headers", JSON.stringify(headers), JSON.stringify(want));
  expect(n, "body", toHex(new Uint8Array(await message.arrayBuffer())), c.body);
}

for (const [n, c] of cases.entries()) {
  const bytes = readFileSync(join(dir, `rust-${n}.bin`));
  if (c.kind === "request") {
    const req = decoder.decodeRequest(bytes);
    const url = new URL(req.url);
    expect(n, "method", req.method, c.method);
    expect(n, "scheme", url.protocol, `${c.scheme}:`);
    expect(n, "authority", url.host, c.authority);
    expect(n, "path", url.pathname + url.search, c.path);
    await compare(n, c, req);
    const out = await encoder.encodeRequest(
      new Request(`${c.scheme}://${c.authority}${c.path}`, {
        method: c.method,
        headers: c.headers,
        body: fromHex(c.body),
      }),
    );
    writeFileSync(join(dir, `js-${n}.bin`), out);
  } else {
    const res = decoder.decodeResponse(bytes);
    expect(n, "status", res.status, c.status);
    await compare(n, c, res);
    const body = c.body.length > 0 ? fromHex(c.body) : null;
    const out = await encoder.encodeResponse(new Response(body, { status: c.status, headers: c.headers }));
    writeFileSync(join(dir, `js-${n}.bin`), out);
  }
}
console.log(`bhttp-js: ${cases.length} case(s) read and written, ${failed} difference(s)`);
process.exit(failed === 0 ? 0 : 1);
