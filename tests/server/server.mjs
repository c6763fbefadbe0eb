// The official tus reference server (@tus/server + @tus/file-store), started by Tusker's
// tests and by scripts/dev-server.sh. It listens on a loopback port (0 = any free one) and
// prints one line `LISTENING <port>` once it accepts connections, so a harness can wait
// for it without polling.
//
// Environment:
//   TUS_DIR            where uploads are stored (required)
//   TUS_PORT           port (default 0)
//   TUS_MAX_SIZE       Tus-Max-Size in bytes (optional)
//   TUS_RELATIVE       "1" to answer POST with a relative Location
//   TUS_EXPIRE_MS      expiration period in ms (enables Upload-Expires)
import { Server } from '@tus/server';
import { FileStore } from '@tus/file-store';

const directory = process.env.TUS_DIR;
if (!directory) {
  console.error('TUS_DIR is not set');
  process.exit(2);
}
const port = Number(process.env.TUS_PORT ?? 0);
const options = {
  path: '/files',
  datastore: new FileStore({
    directory,
    expirationPeriodInMilliseconds: process.env.TUS_EXPIRE_MS ? Number(process.env.TUS_EXPIRE_MS) : undefined,
  }),
  relativeLocation: process.env.TUS_RELATIVE === '1',
};
if (process.env.TUS_MAX_SIZE) options.maxSize = Number(process.env.TUS_MAX_SIZE);
const server = new Server(options);
const http = server.listen({ host: '127.0.0.1', port }, () => {
  console.log(`LISTENING ${http.address().port}`);
});
const stop = () => http.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
