// A trivial HTTP sink, the practical ceiling for one HTTP upload on this machine: it reads
// and discards request bodies. Any PUT/POST without tus headers gets 200 (for `curl -T`). It
// also speaks just enough tus (OPTIONS, POST, HEAD, PATCH) to take Tusker's uploads, so the
// client's own overhead can be compared with curl's on the same sink. Prints `LISTENING
// <port>`, `FIRST_BYTE <unix ms>` when the first body byte of a PATCH arrives (again after
// a GET /reset), and `COMPLETE <unix ms> <length>` when an upload of 1 MiB or more is whole.
import http from 'node:http';

const uploads = new Map();
let nextId = 1;
let firstByte = false;
const tus = { 'Tus-Resumable': '1.0.0' };

const server = http.createServer((req, res) => {
  const isTus = req.headers['tus-resumable'] !== undefined;
  if (req.url === '/reset') {
    // The harness measures the next first byte.
    firstByte = false;
    res.writeHead(200);
    return res.end();
  }
  if (req.method === 'OPTIONS') {
    res.writeHead(204, { ...tus, 'Tus-Version': '1.0.0', 'Tus-Extension': 'creation,termination' });
    return res.end();
  }
  if (isTus && req.method === 'POST') {
    const id = String(nextId++);
    uploads.set(id, { length: Number(req.headers['upload-length'] ?? 0), offset: 0 });
    req.resume();
    req.on('end', () => {
      res.writeHead(201, { ...tus, Location: `/files/${id}` });
      res.end();
    });
    return;
  }
  const id = req.url.split('/').pop();
  const u = uploads.get(id);
  if (isTus && req.method === 'HEAD') {
    if (!u) { res.writeHead(404, tus); return res.end(); }
    res.writeHead(200, { ...tus, 'Upload-Offset': u.offset, 'Upload-Length': u.length, 'Cache-Control': 'no-store' });
    return res.end();
  }
  if (isTus && req.method === 'DELETE') {
    uploads.delete(id);
    res.writeHead(204, tus);
    return res.end();
  }
  let n = 0;
  req.on('data', (c) => {
    if (!firstByte && req.method === 'PATCH') {
      firstByte = true;
      console.log(`FIRST_BYTE ${Date.now()}`);
    }
    n += c.length;
  });
  req.on('end', () => {
    if (isTus && req.method === 'PATCH') {
      if (!u) { res.writeHead(404, tus); return res.end(); }
      u.offset += n;
      if (u.length >= 1 << 20 && u.offset === u.length) console.log(`COMPLETE ${Date.now()} ${u.length}`);
      res.writeHead(204, { ...tus, 'Upload-Offset': u.offset });
      return res.end();
    }
    res.writeHead(200, { 'Content-Type': 'text/plain' });
    res.end(`${n}\n`);
  });
});
server.keepAliveTimeout = 60000;
server.listen(0, '127.0.0.1', () => console.log(`LISTENING ${server.address().port}`));
process.on('SIGTERM', () => process.exit(0));
