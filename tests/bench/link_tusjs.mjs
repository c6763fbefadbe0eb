// tus-js-client over the shaped link: one file, `parallelUploads` streams (1 = one stream).
// The file is read into memory first (parallelUploads needs a source it can slice).
//   node link_tusjs.mjs <endpoint> <parallelUploads> <file>
import fs from 'node:fs';
import path from 'node:path';
import * as tus from 'tus-js-client';

const [endpoint, parts, file] = process.argv.slice(2);
await new Promise((resolve, reject) => {
  const upload = new tus.Upload(fs.readFileSync(file), {
    endpoint,
    parallelUploads: Number(parts),
    metadata: { filename: path.basename(file) },
    onError: reject,
    onSuccess: resolve,
  });
  upload.start();
});
