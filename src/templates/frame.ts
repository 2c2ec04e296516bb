/**
 * Length-prefixed frames between the renderer and its child process:
 * `[u32 header length][u32 body length][header JSON, UTF-8][body bytes]`.
 * The body carries rendered output as raw bytes so a large output is never JSON-escaped.
 *
 * Both functions are also sent to the child as source text (Function.prototype.toString), so they
 * must stay self-contained: no imports, no references to anything outside their own bodies.
 */

export interface Frame {
  header: unknown;
  body: Buffer;
}

export interface FrameLimits {
  maxHeader: number;
  maxBody: number;
}

export function encodeFrame(header: unknown, body?: Buffer): Buffer {
  const head = Buffer.from(JSON.stringify(header), 'utf8');
  const sizes = Buffer.alloc(8);
  sizes.writeUInt32BE(head.length, 0);
  sizes.writeUInt32BE(body ? body.length : 0, 4);
  return Buffer.concat(body ? [sizes, head, body] : [sizes, head]);
}

/**
 * Returns a function that takes the next chunk of a byte stream and returns the frames it completed.
 * Chunks are joined only once a whole frame has arrived, so a large body costs one copy.
 * Throws when a frame announces more than the limits allow.
 */
export function createFrameReader(limits: FrameLimits): (chunk: Buffer) => Frame[] {
  let chunks: Buffer[] = [];
  let total = 0;
  let headerLength = -1;
  let bodyLength = 0;
  let need = 8;
  return (chunk: Buffer): Frame[] => {
    chunks.push(chunk);
    total += chunk.length;
    const frames: Frame[] = [];
    while (total >= need) {
      const all = chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, total);
      chunks = [all];
      if (headerLength < 0) {
        headerLength = all.readUInt32BE(0);
        bodyLength = all.readUInt32BE(4);
        if (headerLength > limits.maxHeader || bodyLength > limits.maxBody) {
          throw new Error(`frame too large (header ${headerLength} bytes, body ${bodyLength} bytes)`);
        }
        need = 8 + headerLength + bodyLength;
        continue;
      }
      const header: unknown = JSON.parse(all.subarray(8, 8 + headerLength).toString('utf8'));
      const body = Buffer.from(all.subarray(8 + headerLength, need));
      frames.push({ header, body });
      const rest = all.subarray(need);
      chunks = rest.length > 0 ? [rest] : [];
      total = rest.length;
      headerLength = -1;
      need = 8;
    }
    return frames;
  };
}
