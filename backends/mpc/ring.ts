/**
 * Arithmetic in the ring Z_2^64 for additive secret sharing: fixed-point encoding, SecureML local
 * truncation, the limb split and recombination linear layers use, and a seeded AES-CTR generator. Ring
 * elements live in BigUint64Array, whose stores reduce modulo 2^64 by themselves.
 *
 * The array kernels create no BigInt per element once optimized. Where TurboFan lowers BigInt arithmetic
 * on BigUint64Array elements to 64-bit machine operations (+, -, * and unary - stored straight into
 * a BigUint64Array; Node 20, V8 11.3) the kernels are plain BigInt loops, which beat word kernels
 * (add, sub, gather; the runtime's Beaver products are such loops too). Shifts by a variable count, asUintN / asIntN, and
 * conversions between BigInt and number are not lowered, so truncShare, encodeArray,
 * decodeArray, toLimbs and fromLimbs work on an Int32Array view of the same buffer, element i being
 * the word pair (lo, hi) at (2i, 2i + 1) on little-endian platforms (every platform Node ships for
 * but s390x; see `words`). Their conversions from float64 are exact: every step is an integer
 * operation on 32-bit words or a float64 operation whose exact result is representable.
 * bench/ring.ts measures both kinds. Unless said otherwise a kernel allocates its output and
 * leaves its inputs alone.
 */
import { createCipheriv, createHash, randomBytes } from 'node:crypto'
import { ProtocolError } from './net.js'

const TWO32 = 4294967296
const TWO_M32 = 1 / TWO32
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1

/** The 32-bit words of x: element i's low word at 2i, its high word at 2i + 1. */
function words(x: BigUint64Array): Int32Array {
  if (!LITTLE_ENDIAN) throw new Error('ring kernels need a little-endian platform')
  return new Int32Array(x.buffer, x.byteOffset, 2 * x.length)
}


/** Encode a real at `frac` fractional bits as a ring element (two's complement). */
export function encode(v: number, frac: number): bigint {
  return BigInt.asUintN(64, BigInt(Math.round(v * 2 ** frac)))
}

/** Decode a ring element as a signed fixed-point number with `frac` fractional bits. */
export function decode(u: bigint, frac: number): number {
  return Number(BigInt.asIntN(64, u)) / 2 ** frac
}

/**
 * encode() of every element: the exact two's complement modulo 2^64 of the float64 r =
 * Math.round(v * 2^frac), for any finite r (r is an integer, so r mod 2^32 and floor(r / 2^32) mod
 * 2^32 are what ToInt32 gives on the typed-array stores). Non-finite values throw as encode() does.
 */
export function encodeArray(v: ArrayLike<number>, frac: number): BigUint64Array {
  const n = v.length
  const out = new BigUint64Array(n)
  const O = words(out)
  const s = 2 ** frac
  for (let i = 0; i < n; i++) {
    const r = Math.round(v[i] * s)
    if (r - r !== 0) out[i] = encode(v[i], frac) // NaN or infinite: throws the RangeError encode() throws
    O[2 * i] = r
    O[2 * i + 1] = Math.floor(r * TWO_M32)
  }
  return out
}

/**
 * decode() of every element, bit for bit: hi_signed * 2^32 is exact and adding lo rounds once, so
 * the numerator is the correctly rounded float64 of the signed value, which is what Number() of the
 * BigInt gives; the division by 2^frac is the same operation.
 */
export function decodeArray(u: BigUint64Array, frac: number): Float64Array {
  const n = u.length
  const U = words(u)
  const out = new Float64Array(n)
  const s = 2 ** frac
  for (let i = 0; i < n; i++) out[i] = (U[2 * i + 1] * TWO32 + (U[2 * i] >>> 0)) / s
  return out
}

/**
 * a + b elementwise. A BigInt loop that TurboFan lowers to 64-bit adds; a word kernel is slower,
 * since each of its twice as many typed-array accesses reloads the view's base and length.
 */
export function add(a: BigUint64Array, b: BigUint64Array): BigUint64Array {
  const out = new BigUint64Array(a.length)
  for (let i = 0; i < a.length; i++) out[i] = a[i] + b[i]
  return out
}

/** a * b elementwise, mod 2^64 (a lowered BigInt loop, see add). */
export function mul(a: BigUint64Array, b: BigUint64Array): BigUint64Array {
  const out = new BigUint64Array(a.length)
  for (let i = 0; i < a.length; i++) out[i] = a[i] * b[i]
  return out
}

/** a - b elementwise (a lowered BigInt loop, see add). */
export function sub(a: BigUint64Array, b: BigUint64Array): BigUint64Array {
  const out = new BigUint64Array(a.length)
  for (let i = 0; i < a.length; i++) out[i] = a[i] - b[i]
  return out
}

/** The BigInt truncation, for shift counts the word kernels do not take (negative, fractional). */
export function truncShareBig(x: BigUint64Array, bits: number, party: 0 | 1): BigUint64Array {
  const out = new BigUint64Array(x.length)
  const s = BigInt(bits)
  if (party === 0) for (let i = 0; i < x.length; i++) out[i] = x[i] >> s
  else
    for (let i = 0; i < x.length; i++) {
      const neg = BigInt.asUintN(64, -x[i])
      out[i] = -(neg >> s)
    }
  return out
}

/**
 * SecureML local truncation of one party's share by `bits`: party 0 shifts its share, party 1
 * shifts the negation of its share and negates back. The reconstructed result is x >> bits up to
 * one unit in the last place, except when the integer x0 - x leaves [0, 2^64): with party 0's
 * share x0 uniform, probability exactly |x| / 2^64 (ranges.ts derives it), and then it is off by
 * about 2^(64 - bits).
 */
export function truncShare(x: BigUint64Array, bits: number, party: 0 | 1): BigUint64Array {
  if (!Number.isInteger(bits) || bits < 0) return truncShareBig(x, bits, party)
  const n = x.length
  const out = new BigUint64Array(n)
  if (bits >= 64) return out
  if (bits === 0) {
    out.set(x)
    return out
  }
  const X = words(x)
  const O = words(out)
  if (party === 0) {
    if (bits < 32) {
      const r = 32 - bits
      for (let j = 0; j < 2 * n; j += 2) {
        const h = X[j + 1]
        O[j] = (X[j] >>> bits) | (h << r)
        O[j + 1] = h >>> bits
      }
    } else {
      const q = bits - 32
      for (let j = 0; j < 2 * n; j += 2) O[j] = X[j + 1] >>> q
    }
  } else if (bits < 32) {
    const r = 32 - bits
    for (let j = 0; j < 2 * n; j += 2) {
      // m = -x, t = m >> bits, out = -t
      const xl = X[j]
      const ml = -xl | 0
      const mh = (~X[j + 1] + (xl === 0 ? 1 : 0)) | 0
      const tl = (ml >>> bits) | (mh << r)
      O[j] = -tl | 0
      O[j + 1] = (~(mh >>> bits) + (tl === 0 ? 1 : 0)) | 0
    }
  } else {
    const q = bits - 32
    for (let j = 0; j < 2 * n; j += 2) {
      const xl = X[j]
      const tl = ((~X[j + 1] + (xl === 0 ? 1 : 0)) | 0) >>> q
      O[j] = -tl | 0
      O[j + 1] = tl === 0 ? 0 : -1
    }
  }
  return out
}

function limbCount(what: string, bits: number): number {
  if (!Number.isInteger(bits) || bits < 8 || bits > 32) throw new RangeError(`${what}: limb width ${bits} is not an integer from 8 to 32`)
  return Math.ceil(64 / bits)
}

/**
 * The ceil(64 / bits) unsigned limbs of `bits` bits of every element (the last one narrower when
 * bits does not divide 64), limb-major: limb l of element i, (x_i >> (bits * l)) mod 2^bits, at
 * [l * n + i], as exact integers. For 8 <= bits <= 32.
 */
export function toLimbs(x: BigUint64Array, bits: number): Float64Array {
  const L = limbCount('toLimbs', bits)
  const n = x.length
  const X = words(x)
  const out = new Float64Array(L * n)
  if (bits === 16) {
    // the common width in one pass
    for (let i = 0; i < n; i++) {
      const lo = X[2 * i]
      const hi = X[2 * i + 1]
      out[i] = lo & 0xffff
      out[n + i] = lo >>> 16
      out[2 * n + i] = hi & 0xffff
      out[3 * n + i] = hi >>> 16
    }
    return out
  }
  for (let l = 0; l < L; l++) {
    const p = bits * l
    const w = Math.min(bits, 64 - p)
    const mask = (2 ** w - 1) | 0
    const o = l * n
    if (p + w <= 32) for (let i = 0; i < n; i++) out[o + i] = ((X[2 * i] >>> p) & mask) >>> 0
    else if (p >= 32) {
      const q = p - 32
      for (let i = 0; i < n; i++) out[o + i] = ((X[2 * i + 1] >>> q) & mask) >>> 0
    } else {
      const r = 32 - p
      for (let i = 0; i < n; i++) out[o + i] = (((X[2 * i] >>> p) | (X[2 * i + 1] << r)) & mask) >>> 0
    }
  }
  return out
}

/**
 * sum_l limbs[l * n + i] * 2^(bits * l) mod 2^64 for every i, exactly, where `limbs` holds
 * ceil(64 / bits) limbs per element in the layout toLimbs gives, each an integer (of any sign) below
 * 2^53 in magnitude, such as the result of an integer linear map applied limb by limb in float64.
 * For 8 <= bits <= 32; fromLimbs(toLimbs(x, bits), x.length, bits) is x.
 *
 * A limb v at shift s = 32 q + r contributes v * 2^r to word q. With z = v * 2^(r - 32) (exact: a
 * power-of-two scaling), floor(z) is the part carried to word q + 1 and (z - floor(z)) * 2^32 the
 * part in [0, 2^32) left in word q, both exact. Word 0 sums at most four such parts; word 1 sums
 * the carries (below 2^53 in total for |v| < 2^53) and the parts of the limbs with q = 1, and is
 * reduced modulo 2^32 on the store.
 */
export function fromLimbs(limbs: Float64Array, n: number, bits: number): BigUint64Array {
  const L = limbCount('fromLimbs', bits)
  if (!Number.isInteger(n) || n < 0 || limbs.length !== L * n) throw new RangeError(`fromLimbs: ${limbs.length} limbs are not ${L} limbs of ${n} elements`)
  const out = new BigUint64Array(n)
  const O = words(out)
  if (bits === 16) {
    // the common width, unrolled: shifts 0 and 16 into word 0, 32 and 48 into word 1
    for (let i = 0; i < n; i++) {
      const z0 = limbs[i] * TWO_M32
      const t0 = Math.floor(z0)
      const z1 = limbs[n + i] * 1.52587890625e-5
      const t1 = Math.floor(z1)
      const v2 = limbs[2 * n + i]
      const z3 = limbs[3 * n + i] * 1.52587890625e-5
      const lo = (z0 - t0 + (z1 - t1)) * TWO32
      O[2 * i] = lo
      O[2 * i + 1] = t0 + t1 + (v2 - Math.floor(v2 * TWO_M32) * TWO32) + (z3 - Math.floor(z3)) * TWO32 + Math.floor(lo * TWO_M32)
    }
    return out
  }
  const L0 = Math.ceil(32 / bits) // limbs starting in the low word
  const f = new Float64Array(L) // 2^(r - 32)
  for (let l = 0; l < L; l++) f[l] = 2 ** (l < L0 ? bits * l - 32 : bits * l - 64)
  for (let i = 0; i < n; i++) {
    let lo = 0
    let hi = 0
    for (let l = 0; l < L0; l++) {
      const z = limbs[l * n + i] * f[l]
      const t = Math.floor(z)
      lo += z - t
      hi += t
    }
    for (let l = L0; l < L; l++) {
      const z = limbs[l * n + i] * f[l]
      hi += (z - Math.floor(z)) * TWO32
    }
    lo *= TWO32
    O[2 * i] = lo
    O[2 * i + 1] = hi + Math.floor(lo * TWO_M32)
  }
  return out
}


/** A fresh 16-byte seed from the operating system. */
export function freshSeed(): Buffer {
  return randomBytes(16)
}

/**
 * Deterministic pseudo-random bytes: AES-128-CTR keyed by SHA-256(seed || label). Distinct labels
 * give independent streams from one seed.
 */
export class Prg {
  private readonly key: Buffer
  constructor(seed: Buffer, label: string) {
    this.key = createHash('sha256').update(seed).update(label).digest().subarray(0, 16)
  }
  private counter = 0
  bytes(n: number): Buffer {
    const iv = Buffer.alloc(16)
    iv.writeUInt32BE(this.counter, 0)
    this.counter++
    const c = createCipheriv('aes-128-ctr', this.key, iv)
    return c.update(Buffer.alloc(n))
  }
  ring(n: number): BigUint64Array {
    const b = this.bytes(8 * n)
    return new BigUint64Array(b.buffer, b.byteOffset, n).slice()
  }
  /** n random bits, one per byte (0 or 1). */
  bits(n: number): Uint8Array {
    const b = this.bytes(n)
    for (let i = 0; i < n; i++) b[i] &= 1
    return new Uint8Array(b.buffer, b.byteOffset, n).slice()
  }
}

export function ringToBytes(x: BigUint64Array): Buffer {
  return Buffer.from(x.buffer, x.byteOffset, x.byteLength)
}

export function ringFromBytes(b: Buffer, n: number, what: string): BigUint64Array {
  if (b.length !== 8 * n) throw new ProtocolError(`malformed ${what}: expected ${8 * n} bytes, got ${b.length}`)
  const out = new BigUint64Array(n)
  Buffer.from(out.buffer).set(b)
  return out
}

/** Pack 0/1 bytes into bits (LSB first). */
export function packBits(bits: Uint8Array): Buffer {
  const out = Buffer.alloc(Math.ceil(bits.length / 8))
  for (let i = 0; i < bits.length; i++) if (bits[i]) out[i >> 3] |= 1 << (i & 7)
  return out
}

export function unpackBits(b: Buffer, n: number, what: string): Uint8Array {
  if (b.length !== Math.ceil(n / 8)) throw new ProtocolError(`malformed ${what}: expected ${Math.ceil(n / 8)} bytes, got ${b.length}`)
  const out = new Uint8Array(n)
  for (let i = 0; i < n; i++) out[i] = (b[i >> 3] >> (i & 7)) & 1
  return out
}

/** The elements of v at idx. */
export function gather(v: BigUint64Array, idx: Int32Array): BigUint64Array {
  const out = new BigUint64Array(idx.length)
  for (let i = 0; i < idx.length; i++) out[i] = v[idx[i]]
  return out
}

/** The parts end to end. */
export function concatRing(parts: BigUint64Array[]): BigUint64Array {
  const n = parts.reduce((a, p) => a + p.length, 0)
  const out = new BigUint64Array(n)
  let o = 0
  for (const p of parts) {
    out.set(p, o)
    o += p.length
  }
  return out
}
