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
  it('retry countdown', () => {
    expect(stateLabel('waiting_to_retry', 10_500, 7_000)).toBe('Retrying in 4s');
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
