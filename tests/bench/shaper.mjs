// A userspace link shaper (the kernel here has no netem): a TCP proxy that gives every
// connection its own rate cap and a one-way delay in each direction, like a long-haul link
// or a cloud ingress limited per flow. Each chunk leaves when the connection's line would have
// finished sending it, plus the delay; a connection with more than its bandwidth-delay
// product (plus 256 KiB) queued stops reading, so TCP's own flow control takes over.
//   node shaper.mjs <upstream-port> <bytes-per-second> <delay-ms>   -> prints LISTENING <port>
import net from 'node:net';

const [upstreamPort, rateArg, delayArg] = process.argv.slice(2).map(Number);
if (!upstreamPort || !rateArg || Number.isNaN(delayArg)) {
  console.error('usage: node shaper.mjs <upstream-port> <bytes-per-second> <delay-ms>');
  process.exit(2);
}
const window = rateArg * (delayArg / 1000) + 256 * 1024;

/** Moves bytes from `from` to `to` at `rateArg` bytes/s, each arriving `delayArg` ms late,
 * in order: one queue and one timer per direction (timers of different lengths may fire out
 * of order, which would scramble the stream). */
function shape(from, to) {
  let lineFree = 0; // when the line finishes what it was given (ms, performance.now)
  let queued = 0;
  const queue = []; // [{ chunk, at }] with `at` never decreasing
  let timer = null;
  let ended = false;
  const pump = () => {
    timer = null;
    const now = performance.now();
    while (queue.length && queue[0].at <= now) {
      const { chunk } = queue.shift();
      queued -= chunk.length;
      if (!to.destroyed) to.write(chunk);
    }
    if (queued <= window && from.isPaused()) from.resume();
    if (queue.length) timer = setTimeout(pump, Math.max(0, queue[0].at - now));
    else if (ended && !to.destroyed) to.end();
  };
  from.on('data', (chunk) => {
    const now = performance.now();
    lineFree = Math.max(lineFree, now) + (chunk.length / rateArg) * 1000;
    queue.push({ chunk, at: lineFree + delayArg });
    queued += chunk.length;
    if (queued > window) from.pause();
    if (timer === null) timer = setTimeout(pump, Math.max(0, queue[0].at - now));
  });
  // The end travels behind the last byte.
  from.on('end', () => {
    ended = true;
    if (timer === null) pump();
  });
  from.on('error', () => setTimeout(() => to.destroy(), delayArg));
}

const server = net.createServer((client) => {
  client.setNoDelay(true);
  const upstream = net.connect({ host: '127.0.0.1', port: upstreamPort }, () => upstream.setNoDelay(true));
  shape(client, upstream);
  shape(upstream, client);
  upstream.on('close', () => setTimeout(() => client.destroy(), delayArg));
  client.on('close', () => setTimeout(() => upstream.destroy(), delayArg));
});
server.listen(0, '127.0.0.1', () => console.log(`LISTENING ${server.address().port}`));
