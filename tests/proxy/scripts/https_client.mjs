// Node through wiretape over HTTPS with only core modules: a CONNECT tunnel made by hand,
// TLS over it trusting NODE_EXTRA_CA_CERTS (read by Node at start-up), https.request on top.
// usage: node https_client.mjs PROXY_URL OUT_DIR BASE_URL
// Writes OUT_DIR/<name>.status, .body (bytes exactly as received, not decompressed) and
// .headers for: GET /json, GET /gzip, GET /binary, POST /echo; and GET /json with the
// node:http2 client (h2json).
import fs from 'node:fs';
import http from 'node:http';
import http2 from 'node:http2';
import https from 'node:https';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';

const [proxyUrl, outDir, baseUrl] = process.argv.slice(2);
const proxy = new URL(proxyUrl);
const base = new URL(baseUrl);
fs.mkdirSync(outDir, { recursive: true });

function tunnel(alpn = ['http/1.1']) {
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: proxy.hostname, port: proxy.port, method: 'CONNECT',
      path: `${base.hostname}:${base.port || 443}`,
      headers: { host: `${base.hostname}:${base.port || 443}` },
    });
    req.on('connect', (res, socket) => {
      if (res.statusCode !== 200) {
        reject(new Error(`CONNECT answered ${res.statusCode}`));
        return;
      }
      // SNI must not be an IP address (RFC 6066); the certificate is checked either way
      const servername = net.isIP(base.hostname) ? undefined : base.hostname;
      const secure = tls.connect({ socket, servername, host: base.hostname, ALPNProtocols: alpn });
      secure.once('secureConnect', () => resolve(secure));
      secure.once('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

async function fetch(name, method, pathname, headers = {}, body = null) {
  const socket = await tunnel();
  return new Promise((resolve, reject) => {
    const req = https.request({
      host: base.hostname, port: base.port || 443, method, path: pathname,
      headers: { ...headers, connection: 'close' },
      createConnection: () => socket,
    }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        fs.writeFileSync(path.join(outDir, `${name}.status`),
          `${res.statusCode} HTTP/${res.httpVersion}`);
        fs.writeFileSync(path.join(outDir, `${name}.body`), Buffer.concat(chunks));
        fs.writeFileSync(path.join(outDir, `${name}.headers`),
          JSON.stringify(res.rawHeaders));
        resolve();
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    if (body) req.write(body);
    req.end();
  });
}

await fetch('json', 'GET', '/json');
await fetch('gzip', 'GET', '/gzip', { 'accept-encoding': 'gzip' });
await fetch('binary', 'GET', '/binary');
await fetch('echo', 'POST', '/echo', { 'content-type': 'application/octet-stream' },
  Buffer.from([...Buffer.from('node says '), 0xff, 0xfe, ...Buffer.from(' hello')]));

async function fetchH2(name, pathname) {
  const socket = await tunnel(['h2']);
  const session = http2.connect(base.origin, { createConnection: () => socket });
  await new Promise((resolve, reject) => {
    const req = session.request({ ':method': 'GET', ':path': pathname });
    const chunks = [];
    let status = 0;
    let headers = [];
    req.on('response', (h, flags, raw) => { status = h[':status']; headers = raw; });
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      fs.writeFileSync(path.join(outDir, `${name}.status`), `${status} ${socket.alpnProtocol}`);
      fs.writeFileSync(path.join(outDir, `${name}.body`), Buffer.concat(chunks));
      fs.writeFileSync(path.join(outDir, `${name}.headers`), JSON.stringify(headers));
      session.close();
      resolve();
    });
    req.on('error', reject);
    req.end();
  });
}

await fetchH2('h2json', '/json');
