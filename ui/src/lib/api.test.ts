import { afterEach, describe, expect, it } from 'vitest';
import { clearMocks, mockIPC } from '@tauri-apps/api/mocks';
import { api, errorCode, errorText } from './api';

afterEach(() => clearMocks());

describe('api', () => {
  it('calls the shell commands with the argument names they declare', async () => {
    const calls: Array<[string, unknown]> = [];
    mockIPC((cmd, args) => {
      calls.push([cmd, args]);
      return null;
    });
    await api.pickAndAdd(true);
    await api.reorder(7, 0);
    await api.pause(7);
    await api.answerHost(7, true);
    await api.saveProfile('Old', { name: 'New' } as never);
    await api.continueUploadUrl('https://x/files/1');
    expect(calls).toEqual([
      ['pick_and_add', { folders: true }],
      ['reorder_upload', { id: 7, index: 0 }],
      ['pause_upload', { id: 7 }],
      ['answer_host', { id: 7, allow: true }],
      ['save_profile', { previous: 'Old', profile: { name: 'New' } }],
      ['continue_upload_url', { url: 'https://x/files/1' }],
    ]);
  });

  it('surfaces the shell error as code and text', async () => {
    mockIPC(() => {
      throw { code: 'not_tus_server', message: 'https://x is not a tus server: OPTIONS answered 404 Not Found' };
    });
    const err = await api.checkEndpoint('https://x', [], null).catch((e) => e);
    expect(errorText(err)).toContain('is not a tus server');
    expect(errorCode(err)).toBe('not_tus_server');
    expect(errorCode('plain text')).toBeNull();
  });
});
