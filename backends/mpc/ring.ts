/**
 * Arithmetic in the ring Z_2^64 for additive secret sharing: fixed-point encoding, SecureML local
 * truncation, sparse matrix-vector products, and a seeded AES-CTR pseudo-random generator. Ring
 * elements live in BigUint64Array, whose stores reduce modulo 2^64 by themselves.
 */
import { createCipheriv, createHash, randomBytes } from 'node:crypto'
import { ProtocolError } from './net.js'

/** Encode a real at `frac` fractional bits as a ring element (two's complement). */
export function encode(v: number, frac: number): bigint {
  return BigInt.asUintN(64, BigInt(Math.round(v * 2 ** frac)))
}

/** Decode a ring element as a signed fixed-point number with `frac` fractional bits. */
export function decode(u: bigint, frac: number): number {
  return Number(BigInt.asIntN(64, u)) / 2 ** frac
}

export function encodeArray(v: ArrayLike<number>, frac: number): BigUint64Array {
  const out = new BigUint64Array(v.length)
  for (let i = 0; i < v.length; i++) out[i] = encode(v[i], frac)
  return out
}

export function decodeArray(u: BigUint64Array, frac: number): Float64Array {
  const out = new Float64Array(u.length)
  for (let i = 0; i < u.length; i++) out[i] = decode(u[i], frac)
  return out
}

export function add(a: BigUint64Array, b: BigUint64Array): BigUint64Array {
  const out = new BigUint64Array(a.length)
  for (let i = 0; i < a.length; i++) out[i] = a[i] + b[i]
  return out
}

export function sub(a: BigUint64Array, b: BigUint64Array): BigUint64Array {
  const out = new BigUint64Array(a.length)
  for (let i = 0; i < a.length; i++) out[i] = a[i] - b[i]
  return out
}

/**
 * SecureML local truncation of one party's share by `bits`: party 0 shifts its share, party 1
 * shifts the negation of its share and negates back. The reconstructed result is x >> bits up to
 * one unit in the last place, except with probability about 2^(k + 1 - 64) for |x| < 2^k.
 */
export function truncShare(x: BigUint64Array, bits: number, party: 0 | 1): BigUint64Array {
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

/** A sparse matrix over the ring in compressed-row form; values are small signed integers. */
export interface SparseMatrix {
  rows: number
  cols: number
  rowPtr: Int32Array
  colIdx: Int32Array
  values: BigInt64Array
}

/** y = M x (+ y0 when given), all modulo 2^64. */
export function matVec(m: SparseMatrix, x: BigUint64Array, y0?: BigUint64Array): BigUint64Array {
  if (x.length !== m.cols) throw new Error(`matrix has ${m.cols} columns, vector ${x.length} elements`)
  const y = new BigUint64Array(m.rows)
  for (let r = 0; r < m.rows; r++) {
    let acc = y0 ? y0[r] : 0n
    for (let k = m.rowPtr[r]; k < m.rowPtr[r + 1]; k++) acc += m.values[k] * x[m.colIdx[k]]
    y[r] = acc
  }
  return y
}

export function matrixToBytes(m: SparseMatrix): Buffer {
  const nnz = m.values.length
  const buf = Buffer.alloc(12 + 4 * (m.rows + 1) + 4 * nnz + 8 * nnz)
  buf.writeUInt32LE(m.rows, 0)
  buf.writeUInt32LE(m.cols, 4)
  buf.writeUInt32LE(nnz, 8)
  let o = 12
  Buffer.from(m.rowPtr.buffer, m.rowPtr.byteOffset, m.rowPtr.byteLength).copy(buf, o)
  o += 4 * (m.rows + 1)
  Buffer.from(m.colIdx.buffer, m.colIdx.byteOffset, m.colIdx.byteLength).copy(buf, o)
  o += 4 * nnz
  Buffer.from(m.values.buffer, m.values.byteOffset, m.values.byteLength).copy(buf, o)
  return buf
}

/** Parse a matrix; throws on any inconsistency (the bytes come from the network). */
export function matrixFromBytes(buf: Buffer, offset: number): { m: SparseMatrix; next: number } {
  if (buf.length < offset + 12) throw new ProtocolError('truncated matrix header')
  const rows = buf.readUInt32LE(offset)
  const cols = buf.readUInt32LE(offset + 4)
  const nnz = buf.readUInt32LE(offset + 8)
  const size = 12 + 4 * (rows + 1) + 12 * nnz
  if (buf.length < offset + size) throw new ProtocolError('truncated matrix')
  let o = offset + 12
  const rowPtr = new Int32Array(rows + 1)
  Buffer.from(rowPtr.buffer).set(buf.subarray(o, o + 4 * (rows + 1)))
  o += 4 * (rows + 1)
  const colIdx = new Int32Array(nnz)
  Buffer.from(colIdx.buffer).set(buf.subarray(o, o + 4 * nnz))
  o += 4 * nnz
  const values = new BigInt64Array(nnz)
  Buffer.from(values.buffer).set(buf.subarray(o, o + 8 * nnz))
  o += 8 * nnz
  if (rowPtr[0] !== 0 || rowPtr[rows] !== nnz) throw new ProtocolError('malformed matrix row pointers')
  for (let r = 0; r < rows; r++) if (rowPtr[r + 1] < rowPtr[r]) throw new ProtocolError('malformed matrix row pointers')
  for (let k = 0; k < nnz; k++) if (colIdx[k] < 0 || colIdx[k] >= cols) throw new ProtocolError('malformed matrix column index')
  return { m: { rows, cols, rowPtr, colIdx, values }, next: o }
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
