/**
 * The directories of a tree that are open while its entries go by, for the code that builds each
 * directory from the entries under it: the ext4 writer and its size tally.
 *
 * Entries come in byte order of their full paths. That keeps a directory's content together, except
 * after siblings whose names extend its own with a byte below `/` (space, `!` to `.`): `/a`, `/a-b`,
 * `/a.d`, `/a.d/x`, then `/a/x` (Debian has `/usr/lib/python3` and `/usr/lib/python3.11`). Such a
 * directory is set aside when the entries leave it, taken up again when its content comes, and closed
 * once a path that cannot precede its content goes by (`/a0`, `/b`) or at the end.
 */
export class OpenDirs<T extends { readonly path: Buffer }> {
  /** The root and the directories on the way to the current entry. */
  private readonly stack: T[] = [];
  /** Left before their content was all seen: closed once a path can no longer be under them. */
  private readonly aside: T[] = [];

  /** `close` is called once for every directory but the root (see `closeAllButRoot`). */
  constructor(private readonly close: (dir: T) => void) {}

  /** How many directories are open (the root first); none before the root. */
  get depth(): number {
    return this.stack.length;
  }

  /** Opens a directory: the root, or one whose parent `parentOf` has just returned. */
  open(dir: T): void {
    this.stack.push(dir);
  }

  /**
   * The open directory that `path` goes in: the one ending where `path`'s last `/` is (at `slash`).
   * Directories the entries leave are closed, or set aside; undefined when that directory is not open
   * (it never came, or was not a directory).
   */
  parentOf(path: Buffer, slash: number): T | undefined {
    if (this.aside.length > 0) this.closeAsideBefore(path);
    for (;;) {
      const top = this.stack[this.stack.length - 1];
      if (!top) return undefined;
      if (isParent(top.path, path, slash)) return top;
      if (isAncestor(top.path, path)) return this.takeUp(path, slash);
      this.stack.pop();
      if (mayComeBack(top.path, path)) this.aside.push(top);
      else this.close(top);
    }
  }

  /** After the last entry: closes every directory but the root, and returns the root (if one came). */
  closeAllButRoot(): T | undefined {
    while (this.stack.length > 1) this.close(this.stack.pop() as T);
    this.closeAside(this.aside.splice(0));
    return this.stack[0];
  }

  /** The directories set aside under the stack's top that lead to `path`, open again in order. */
  private takeUp(path: Buffer, slash: number): T | undefined {
    const back = this.aside.filter((d) => isAncestor(d.path, path));
    if (back.length === 0) return undefined;
    back.sort((a, b) => a.path.length - b.path.length);
    for (const d of back) {
      this.aside.splice(this.aside.indexOf(d), 1);
      this.stack.push(d);
    }
    const top = this.stack[this.stack.length - 1] as T;
    return isParent(top.path, path, slash) ? top : undefined;
  }

  private closeAsideBefore(path: Buffer): void {
    const done = this.aside.filter((d) => !mayComeBack(d.path, path));
    if (done.length === 0) return;
    for (const d of done) this.aside.splice(this.aside.indexOf(d), 1);
    this.closeAside(done);
  }

  /** Deepest first, as they would have closed had their content come together. */
  private closeAside(list: T[]): void {
    list.sort((a, b) => b.path.length - a.path.length);
    for (const d of list) this.close(d);
  }
}

/**
 * Content of `dir` can still come at or after `path` (a later path): `path` is under `dir`, or extends
 * `dir`'s name with a byte below `/` and so sorts before `dir/`. Any other later path sorts past all of
 * `dir/...`.
 */
function mayComeBack(dir: Buffer, path: Buffer): boolean {
  return (
    path.length > dir.length &&
    (path[dir.length] as number) <= 0x2f &&
    path.compare(dir, 0, dir.length, 0, dir.length) === 0
  );
}

/** `dir` is the directory `path` is in (its last `/` at `slash`). */
function isParent(dir: Buffer, path: Buffer, slash: number): boolean {
  if (slash === 0) return dir.length === 1;
  return dir.length === slash && path.compare(dir, 0, slash, 0, slash) === 0;
}

/** `path` lies somewhere under `dir` (the root, `/`, holds every path but itself). */
function isAncestor(dir: Buffer, path: Buffer): boolean {
  if (dir.length === 1) return path.length > 1;
  return (
    path.length > dir.length + 1 &&
    path[dir.length] === 0x2f &&
    path.compare(dir, 0, dir.length, 0, dir.length) === 0
  );
}
