/**
 * The one currency of the pipeline: a source yields entries, filters transform them, a sink consumes them.
 * Paths are bytes because image file names may hold newlines or non-UTF-8 bytes.
 */
export type EntryType = 'file' | 'dir' | 'symlink' | 'hardlink' | 'char' | 'block' | 'fifo' | 'socket';

export interface Entry {
  /** Image-rooted path as raw bytes: `/` for the root, `/etc/hostname`; never a trailing slash. */
  path: Buffer;
  type: EntryType;
  /** Permission bits including setuid, setgid and sticky (`mode & 0o7777`); no file-type bits. */
  mode: number;
  uid: number;
  gid: number;
  /** Owner names, only where the source carries them (a tar archive); never looked up on the host. */
  uname?: string | undefined;
  gname?: string | undefined;
  /** Modification time in nanoseconds since the epoch. */
  mtimeNs: bigint;
  /** Content length in bytes for `file`; 0 for every other type. */
  size: number;
  /** `symlink`: the target bytes as stored. `hardlink`: the image-rooted path of the entry it links to. */
  linkTarget?: Buffer | undefined;
  /**
   * `hardlink` entries of a source that can still read the linked content (a directory): its size, with
   * `content` set, so a filter that drops the first link can turn this entry into a `file`.
   */
  targetSize?: number | undefined;
  /** `char` and `block` devices. */
  devMajor?: number | undefined;
  devMinor?: number | undefined;
  /** Extended attributes, name → raw value (binary-safe: `security.capability`). */
  xattrs: ReadonlyMap<string, Buffer>;
  /**
   * The content of a `file`, as chunks. A streaming source (a tar archive) only allows this while the
   * entry is current, so a consumer reads it before pulling the next entry, or not at all.
   */
  content?: (() => AsyncIterable<Buffer>) | undefined;
  /**
   * The same content for sources that can read it synchronously (a directory): a sink reads straight
   * into its own buffers, with no allocation or promise per chunk. A filter that replaces `content`
   * must clear this.
   */
  openContentSync?: (() => SyncContentReader) | undefined;
  /** A directory source's stat data of the path, for comparing with a stat cache (git's index). */
  hostStat?: HostStat | undefined;
}

/** What `lstat` said of a path on the host (a directory source's walk). */
export interface HostStat {
  /** st_mode: type and permission bits. */
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  readonly size: number;
  /** Modification and inode change times, as whole seconds and nanoseconds (compared without a BigInt). */
  readonly mtimeSec: number;
  readonly mtimeNsec: number;
  readonly ctimeSec: number;
  readonly ctimeNsec: number;
  /** The inode number's low 32 bits (what git's index keeps of it). */
  readonly inoLow32: number;
}

export interface SyncContentReader {
  /** Reads up to `length` bytes at `position` into `buf` at `offset`; returns 0 at the end of the file. */
  read(buf: Buffer, offset: number, length: number, position: number): number;
  /** Checks the file did not change size while it was read (`bytesRead` in all; negative: gave up early), then closes it. */
  close(bytesRead: number): void;
}

/** Where an image's files come from: a directory, an archive, later a VCS revision or an OCI image. */
export interface ImageSource {
  /** For messages: `directory ./img`, `archive img.tar.gz`. */
  readonly description: string;
  /** Every entry of the image, the root `/` first, sorted by the bytes of their paths. */
  entries(): AsyncIterable<Entry>;
  /**
   * The same entries in batches, where the source has them so (a directory's walk): a consumer that
   * handles each entry synchronously pays one promise per batch instead of one per entry.
   */
  entryBatches?(): AsyncIterable<readonly Entry[]>;
  /**
   * Reads one regular file by image path, resolving symlinks inside the image (an absolute target is
   * taken from the image root). `undefined` when absent; a CloudletsError (EPATH) when the path or a
   * link on the way escapes the image or the file is not a regular file.
   */
  readFile(imagePath: string): Promise<Buffer | undefined>;
  /** What readFile would find, without reading it: the file's size, or `undefined` when absent. */
  fileSize?(imagePath: string): Promise<number | undefined>;
  /**
   * Starts reading what the next `entries()` call will give (a directory's walk), so that it overlaps
   * whatever the caller does first (loading the manifest, compiling its schemas). `close` stops it if no
   * iteration comes.
   */
  readAhead?(): void;
  /** Releases whatever the source holds open. */
  close?(): Promise<void>;
}

/**
 * Entries in path order, one at a time or in batches. Sources that read in bulk (a directory's walk) pass
 * their batches on, and filters and sinks loop over each batch synchronously: one promise a batch instead
 * of several an entry (each filter was an async generator step per entry, which cost more than the
 * entry's own work on a tree of small files). A plain `AsyncIterable<Entry>` is an EntryStream too.
 */
export type EntryStream = AsyncIterable<Entry | readonly Entry[]>;

/** One item of an EntryStream as a batch. */
export function asBatch(item: Entry | readonly Entry[]): readonly Entry[] {
  return Array.isArray(item) ? (item as readonly Entry[]) : [item as Entry];
}

/** An EntryStream one entry at a time, for consumers that await per entry anyway. */
export async function* eachEntry(stream: EntryStream): AsyncIterable<Entry> {
  for await (const item of stream) {
    if (Array.isArray(item)) yield* item as readonly Entry[];
    else yield item as Entry;
  }
}

/** A source's entries, in batches where it has them. */
export function sourceStream(source: ImageSource): EntryStream {
  return source.entryBatches ? source.entryBatches() : source.entries();
}

/** Where entries go: a tar stream, a directory, a filesystem image. */
export interface EntrySink<R = void> {
  write(entries: EntryStream): Promise<R>;
}

export function pathString(path: Buffer): string {
  return path.toString('utf8');
}

/** Byte-order comparison of two image paths: the order every source yields and every sink expects. */
export function comparePaths(a: Buffer, b: Buffer): number {
  return Buffer.compare(a, b);
}
