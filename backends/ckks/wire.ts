/**
 * The CKKS service protocol over the two-party runtime's framing (backends/mpc/net.ts: length-prefixed
 * frames with a phase and a tag, bounded, with timeouts; the transport is that module's Channel, so a
 * TLS channel can replace it without touching this protocol). One session:
 *
 *   client -> server  setup 0   hello: {protocol, fingerprint of the client part, inferences}
 *   server -> client  setup 1   {ok: true} (or an ERROR frame: other plan, too many inferences)
 *   client -> server  setup 2   public key (seeded, zstd), for re-randomizing the outputs
 *                     setup 3   relinearization keys (seeded, zstd), when the plan multiplies
 *                     setup 4   Galois keys of exactly the plan's steps (seeded, zstd), when it rotates:
                               one frame per group of GALOIS_GROUP steps in plan order (galoisGroups)
 *   per inference b (tag b mod 2^16):
 *   client -> server  online b  one frame per input ciphertext (seeded symmetric encryption, zstd)
 *   server -> client  online b  REFRESH [u8 1][u32 level][f64 scale][ciphertext]  (0 or more)
 *   client -> server  online b  the refreshed ciphertext (fresh, at that level and scale)
 *   server -> client  online b  OUTPUT  [u8 2][ciphertext], one per output (masked, flooded, re-randomized)
 *   server -> client  setup 5   {served: inferences}
 */
export const CKKS_PROTOCOL = 'pic-ckks/1'
export const MSG_REFRESH = 1
export const MSG_OUTPUT = 2
/**
 * Galois keys travel in groups of this many steps, each generated, serialized and loaded on its own:
 * one blob of every key does not fit node-seal's 4 GB heap beside its serialization (fmnist32/pkn:
 * 154 keys of 15.7 MB at N = 32768 and 6 primes, 2.4 GB).
 */
export const GALOIS_GROUP = 16

/** The plan's rotation steps cut into upload groups (plan order). */
export function galoisGroups(rotations: readonly number[]): number[][] {
  const out: number[][] = []
  for (let k = 0; k < rotations.length; k += GALOIS_GROUP) out.push(rotations.slice(k, k + GALOIS_GROUP))
  return out
}

/** Most inferences one session may ask for. */
export const MAX_INFERENCES = 65536

export interface CkksHello {
  protocol: string
  fingerprint: string
  inferences: number
}

export function refreshRequest(level: number, scale: number, ct: Uint8Array): Buffer {
  const h = Buffer.alloc(13)
  h[0] = MSG_REFRESH
  h.writeUInt32LE(level, 1)
  h.writeDoubleLE(scale, 5)
  return Buffer.concat([h, ct])
}

export function outputMessage(ct: Uint8Array): Buffer {
  return Buffer.concat([Buffer.from([MSG_OUTPUT]), ct])
}

export type ServerMessage = { kind: 'refresh'; level: number; scale: number; ct: Buffer } | { kind: 'output'; ct: Buffer }

export function parseServerMessage(b: Buffer): ServerMessage | undefined {
  if (b.length >= 13 && b[0] === MSG_REFRESH) return { kind: 'refresh', level: b.readUInt32LE(1), scale: b.readDoubleLE(5), ct: b.subarray(13) }
  if (b.length >= 1 && b[0] === MSG_OUTPUT) return { kind: 'output', ct: b.subarray(1) }
  return undefined
}
