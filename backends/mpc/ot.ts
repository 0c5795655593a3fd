/**
 * Oblivious transfer for the two-party offline phase, sans-IO (every step produces and consumes
 * Buffers; the caller moves them over its own channel). Roles are fixed as PIC uses them: the
 * **server is the OT-extension sender** (it garbles, so it holds the label pairs), the **client the
 * OT-extension receiver**. Semi-honest security throughout.
 *
 * 1. Base OT: Chou, Orlandi, "The Simplest Protocol for Oblivious Transfer" (LATINCRYPT 2015) over
 *    ristretto255 (RFC 9496, @noble/curves), 128 OTs of 16-byte seeds, with IKNP's role reversal:
 *    the client is the base-OT sender, the server the base-OT receiver with random choices s.
 *      client: a random, A = aG                                   -> server   32 bytes
 *      server: per j < 128, b_j random, B_j = b_j G + s_j A        -> client   128 * 32 = 4096 bytes
 *      client: k0_j = KDF(j, A, B_j, a B_j), k1_j = KDF(j, A, B_j, a B_j - a A)
 *      server: k_{s_j} = KDF(j, A, B_j, b_j A)
 *    KDF = the first 16 bytes of SHA-256("PIC CO15 base OT" || u32be j || A || B_j || point), binding
 *    the index and both points. The client learns nothing about s: B_j is uniform whatever s_j is.
 *    The server knows b_j A, the point of k_{s_j}; the other seed's point differs from it by a^2 G,
 *    which it cannot compute from A = aG (computational Diffie-Hellman, implied by DDH in
 *    ristretto255, with the KDF as a random oracle; Chou and Orlandi's proof). Points from the peer must decode as canonical
 *    ristretto255 encodings and not be the identity, or a ProtocolError is thrown.
 *    Cost: client 130 scalar multiplications (aG, aA, a B_j), server 256 (b_j G, b_j A).
 *
 * 2. OT extension: Ishai, Kilian, Nissim, Petrank, "Extending Oblivious Transfers Efficiently"
 *    (CRYPTO 2003), random OTs, m <= MAX_EXTEND per extend call, any number of calls per session.
 *    G(k) = AES-128-CTR under key k from IV 0 (node:crypto), one stream per base seed that continues
 *    across calls. For the m' = ceil(m / 128) * 128 rows of a call (choices r, padded with zeros):
 *      client: t_j = G(k0_j), u_j = t_j ^ G(k1_j) ^ r (j < 128)    -> server   16 m' bytes
 *      server: q_j = G(k_{s_j}) ^ (s_j * u_j) = t_j ^ s_j r
 *    Read by rows (a 128 x m' bit-matrix transpose), q_i = t_i ^ r_i s. Outputs, OT i of the session
 *    (the counter runs on across calls, so no two OTs of a session share a tweak):
 *      server: m0_i = H(q_i, i), m1_i = H(q_i ^ s, i)     client: m_{r_i} = H(t_i, i)
 *    The server learns nothing about r: u_j = G(k0_j) ^ G(k1_j) ^ r, and it lacks one of the two
 *    seeds (k1_j for s_j = 0, k0_j for s_j = 1), so u_j is pseudorandom to it. The client would need
 *    H(t_i ^ s, i) for the other message, and s is hidden by the base OTs and H correlation robust.
 *    The message u is laid out chunk by chunk (EXT_CHUNK rows each, the last rounded up to 128): per
 *    chunk 128 columns of chunk / 8 bytes. Besides the caller's inputs and outputs, memory is about
 *    64 bytes per chunk row (4 MiB) and the AES buffers (256 KiB), whatever m is.
 *
 *    H is the tweakable circular correlation-robust hash of Guo, Katz, Wang, Yu (IEEE S&P 2020),
 *    H(x, i) = pi(pi(x) ^ i) ^ pi(x) with pi fixed-key AES-128, as gc.ts garbles with; its Section 7
 *    gives it for exactly this use (the IKNP outputs need H correlation robust for the one hidden
 *    offset s, with a distinct tweak per OT). The tweak is the 128-bit block (i mod 2^32, i / 2^32,
 *    0, 0) in 32-bit little-endian words. pi's key is fixed per session:
 *      hashKey = the first 16 bytes of SHA-256("PIC OT hash key" || A || B_0 || ... || B_127),
 *    known to both parties with no extra message, public as the fixed-key model allows, fresh per
 *    session (A and B are fresh randomness of both parties, so neither picks it), which confines the
 *    multi-instance attack of Guo, Katz, Wang, Weng, Yu (CRYPTO 2020) against one global key to the
 *    OTs of one session, as gc.ts's per-garbling keys do; and independent of the PRG keys (distinct
 *    AES keys act as independent permutations).
 *
 *    Output format as the dealer's: server pairs 32 bytes per OT (m0 then m1), client 16 per OT.
 *
 * 3. Products over Z_2^64 from the random OTs (Gilboa, "Two Party RSA Key Generation", CRYPTO 1999):
 *    the client holds x, the server y (n elements each); OT 64 e + j (from one extend call of 64 n OTs
 *    with choice bits choiceBitsOf(x)) carries bit j of x_e. With w0, w1 the first 8 bytes (LE) of
 *    the server's m0, m1 and w the client's of m_{x_j}:
 *      server: d_j = w0 - w1 + y_e 2^j                          -> client   8 bytes per OT, 512 per product
 *      server share h_e = -sum_j w0;   client share g_e = sum_j (w + x_j d_j)
 *    so that g + h = x y mod 2^64 (for x_j = 1 the client gets w1 + d_j = w0 + y 2^j). d_j is y 2^j
 *    masked by w1 - w0, where the client knows only one of w0, w1. A variant with words modulo
 *    2^(64 - j), scaled by 2^j, needs only 64 - j bits of d_j (260 bytes per product instead of 512);
 *    this one sends all 64 bits, as the formula above.
 *
 * Security assumptions: semi-honest parties; DDH in ristretto255 with SHA-256 as a random oracle
 * (base OTs); AES-128 as a PRG (CTR) and as a fixed-key permutation making H tweakable correlation
 * robust (the extension). A malicious client could pick u to learn s (IKNP without the KOS check);
 * malformed sizes and points are rejected, nothing more.
 */
import { createCipheriv, createHash, randomBytes, type Cipher } from 'node:crypto'
import { ristretto255 } from '@noble/curves/ed25519.js'
import { ProtocolError } from './net.js'

/** Base OTs (the IKNP security parameter, the width of a row). */
export const BASE_OTS = 128
/** A ristretto255 point on the wire. */
export const POINT_BYTES = 32
/** A base-OT seed, an OT message. */
export const SEED_BYTES = 16
/** The client's base-OT message (A) and the server's reply (B_0 .. B_127). */
export const BASE_OT_FIRST_BYTES = POINT_BYTES
export const BASE_OT_REPLY_BYTES = BASE_OTS * POINT_BYTES
/** Most OTs one extend call takes. */
export const MAX_EXTEND = 1 << 24
/** Rows per chunk of an extension (a multiple of 128): the working set is about 64 bytes per row. */
export const EXT_CHUNK = 1 << 16

/** Bytes of the client's extension message for m OTs (16 per row, rows rounded up to 128). */
export function iknpMessageBytes(m: number): number {
  return 16 * roundRows(m)
}

const Point = ristretto255.Point
type RPoint = InstanceType<typeof Point>
const ORDER = Point.Fn.ORDER
const KDF_LABEL = Buffer.from('PIC CO15 base OT')
const HASH_KEY_LABEL = Buffer.from('PIC OT hash key')

function roundRows(m: number): number {
  return Math.ceil(m / 128) * 128
}

/** A uniform nonzero scalar: 512 random bits reduced modulo the group order (bias 2^-260). */
function randomScalar(): bigint {
  for (;;) {
    const s = BigInt('0x' + randomBytes(64).toString('hex')) % ORDER
    if (s !== 0n) return s
  }
}

/** A peer's point: a canonical ristretto255 encoding other than the identity. */
function peerPoint(b: Uint8Array, what: string): RPoint {
  let p: RPoint
  try {
    p = Point.fromBytes(b)
  } catch {
    throw new ProtocolError(`malformed ${what}: not a ristretto255 point`)
  }
  if (p.is0()) throw new ProtocolError(`malformed ${what}: the identity point`)
  return p
}

function kdf(j: number, A: Uint8Array, B: Uint8Array, P: RPoint): Buffer {
  const idx = Buffer.alloc(4)
  idx.writeUInt32BE(j)
  return createHash('sha256').update(KDF_LABEL).update(idx).update(A).update(B).update(P.toBytes()).digest().subarray(0, SEED_BYTES)
}

function sessionHashKey(A: Uint8Array, Bs: Uint8Array): Buffer {
  return createHash('sha256').update(HASH_KEY_LABEL).update(A).update(Bs).digest().subarray(0, 16)
}

/** The client's result of the base OTs: both seeds of every base OT and the session's hash key. */
export interface BaseSenderKeys {
  k0: Buffer[]
  k1: Buffer[]
  hashKey: Buffer
}

/** The server's result of the base OTs: its choices s (0 or 1 each), the chosen seeds, the hash key. */
export interface BaseReceiverKeys {
  s: Uint8Array
  k: Buffer[]
  hashKey: Buffer
}

/**
 * Base-OT sender (the client): first() to the server, then finish() on its reply; the keys then feed
 * an IknpReceiver.
 */
export class BaseOtSender {
  private readonly a = randomScalar()
  private readonly A = Point.BASE.multiply(this.a).toBytes()
  private result?: BaseSenderKeys

  /** A = aG, BASE_OT_FIRST_BYTES bytes. */
  first(): Buffer {
    return Buffer.from(this.A)
  }

  /** The seeds from the server's 128 points (BASE_OT_REPLY_BYTES bytes). */
  finish(reply: Buffer): BaseSenderKeys {
    if (this.result) throw new Error('base OTs already finished')
    if (reply.length !== BASE_OT_REPLY_BYTES) throw new ProtocolError(`malformed base-OT reply: expected ${BASE_OT_REPLY_BYTES} bytes, got ${reply.length}`)
    // a (B_j - A) = a B_j - aA: one multiplication per base OT, not two
    const aA = Point.fromBytes(this.A).multiply(this.a)
    const k0: Buffer[] = []
    const k1: Buffer[] = []
    for (let j = 0; j < BASE_OTS; j++) {
      const Bj = reply.subarray(j * POINT_BYTES, (j + 1) * POINT_BYTES)
      const aB = peerPoint(Bj, `base-OT point ${j}`).multiply(this.a)
      k0.push(kdf(j, this.A, Bj, aB))
      k1.push(kdf(j, this.A, Bj, aB.subtract(aA)))
    }
    return (this.result = { k0, k1, hashKey: sessionHashKey(this.A, reply) })
  }

  get keys(): BaseSenderKeys {
    if (!this.result) throw new Error('base OTs not finished')
    return this.result
  }
}

/** Base-OT receiver (the server): reply() to the client's first message; the keys then feed an IknpSender. */
export class BaseOtReceiver {
  private result?: BaseReceiverKeys

  /** The random choice vector s, one 0/1 byte per base OT (IKNP's secret offset). */
  protected choices(): Uint8Array {
    const r = randomBytes(BASE_OTS / 8)
    return Uint8Array.from({ length: BASE_OTS }, (_, j) => (r[j >> 3] >> (j & 7)) & 1)
  }

  /** The 128 points B_j for the client (BASE_OT_REPLY_BYTES bytes). */
  reply(first: Buffer): Buffer {
    if (this.result) throw new Error('base OTs already answered')
    if (first.length !== BASE_OT_FIRST_BYTES) throw new ProtocolError(`malformed base-OT message: expected ${BASE_OT_FIRST_BYTES} bytes, got ${first.length}`)
    const A = peerPoint(first, 'base-OT point A')
    // 128 multiples of one point: a window table for A makes them about 4x faster (window 6 was
    // the fastest, table included, for 128 multiplications)
    A.precompute(6, false)
    const Abytes = A.toBytes()
    const s = this.choices()
    if (s.length !== BASE_OTS || s.some((b) => b > 1)) throw new Error(`base-OT choices must be ${BASE_OTS} bits`)
    const msg = Buffer.alloc(BASE_OT_REPLY_BYTES)
    const k: Buffer[] = []
    for (let j = 0; j < BASE_OTS; j++) {
      const b = randomScalar()
      const bG = Point.BASE.multiply(b)
      // both candidates computed, so the time taken does not depend on s_j
      const cand = [bG, bG.add(A)]
      const Bj = cand[s[j]].toBytes()
      msg.set(Bj, j * POINT_BYTES)
      k.push(kdf(j, Abytes, Bj, A.multiply(b)))
    }
    this.result = { s, k, hashKey: sessionHashKey(Abytes, msg) }
    return msg
  }

  get keys(): BaseReceiverKeys {
    if (!this.result) throw new Error('base OTs not answered')
    return this.result
  }
}

// ---------------------------------------------------------------------------------------------
// the bit-matrix transpose

const M16 = 0x0000ffff
const M8 = 0x00ff00ff
const M4 = 0x0f0f0f0f
const M2 = 0x33333333
const M1 = 0x55555555

/**
 * Rows from columns: `cols` holds 128 bit columns of `rows` bits (rows a multiple of 32), column j
 * at words [j W, (j + 1) W) with W = rows / 32, bit i in word i >>> 5 at bit i & 31; `out` gets the
 * rows, row i at words [4 i, 4 i + 4), bit j in word j >>> 5 at bit j & 31 (so on little-endian
 * platforms row i is the 16 bytes of bits j = 0 .. 127, LSB first).
 *
 * Block by block of 32 x 32 bits: the block of columns 32 k .. 32 k + 31 and rows 32 w .. 32 w + 31
 * is 32 strided words a_c, transposed (bit b of a_c to bit c of a_b) and stored as word k of 32 rows.
 * The transpose swaps the off-diagonal quadrants (the high half of a_k with the low half of
 * a_(k + 16)), then, the same way, the quadrants of every quadrant: 5 rounds of 16 masked swaps
 * (Hacker's Delight, section 7-3). Unrolled over 32 locals, it runs in about half the time of the
 * loop over a scratch array (13 against 24 ms per 2^20 rows, Node 20).
 */
export function transposeColumns(cols: Uint32Array, rows: number, out: Uint32Array): void {
  const W = rows >>> 5
  if (rows !== W * 32 || cols.length < 128 * W || out.length < 4 * rows) throw new RangeError(`transposeColumns: ${rows} rows do not fit`)
  let t = 0
  for (let w = 0; w < W; w++)
    for (let k = 0; k < 4; k++) {
      const p = 32 * k * W + w
      const o = 128 * w + k
      // a_c: column 32 k + c, the bits of rows 32 w .. 32 w + 31
      let a0 = cols[p], a1 = cols[p + W], a2 = cols[p + 2 * W], a3 = cols[p + 3 * W]
      let a4 = cols[p + 4 * W], a5 = cols[p + 5 * W], a6 = cols[p + 6 * W], a7 = cols[p + 7 * W]
      let a8 = cols[p + 8 * W], a9 = cols[p + 9 * W], a10 = cols[p + 10 * W], a11 = cols[p + 11 * W]
      let a12 = cols[p + 12 * W], a13 = cols[p + 13 * W], a14 = cols[p + 14 * W], a15 = cols[p + 15 * W]
      let a16 = cols[p + 16 * W], a17 = cols[p + 17 * W], a18 = cols[p + 18 * W], a19 = cols[p + 19 * W]
      let a20 = cols[p + 20 * W], a21 = cols[p + 21 * W], a22 = cols[p + 22 * W], a23 = cols[p + 23 * W]
      let a24 = cols[p + 24 * W], a25 = cols[p + 25 * W], a26 = cols[p + 26 * W], a27 = cols[p + 27 * W]
      let a28 = cols[p + 28 * W], a29 = cols[p + 29 * W], a30 = cols[p + 30 * W], a31 = cols[p + 31 * W]
      // the high 16 bits of each 32-bit group of a_k with the low 16 of a_(k + 16)
      t = ((a0 >>> 16) ^ a16) & M16; a0 ^= t << 16; a16 ^= t; t = ((a1 >>> 16) ^ a17) & M16; a1 ^= t << 16; a17 ^= t
      t = ((a2 >>> 16) ^ a18) & M16; a2 ^= t << 16; a18 ^= t; t = ((a3 >>> 16) ^ a19) & M16; a3 ^= t << 16; a19 ^= t
      t = ((a4 >>> 16) ^ a20) & M16; a4 ^= t << 16; a20 ^= t; t = ((a5 >>> 16) ^ a21) & M16; a5 ^= t << 16; a21 ^= t
      t = ((a6 >>> 16) ^ a22) & M16; a6 ^= t << 16; a22 ^= t; t = ((a7 >>> 16) ^ a23) & M16; a7 ^= t << 16; a23 ^= t
      t = ((a8 >>> 16) ^ a24) & M16; a8 ^= t << 16; a24 ^= t; t = ((a9 >>> 16) ^ a25) & M16; a9 ^= t << 16; a25 ^= t
      t = ((a10 >>> 16) ^ a26) & M16; a10 ^= t << 16; a26 ^= t; t = ((a11 >>> 16) ^ a27) & M16; a11 ^= t << 16; a27 ^= t
      t = ((a12 >>> 16) ^ a28) & M16; a12 ^= t << 16; a28 ^= t; t = ((a13 >>> 16) ^ a29) & M16; a13 ^= t << 16; a29 ^= t
      t = ((a14 >>> 16) ^ a30) & M16; a14 ^= t << 16; a30 ^= t; t = ((a15 >>> 16) ^ a31) & M16; a15 ^= t << 16; a31 ^= t
      // the high 8 bits of each 16-bit group of a_k with the low 8 of a_(k + 8)
      t = ((a0 >>> 8) ^ a8) & M8; a0 ^= t << 8; a8 ^= t; t = ((a1 >>> 8) ^ a9) & M8; a1 ^= t << 8; a9 ^= t
      t = ((a2 >>> 8) ^ a10) & M8; a2 ^= t << 8; a10 ^= t; t = ((a3 >>> 8) ^ a11) & M8; a3 ^= t << 8; a11 ^= t
      t = ((a4 >>> 8) ^ a12) & M8; a4 ^= t << 8; a12 ^= t; t = ((a5 >>> 8) ^ a13) & M8; a5 ^= t << 8; a13 ^= t
      t = ((a6 >>> 8) ^ a14) & M8; a6 ^= t << 8; a14 ^= t; t = ((a7 >>> 8) ^ a15) & M8; a7 ^= t << 8; a15 ^= t
      t = ((a16 >>> 8) ^ a24) & M8; a16 ^= t << 8; a24 ^= t; t = ((a17 >>> 8) ^ a25) & M8; a17 ^= t << 8; a25 ^= t
      t = ((a18 >>> 8) ^ a26) & M8; a18 ^= t << 8; a26 ^= t; t = ((a19 >>> 8) ^ a27) & M8; a19 ^= t << 8; a27 ^= t
      t = ((a20 >>> 8) ^ a28) & M8; a20 ^= t << 8; a28 ^= t; t = ((a21 >>> 8) ^ a29) & M8; a21 ^= t << 8; a29 ^= t
      t = ((a22 >>> 8) ^ a30) & M8; a22 ^= t << 8; a30 ^= t; t = ((a23 >>> 8) ^ a31) & M8; a23 ^= t << 8; a31 ^= t
      // the high 4 bits of each 8-bit group of a_k with the low 4 of a_(k + 4)
      t = ((a0 >>> 4) ^ a4) & M4; a0 ^= t << 4; a4 ^= t; t = ((a1 >>> 4) ^ a5) & M4; a1 ^= t << 4; a5 ^= t
      t = ((a2 >>> 4) ^ a6) & M4; a2 ^= t << 4; a6 ^= t; t = ((a3 >>> 4) ^ a7) & M4; a3 ^= t << 4; a7 ^= t
      t = ((a8 >>> 4) ^ a12) & M4; a8 ^= t << 4; a12 ^= t; t = ((a9 >>> 4) ^ a13) & M4; a9 ^= t << 4; a13 ^= t
      t = ((a10 >>> 4) ^ a14) & M4; a10 ^= t << 4; a14 ^= t; t = ((a11 >>> 4) ^ a15) & M4; a11 ^= t << 4; a15 ^= t
      t = ((a16 >>> 4) ^ a20) & M4; a16 ^= t << 4; a20 ^= t; t = ((a17 >>> 4) ^ a21) & M4; a17 ^= t << 4; a21 ^= t
      t = ((a18 >>> 4) ^ a22) & M4; a18 ^= t << 4; a22 ^= t; t = ((a19 >>> 4) ^ a23) & M4; a19 ^= t << 4; a23 ^= t
      t = ((a24 >>> 4) ^ a28) & M4; a24 ^= t << 4; a28 ^= t; t = ((a25 >>> 4) ^ a29) & M4; a25 ^= t << 4; a29 ^= t
      t = ((a26 >>> 4) ^ a30) & M4; a26 ^= t << 4; a30 ^= t; t = ((a27 >>> 4) ^ a31) & M4; a27 ^= t << 4; a31 ^= t
      // the high 2 bits of each 4-bit group of a_k with the low 2 of a_(k + 2)
      t = ((a0 >>> 2) ^ a2) & M2; a0 ^= t << 2; a2 ^= t; t = ((a1 >>> 2) ^ a3) & M2; a1 ^= t << 2; a3 ^= t
      t = ((a4 >>> 2) ^ a6) & M2; a4 ^= t << 2; a6 ^= t; t = ((a5 >>> 2) ^ a7) & M2; a5 ^= t << 2; a7 ^= t
      t = ((a8 >>> 2) ^ a10) & M2; a8 ^= t << 2; a10 ^= t; t = ((a9 >>> 2) ^ a11) & M2; a9 ^= t << 2; a11 ^= t
      t = ((a12 >>> 2) ^ a14) & M2; a12 ^= t << 2; a14 ^= t; t = ((a13 >>> 2) ^ a15) & M2; a13 ^= t << 2; a15 ^= t
      t = ((a16 >>> 2) ^ a18) & M2; a16 ^= t << 2; a18 ^= t; t = ((a17 >>> 2) ^ a19) & M2; a17 ^= t << 2; a19 ^= t
      t = ((a20 >>> 2) ^ a22) & M2; a20 ^= t << 2; a22 ^= t; t = ((a21 >>> 2) ^ a23) & M2; a21 ^= t << 2; a23 ^= t
      t = ((a24 >>> 2) ^ a26) & M2; a24 ^= t << 2; a26 ^= t; t = ((a25 >>> 2) ^ a27) & M2; a25 ^= t << 2; a27 ^= t
      t = ((a28 >>> 2) ^ a30) & M2; a28 ^= t << 2; a30 ^= t; t = ((a29 >>> 2) ^ a31) & M2; a29 ^= t << 2; a31 ^= t
      // the high 1 bits of each 2-bit group of a_k with the low 1 of a_(k + 1)
      t = ((a0 >>> 1) ^ a1) & M1; a0 ^= t << 1; a1 ^= t; t = ((a2 >>> 1) ^ a3) & M1; a2 ^= t << 1; a3 ^= t
      t = ((a4 >>> 1) ^ a5) & M1; a4 ^= t << 1; a5 ^= t; t = ((a6 >>> 1) ^ a7) & M1; a6 ^= t << 1; a7 ^= t
      t = ((a8 >>> 1) ^ a9) & M1; a8 ^= t << 1; a9 ^= t; t = ((a10 >>> 1) ^ a11) & M1; a10 ^= t << 1; a11 ^= t
      t = ((a12 >>> 1) ^ a13) & M1; a12 ^= t << 1; a13 ^= t; t = ((a14 >>> 1) ^ a15) & M1; a14 ^= t << 1; a15 ^= t
      t = ((a16 >>> 1) ^ a17) & M1; a16 ^= t << 1; a17 ^= t; t = ((a18 >>> 1) ^ a19) & M1; a18 ^= t << 1; a19 ^= t
      t = ((a20 >>> 1) ^ a21) & M1; a20 ^= t << 1; a21 ^= t; t = ((a22 >>> 1) ^ a23) & M1; a22 ^= t << 1; a23 ^= t
      t = ((a24 >>> 1) ^ a25) & M1; a24 ^= t << 1; a25 ^= t; t = ((a26 >>> 1) ^ a27) & M1; a26 ^= t << 1; a27 ^= t
      t = ((a28 >>> 1) ^ a29) & M1; a28 ^= t << 1; a29 ^= t; t = ((a30 >>> 1) ^ a31) & M1; a30 ^= t << 1; a31 ^= t
      // a_b: word k of row 32 w + b
      out[o] = a0; out[o + 4] = a1; out[o + 8] = a2; out[o + 12] = a3
      out[o + 16] = a4; out[o + 20] = a5; out[o + 24] = a6; out[o + 28] = a7
      out[o + 32] = a8; out[o + 36] = a9; out[o + 40] = a10; out[o + 44] = a11
      out[o + 48] = a12; out[o + 52] = a13; out[o + 56] = a14; out[o + 60] = a15
      out[o + 64] = a16; out[o + 68] = a17; out[o + 72] = a18; out[o + 76] = a19
      out[o + 80] = a20; out[o + 84] = a21; out[o + 88] = a22; out[o + 92] = a23
      out[o + 96] = a24; out[o + 100] = a25; out[o + 104] = a26; out[o + 108] = a27
      out[o + 112] = a28; out[o + 116] = a29; out[o + 120] = a30; out[o + 124] = a31
    }
}

// ---------------------------------------------------------------------------------------------
// the hash

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1
/** AES blocks per cipher call (node:crypto's ECB is fastest from about 64 KiB per call). */
const AES_BATCH = 8192

function ecb(key: Buffer): Cipher {
  const c = createCipheriv('aes-128-ecb', key, null)
  c.setAutoPadding(false)
  return c
}

/** A zero-filled Buffer on its own ArrayBuffer (so its lane views need no copy). */
function alignedBuffer(n: number): Buffer {
  return Buffer.from(new ArrayBuffer(n))
}

/** The signed 64-bit lanes of b, a view when b is 8-byte aligned, else a copy. */
function lanes(b: Uint8Array): BigInt64Array {
  if ((b.byteOffset & 7) === 0) return new BigInt64Array(b.buffer, b.byteOffset, b.length >>> 3)
  const c = new BigInt64Array(b.length >>> 3)
  new Uint8Array(c.buffer).set(b)
  return c
}

function bytesOf(x: BigInt64Array | Uint32Array): Uint8Array {
  return new Uint8Array(x.buffer, x.byteOffset, x.byteLength)
}

/**
 * [running tweak, 1]. The hash loops work on 64-bit lanes (BigInt64Array), which TurboFan compiles
 * to machine XORs and adds with no BigInt allocated, as gc.ts's kernels do; a BigInt kept in a
 * local or passed as an argument would not be, so the constants live in this array.
 */
const TW = new BigInt64Array(2)

/**
 * out[2 o + 2 q ..] = H(X block q, i) for q < blocks, with i = first + q (perOt 1, the receiver's
 * labels) or first + q / 2 rounded down (perOt 2, the sender's pairs: m0 and m1 of OT i share its
 * tweak). The tweak block is (i, 0) as two little-endian 64-bit lanes. H(x, i) = pi(pi(x) ^ i) ^
 * pi(x) = Q ^ P ^ i with P = pi(x) ^ i and Q = pi(P): two cipher calls per batch of AES_BATCH blocks.
 */
function tccr(pi: Cipher, X: Uint8Array, blocks: number, first: number, perOt: 1 | 2, out: BigInt64Array, o: number): void {
  const T = TW
  for (let b0 = 0; b0 < blocks; b0 += AES_BATCH) {
    const nb = Math.min(AES_BATCH, blocks - b0) // AES_BATCH is even: a pair never straddles batches
    const P = lanes(pi.update(X.subarray(16 * b0, 16 * (b0 + nb))))
    const i0 = BigInt(first + b0 / perOt)
    const step = 2 * perOt // lanes per OT
    T[0] = i0
    T[1] = 1n
    for (let q = 0; q < 2 * nb; q += step) {
      P[q] ^= T[0]
      if (perOt === 2) P[q + 2] ^= T[0]
      T[0] = T[0] + T[1]
    }
    const Q = lanes(pi.update(bytesOf(P)))
    T[0] = i0
    for (let q = 0, d = 2 * (o + b0); q < 2 * nb; q += step, d += step) {
      out[d] = Q[q] ^ P[q] ^ T[0]
      out[d + 1] = Q[q + 1] ^ P[q + 1]
      if (perOt === 2) {
        out[d + 2] = Q[q + 2] ^ P[q + 2] ^ T[0]
        out[d + 3] = Q[q + 3] ^ P[q + 3]
      }
      T[0] = T[0] + T[1]
    }
  }
}

// ---------------------------------------------------------------------------------------------
// IKNP extension

const ZEROS = Buffer.alloc(EXT_CHUNK / 8)

function ctr(key: Buffer): Cipher {
  return createCipheriv('aes-128-ctr', key, Buffer.alloc(16))
}

function checkSeeds(k: readonly Buffer[], what: string): void {
  if (k.length !== BASE_OTS || k.some((b) => !Buffer.isBuffer(b) || b.length !== SEED_BYTES)) throw new RangeError(`${what}: expected ${BASE_OTS} seeds of ${SEED_BYTES} bytes`)
}

function checkHashKey(key: Buffer): void {
  if (!Buffer.isBuffer(key) || key.length !== 16) throw new RangeError('OT hash key must be 16 bytes')
}

function checkCount(m: number): void {
  if (!Number.isInteger(m) || m < 0 || m > MAX_EXTEND) throw new RangeError(`an extension takes 0 to ${MAX_EXTEND} OTs, got ${m}`)
}

/** Working memory of one chunk (about 32 bytes per row; the sender's hash input another 32). */
class Scratch {
  /** The 128 columns, as words (the transpose) and as 64-bit lanes (the XOR loops). */
  readonly cols = new Uint32Array(128 * (EXT_CHUNK / 32))
  readonly colLanes = new BigInt64Array(this.cols.buffer)
  readonly colBytes = new Uint8Array(this.cols.buffer)
  readonly rows = new Uint32Array(4 * EXT_CHUNK)
  readonly rowLanes = new BigInt64Array(this.rows.buffer)
  /** One column: the receiver's packed choices, the sender's copy of a column of u. */
  readonly col = new Uint32Array(EXT_CHUNK / 32)
  readonly colIn = new BigInt64Array(this.col.buffer)
  readonly colInBytes = new Uint8Array(this.col.buffer)
}

/** The chunks of a call of m OTs: [first row, real rows, padded rows]. */
function* chunks(m: number): Generator<[number, number, number]> {
  for (let c = 0; c < m; c += EXT_CHUNK) {
    const real = Math.min(EXT_CHUNK, m - c)
    yield [c, real, roundRows(real)]
  }
}

/**
 * The OT-extension receiver (the client): from the base-OT sender's seeds; extend(choices) for each
 * batch, the server calling extend on the messages in the same order (the OT counter, the hash's
 * tweak, and the PRG streams advance alike on both sides).
 */
export class IknpReceiver {
  private readonly g0: Cipher[]
  private readonly g1: Cipher[]
  private readonly pi: Cipher
  private readonly scratch = new Scratch()
  /** OTs of this session so far: the next OT's tweak. */
  private count = 0

  constructor(base: BaseOtSender | BaseSenderKeys) {
    const keys = base instanceof BaseOtSender ? base.keys : base
    checkSeeds(keys.k0, 'IKNP receiver')
    checkSeeds(keys.k1, 'IKNP receiver')
    checkHashKey(keys.hashKey)
    if (!LITTLE_ENDIAN) throw new Error('OT extension needs a little-endian platform')
    this.g0 = keys.k0.map(ctr)
    this.g1 = keys.k1.map(ctr)
    this.pi = ecb(keys.hashKey)
  }

  /** The next `bytes` bytes of G(k_which_j). */
  protected expand(j: number, which: 0 | 1, bytes: number): Buffer {
    return (which ? this.g1 : this.g0)[j].update(ZEROS.subarray(0, bytes))
  }

  /**
   * Random OTs with the given choices (one byte per OT, 0 or 1): the message u for the server
   * (iknpMessageBytes(m) bytes) and the chosen messages m_{r_i}, 16 bytes each.
   */
  extend(choices: Uint8Array): { u: Buffer; labels: Buffer } {
    const m = choices.length
    checkCount(m)
    // checked before any stream moves, so a refused call leaves the session in step with the server
    let bad = 0
    for (let i = 0; i < m; i++) bad |= choices[i]
    if (bad > 1) throw new RangeError('choice bits must be 0 or 1')
    const u = alignedBuffer(iknpMessageBytes(m))
    const labels = alignedBuffer(16 * m)
    const U = lanes(u)
    const out = lanes(labels)
    const S = this.scratch
    const C = S.colLanes
    const r = S.col
    const rl = S.colIn
    for (const [c, real, rows] of chunks(m)) {
      const bytes = rows >>> 3
      const L = rows >>> 6 // lanes per column
      r.fill(0, 0, rows >>> 5)
      for (let i = 0; i < real; i++) r[i >>> 5] |= choices[c + i] << (i & 31)
      const base = 2 * c // the chunk's first lane in u (16 bytes per row before it): 128 columns of L lanes
      for (let j = 0; j < BASE_OTS; j++) {
        S.colBytes.set(this.expand(j, 0, bytes), j * bytes)
        const g1 = lanes(this.expand(j, 1, bytes))
        for (let w = 0, t = j * L, o = base + j * L; w < L; w++) U[o + w] = C[t + w] ^ g1[w] ^ rl[w]
      }
      transposeColumns(S.cols, rows, S.rows)
      tccr(this.pi, bytesOf(S.rows), real, this.count + c, 1, out, c)
    }
    this.count += m
    return { u, labels }
  }
}

/** MASK[b]: the lane of b ones (0 or all ones), to apply s_j without a branch. */
const MASK = BigInt64Array.of(0n, -1n)

/**
 * The OT-extension sender (the server): from the base-OT receiver's choices and seeds; extend(u, m)
 * with the client's message for its extend call of m OTs (m known to the server from the schedule,
 * never from the peer).
 */
export class IknpSender {
  private readonly g: Cipher[]
  private readonly s: Uint8Array
  /** s as a row: two lanes. */
  private readonly sLanes = new BigInt64Array(2)
  private readonly pi: Cipher
  private readonly scratch = new Scratch()
  /** The hash inputs of a chunk: q_i, q_i ^ s per row. */
  private readonly pairIn = new BigInt64Array(4 * EXT_CHUNK)
  private count = 0

  constructor(base: BaseOtReceiver | BaseReceiverKeys) {
    const keys = base instanceof BaseOtReceiver ? base.keys : base
    checkSeeds(keys.k, 'IKNP sender')
    checkHashKey(keys.hashKey)
    if (keys.s.length !== BASE_OTS || keys.s.some((b) => b > 1)) throw new RangeError(`IKNP sender: expected ${BASE_OTS} choice bits`)
    if (!LITTLE_ENDIAN) throw new Error('OT extension needs a little-endian platform')
    this.s = Uint8Array.from(keys.s)
    const sw = new Uint32Array(this.sLanes.buffer)
    for (let j = 0; j < BASE_OTS; j++) sw[j >>> 5] |= this.s[j] << (j & 31)
    this.g = keys.k.map(ctr)
    this.pi = ecb(keys.hashKey)
  }

  /** Pairs (m0_i, m1_i) of m random OTs, 32 bytes per OT, from the client's message u for them. */
  extend(u: Buffer, m: number): Buffer {
    checkCount(m)
    if (!Buffer.isBuffer(u) || u.length !== iknpMessageBytes(m)) throw new ProtocolError(`malformed OT extension: expected ${iknpMessageBytes(m)} bytes, got ${u.length}`)
    const pairs = alignedBuffer(32 * m)
    const out = lanes(pairs)
    const S = this.scratch
    const C = S.colLanes
    const ul = S.colIn
    const X = this.pairIn
    const sl = this.sLanes
    for (const [c, real, rows] of chunks(m)) {
      const bytes = rows >>> 3
      const L = rows >>> 6
      for (let j = 0; j < BASE_OTS; j++) {
        S.colBytes.set(this.g[j].update(ZEROS.subarray(0, bytes)), j * bytes)
        // the column of u, copied to aligned scratch (u may sit anywhere in a frame)
        S.colInBytes.set(u.subarray(16 * c + j * bytes, 16 * c + (j + 1) * bytes))
        const sj = this.s[j]
        for (let w = 0, t = j * L; w < L; w++) C[t + w] ^= ul[w] & MASK[sj]
      }
      transposeColumns(S.cols, rows, S.rows)
      const R = S.rowLanes
      for (let i = 0, p = 0, q = 0; i < real; i++, p += 4, q += 2) {
        X[p] = R[q]
        X[p + 1] = R[q + 1]
        X[p + 2] = R[q] ^ sl[0]
        X[p + 3] = R[q + 1] ^ sl[1]
      }
      tccr(this.pi, bytesOf(X), 2 * real, this.count + c, 2, out, 2 * c)
    }
    this.count += m
    return pairs
  }
}

// ---------------------------------------------------------------------------------------------
// Gilboa products

/** BITS[b] = b: a BigInt constant from an array, so the loop stays lowered to machine words. */
const BITS = BigUint64Array.of(0n, 1n)

/** The unsigned 64-bit lanes of b, a view when b is 8-byte aligned, else a copy. */
function ulanes(b: Buffer): BigUint64Array {
  if ((b.byteOffset & 7) === 0) return new BigUint64Array(b.buffer, b.byteOffset, b.length >>> 3)
  const c = new BigUint64Array(b.length >>> 3)
  new Uint8Array(c.buffer).set(b)
  return c
}

/** The client's choice bits for products with x: bit j of x_e at 64 e + j (one byte each). */
export function choiceBitsOf(x: BigUint64Array): Uint8Array {
  if (!LITTLE_ENDIAN) throw new Error('Gilboa products need a little-endian platform')
  const X = new Uint32Array(x.buffer, x.byteOffset, 2 * x.length)
  const out = new Uint8Array(64 * x.length)
  for (let e = 0, o = 0; e < x.length; e++) {
    const lo = X[2 * e]
    const hi = X[2 * e + 1]
    for (let j = 0; j < 32; j++) out[o++] = (lo >>> j) & 1
    for (let j = 0; j < 32; j++) out[o++] = (hi >>> j) & 1
  }
  return out
}

/**
 * The server's half of n products: from the pairs of 64 n random OTs (the client chose the bits of
 * its x) and its y, the message d for the client (8 bytes per OT) and its share h = -sum_j w0.
 */
export function gilboaSender(pairs: Buffer, y: BigUint64Array): { msg: Buffer; share: BigUint64Array } {
  const n = y.length
  if (pairs.length !== 32 * 64 * n) throw new RangeError(`gilboaSender: ${n} products need ${32 * 64 * n} bytes of OT pairs, got ${pairs.length}`)
  const P = ulanes(pairs) // OT k: w0 at lane 4 k, w1 at lane 4 k + 2
  const D = new BigUint64Array(64 * n)
  const share = new BigUint64Array(n)
  // acc = [y_e 2^j, -sum w0]: BigInts kept in a typed array, not in locals, stay machine words (a
  // local y_e times 2^j from a table ran 1.5-2.5x slower on Node 20)
  const acc = new BigUint64Array(2)
  for (let e = 0, k = 0; e < n; e++) {
    acc[0] = y[e]
    acc[1] = 0n
    for (let j = 0; j < 64; j++, k++) {
      D[k] = P[4 * k] - P[4 * k + 2] + acc[0]
      acc[1] = acc[1] - P[4 * k]
      acc[0] = acc[0] + acc[0]
    }
    share[e] = acc[1]
  }
  return { msg: Buffer.from(D.buffer), share }
}

/**
 * The client's half of n products: from its labels of the 64 n random OTs (choice bits
 * choiceBitsOf(x)), x and the server's message, its share g = sum_j (w + x_j d_j).
 */
export function gilboaReceiver(labels: Buffer, x: BigUint64Array, msg: Buffer): BigUint64Array {
  const n = x.length
  if (labels.length !== 16 * 64 * n) throw new RangeError(`gilboaReceiver: ${n} products need ${16 * 64 * n} bytes of OT labels, got ${labels.length}`)
  if (!Buffer.isBuffer(msg) || msg.length !== 8 * 64 * n) throw new ProtocolError(`malformed product message: expected ${8 * 64 * n} bytes, got ${msg.length}`)
  if (!LITTLE_ENDIAN) throw new Error('Gilboa products need a little-endian platform')
  const L = ulanes(labels) // OT k: w at lane 2 k
  const D = ulanes(msg)
  const X = new Uint32Array(x.buffer, x.byteOffset, 2 * n)
  const g = new BigUint64Array(n)
  for (let e = 0, k = 0; e < n; e++) {
    for (let h = 0; h < 2; h++) {
      const word = X[2 * e + h]
      // x_j d_j as a product with 0 or 1: no branch on the client's bits
      for (let j = 0; j < 32; j++, k++) g[e] += L[2 * k] + D[k] * BITS[(word >>> j) & 1]
    }
  }
  return g
}
