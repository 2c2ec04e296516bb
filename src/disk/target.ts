/**
 * A sparse, byte-addressed output that filesystem and partition writers write into. A raw file is one
 * implementation; qcow2, VMDK, VHD and VDI writers (a later issue) are others, which is why writers
 * must not read back what they wrote and should write in ascending offsets where they can.
 */
export interface BlockTarget {
  /** Virtual size in bytes. */
  readonly size: number;
  /**
   * Writes `data` at `offset`. Regions never written read as zeros and cost nothing. The caller may
   * reuse `data` once the returned promise has resolved: a target that needs the bytes later keeps a copy.
   */
  write(offset: number, data: Buffer): Promise<void>;
  /** Flushes and finalises; no write after this. */
  finish(): Promise<void>;
}
