// tus-js-client on Node, the way its README shows it: one tus.Upload per file from an
// fs.ReadStream, default options (no chunking), `concurrency` uploads at a time.
//   node tusjs_upload.mjs <endpoint> <concurrency> <file-or-@listfile>...
import fs from 'node:fs';
import path from 'node:path';
import * as tus from 'tus-js-client';

const [endpoint, concurrencyArg, ...args] = process.argv.slice(2);
const files = args.flatMap((a) =>
  a.startsWith('@') ? fs.readFileSync(a.slice(1), 'utf8').split('\n').filter(Boolean) : [a],
);
const concurrency = Number(concurrencyArg);

function uploadOne(file) {
  return new Promise((resolve, reject) => {
    const stream = fs.createReadStream(file);
    const upload = new tus.Upload(stream, {
      endpoint,
      uploadSize: fs.statSync(file).size,
      metadata: { filename: path.basename(file) },
      onError: reject,
      onSuccess: resolve,
    });
    upload.start();
  });
}

let next = 0;
async function worker() {
  while (next < files.length) {
    const f = files[next++];
    await uploadOne(f);
  }
}
await Promise.all(Array.from({ length: Math.min(concurrency, files.length) }, worker));
