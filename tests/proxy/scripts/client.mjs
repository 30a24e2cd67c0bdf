// Node as a client of wiretape's proxy, with core modules only (plain HTTP: the request
// target in absolute form, as every HTTP proxy client sends it).
// usage: node client.mjs upload PROXY_URL URL NOTE FILE   (a FormData upload, as undici
//          serialises it: its own random boundary)
//        node client.mjs get PROXY_URL URL ['Name: value'...]
// Prints one JSON line: {"status", "headers", "body" (base64)}.
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';

const [command, proxyUrl, url, ...rest] = process.argv.slice(2);
const proxy = new URL(proxyUrl);

function send(method, headers, body) {
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: proxy.hostname, port: proxy.port, method, path: url,
      headers: { host: new URL(url).host, ...headers },
    }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({
        status: res.statusCode,
        headers: res.rawHeaders,
        body: Buffer.concat(chunks).toString('base64'),
      }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

let result;
if (command === 'upload') {
  const [note, file] = rest;
  const form = new FormData();
  form.append('note', note);
  form.append('file', new Blob([fs.readFileSync(file)], { type: 'text/csv' }),
    path.basename(file));
  // undici's own serialisation of the form, boundary and all
  const encoded = new Response(form);
  const body = Buffer.from(await encoded.arrayBuffer());
  result = await send('POST', {
    'content-type': encoded.headers.get('content-type'),
    'content-length': String(body.length),
  }, body);
} else if (command === 'get') {
  const headers = {};
  for (const h of rest) {
    const i = h.indexOf(':');
    headers[h.slice(0, i).trim()] = h.slice(i + 1).trim();
  }
  result = await send('GET', headers);
} else {
  throw new Error(`unknown command ${command}`);
}
process.stdout.write(JSON.stringify(result) + '\n');
