import { describe, expect, it } from 'vitest';
import { bytes, duration, parseSize, stateLabel } from './format';

describe('format', () => {
  it('sizes', () => {
    expect(bytes(0)).toBe('0 B');
    expect(bytes(1536)).toBe('1.5 KiB');
    expect(bytes(200 * 1024 * 1024)).toBe('200 MiB');
  });
  it('durations', () => {
    expect(duration(5)).toBe('5s');
    expect(duration(125)).toBe('2m 5s');
    expect(duration(7260)).toBe('2h 1m');
    expect(duration(null)).toBe('');
  });
  it('waiting states say why and until when', () => {
    expect(stateLabel('waiting_to_retry', 10_500, 7_000)).toBe('Retrying in 4 s');
    expect(stateLabel('waiting_to_retry', 19_000, 7_000, 'network.refused')).toBe('Waiting for the network (next try in 12 s)');
    expect(stateLabel('waiting_to_retry', 19_000, 7_000, 'stalled')).toBe('Waiting for the network (next try in 12 s)');
    expect(stateLabel('waiting_to_retry', 8_000, 7_000, 'http.429')).toBe('Server busy, retrying in 1 s');
    expect(stateLabel('waiting_to_retry', 8_000, 7_000, 'journal_busy')).toBe('Waiting for the journal (next try in 1 s)');
    // Past a minute and a half: the clock time of the next try.
    const at = new Date(2026, 11, 7, 14, 2, 0).getTime();
    expect(stateLabel('waiting_to_retry', at, at - 10 * 60_000, 'http.5xx')).toBe('Server busy, retrying at 14:02');
    expect(stateLabel('needs_sign_in', null, 0, 'http.401')).toBe('Needs sign-in');
    expect(stateLabel('file_changed', null, 0)).toBe('File changed');
  });
  it('parses sizes typed by people', () => {
    expect(parseSize('8')).toBe(8 * 1024 * 1024);
    expect(parseSize('512k')).toBe(512 * 1024);
    expect(parseSize('1.5 GB')).toBe(1.5e9);
    expect(parseSize('')).toBeNull();
    expect(parseSize('lots')).toBeNaN();
  });
});
