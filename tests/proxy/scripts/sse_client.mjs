// Node's own fetch (undici) reading a server-sent event stream as it arrives.
// usage: node sse_client.mjs URL
// Prints every `data:` line the moment its chunk is read, one per line, so the test sees
// each event as soon as the client does.
const [url] = process.argv.slice(2);
const res = await fetch(url, { headers: { accept: 'text/event-stream' } });
if (res.status !== 200) {
  console.error(`status ${res.status}`);
  process.exit(1);
}
const decoder = new TextDecoder();
let pending = '';
for await (const chunk of res.body) {
  pending += decoder.decode(chunk, { stream: true });
  const lines = pending.split('\n');
  pending = lines.pop();
  for (const line of lines) {
    if (line.startsWith('data:')) process.stdout.write(`${line}\n`);
  }
}
