// Commit stages while it walks (a head-start pass over tracked paths, then the walk's paths as they come):
// the index must still end up holding exactly the tree, whatever changed shape between two commits.
import { mkdirSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { gitIn, tempDirsPerTest } from '../../test/helpers.js';
import { commitImage, imageStatus } from './repo.js';

const git = gitIn;
const tempDir = tempDirsPerTest('cloudlets-stage-');

describe('streamed staging', () => {
  it('leaves the index equal to the tree after files turn into directories, links or nothing', async () => {
    const dir = tempDir();
    mkdirSync(join(dir, 'a'));
    mkdirSync(join(dir, 'd'));
    writeFileSync(join(dir, 'a/x'), 'x');
    writeFileSync(join(dir, 'b'), 'b');
    writeFileSync(join(dir, 'd/f'), 'f');
    writeFileSync(join(dir, 'keep'), 'k');
    await commitImage(dir, { message: 'one' });

    rmSync(join(dir, 'a'), { recursive: true }); // a file and its directory go
    unlinkSync(join(dir, 'b'));
    mkdirSync(join(dir, 'b')); // a file becomes a directory
    writeFileSync(join(dir, 'b/c'), 'c');
    unlinkSync(join(dir, 'd/f'));
    symlinkSync('../keep', join(dir, 'd/f')); // a file becomes a symlink
    writeFileSync(join(dir, 'keep'), 'changed');
    writeFileSync(join(dir, 'n'), 'new');
    const res = await commitImage(dir, { message: 'two' });

    expect(res.committed).toBe(true);
    expect(res.changes).toEqual({
      added: ['/b/c', '/n'],
      modified: ['/d/f', '/keep'],
      deleted: ['/a/x', '/b'],
    });
    expect(git(dir, 'ls-files', '-s').trim().split('\n')).toEqual([
      expect.stringMatching(/^100644 \S+ 0\t.cloudlet\/metadata$/),
      expect.stringMatching(/^100644 \S+ 0\tb\/c$/),
      expect.stringMatching(/^120000 \S+ 0\td\/f$/),
      expect.stringMatching(/^100644 \S+ 0\tkeep$/),
      expect.stringMatching(/^100644 \S+ 0\tn$/),
    ]);
    // The index matches the committed tree and the tree on disk.
    expect(git(dir, 'diff-index', '--cached', 'HEAD')).toBe('');
    expect(git(dir, 'diff-files')).toBe('');
    expect((await imageStatus(dir)).clean).toBe(true);
    expect(git(dir, 'show', 'HEAD:keep')).toBe('changed');
  });
});
