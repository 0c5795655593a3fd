/**
 * Oblivious transfer (backends/mpc/ot.ts) against references written here with node:crypto and
 * plain bit loops: the base OTs deliver k_{s_j} and not k_{1-s_j}; the IKNP extension's message u,
 * labels and pairs equal a bit-by-bit re-derivation from the base seeds (AES-128-CTR streams, the
 * transpose read off bit by bit, H(x, i) = pi(pi(x) ^ i) ^ pi(x) with one AES-128-ECB per block and
 * the session key SHA-256 of the transcript), across chunks and calls; on 100,000 random OTs the
 * receiver holds exactly its chosen messages and the pairs' bits are balanced. Two broken variants
 * built here show what the protocol hides: a receiver that skips G(k1) sends u from which the server
 * reads r exactly (the real u agrees with r on half the bits), and a server whose choices s the
 * client knows hands the client both messages (with the real random s, neither guess works).
 * Gilboa products equal x y mod 2^64 in BigInt, edge values included, and the server's message d
 * is fresh for equal inputs. Malformed peer input gives ProtocolError.
 */
import { createCipheriv, createHash, randomBytes } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { ProtocolError } from '../../../backends/mpc/net.js'
import {
  BASE_OT_FIRST_BYTES, BASE_OT_REPLY_BYTES, BASE_OTS, BaseOtReceiver, BaseOtSender, choiceBitsOf, EXT_CHUNK, gilboaReceiver,
  gilboaSender, IknpReceiver, IknpSender, iknpMessageBytes, MAX_EXTEND, transposeColumns,
} from '../../../backends/mpc/ot.js'

const M64 = (1n << 64n) - 1n

/** A whole session: base OTs, then both extension ends. */
function session(receiver: BaseOtReceiver = new BaseOtReceiver()) {
  const bs = new BaseOtSender()
  const first = bs.first()
  const reply = receiver.reply(first)
  bs.finish(reply)
  return { client: bs.keys, server: receiver.keys, first, reply, R: new IknpReceiver(bs), S: new IknpSender(receiver) }
}

function randomChoices(m: number): Uint8Array {
  return Uint8Array.from(randomBytes(m), (b) => b & 1)
}

const bit = (b: Uint8Array, i: number) => (b[i >> 3] >> (i & 7)) & 1

/** The first `bytes` bytes of AES-128-CTR under key from IV 0. */
function stream(key: Buffer, bytes: number): Buffer {
  return createCipheriv('aes-128-ctr', key, Buffer.alloc(16)).update(Buffer.alloc(bytes))
}

function xor(a: Buffer, b: Buffer): Buffer {
  return Buffer.from(a.map((v, i) => v ^ b[i]))
}

/** H(x, i) = pi(pi(x) ^ i) ^ pi(x), pi = AES-128 under key, the tweak block (i, 0) little-endian. */
function hasher(key: Buffer) {
  const c = createCipheriv('aes-128-ecb', key, null)
  c.setAutoPadding(false)
  const pi = (x: Buffer) => c.update(x)
  return (x: Buffer, i: number) => {
    const tw = Buffer.alloc(16)
    tw.writeBigUInt64LE(BigInt(i))
    const p = pi(x)
    return xor(pi(xor(p, tw)), p)
  }
}

/** Row i of 128 columns (bit j of the row: bit `off + i` of column j), 16 bytes. */
function row(cols: Buffer[], off: number, i: number): Buffer {
  const r = Buffer.alloc(16)
  for (let j = 0; j < 128; j++) r[j >> 3] |= bit(cols[j], off + i) << (j & 7)
  return r
}

/** Bit (row i, column j) of an extension message for m OTs: chunk by chunk, 128 columns per chunk. */
function uBit(u: Buffer, m: number, i: number, j: number): number {
  const c = Math.floor(i / EXT_CHUNK) * EXT_CHUNK
  const rows = Math.ceil(Math.min(EXT_CHUNK, m - c) / 128) * 128
  const o = 16 * c + (j * rows) / 8
  return (u[o + ((i - c) >> 3)] >> ((i - c) & 7)) & 1
}

const rows128 = (m: number) => Math.ceil(m / 128) * 128

describe('base OTs (Chou-Orlandi over ristretto255)', () => {
  it('the server gets k_{s_j} for all 128, never k_{1-s_j}; both derive the session hash key from the transcript', () => {
    const { client, server, first, reply } = session()
    expect(first.length).toBe(BASE_OT_FIRST_BYTES)
    expect(reply.length).toBe(BASE_OT_REPLY_BYTES)
    expect(new Set(server.s).size).toBe(2) // both choices occur (fails with probability 2^-127)
    for (let j = 0; j < BASE_OTS; j++) {
      const s = server.s[j]
      expect(server.k[j].equals(s ? client.k1[j] : client.k0[j])).toBe(true)
      expect(server.k[j].equals(s ? client.k0[j] : client.k1[j])).toBe(false)
    }
    expect(new Set([...client.k0, ...client.k1].map((k) => k.toString('hex'))).size).toBe(2 * BASE_OTS)
    const key = createHash('sha256').update('PIC OT hash key').update(first).update(reply).digest().subarray(0, 16)
    expect(client.hashKey.equals(key)).toBe(true)
    expect(server.hashKey.equals(key)).toBe(true)
  })
})

describe('bit-matrix transpose', () => {
  it('equals reading the bits one by one', () => {
    const rows = 384
    const cols = new Uint32Array((128 * rows) / 32)
    const cb = Buffer.from(cols.buffer)
    cb.set(randomBytes(cb.length))
    const out = new Uint32Array(4 * rows)
    transposeColumns(cols, rows, out)
    const ob = Buffer.from(out.buffer)
    for (let i = 0; i < rows; i++)
      for (let j = 0; j < 128; j++) expect(bit(ob, 128 * i + j)).toBe(bit(cb, j * rows + i))
  })
})

describe('IKNP extension', () => {
  it('u, labels and pairs equal a bit-by-bit re-derivation from the base seeds, across chunks and calls', () => {
    const { client, server, R, S } = session()
    const calls = [1000, EXT_CHUNK + 300]
    const bits = calls.reduce((a, m) => a + rows128(m), 0)
    const g0 = client.k0.map((k) => stream(k, bits / 8))
    const g1 = client.k1.map((k) => stream(k, bits / 8))
    const gs = server.k.map((k) => stream(k, bits / 8))
    const H = hasher(client.hashKey)
    const s = Buffer.alloc(16)
    for (let j = 0; j < 128; j++) s[j >> 3] |= server.s[j] << (j & 7)
    let off = 0 // bits of each stream used so far
    let count = 0 // OTs so far: the tweak
    for (const m of calls) {
      const r = randomChoices(m)
      const { u, labels } = R.extend(r)
      const pairs = S.extend(u, m)
      expect(u.length).toBe(iknpMessageBytes(m))
      expect(u.length).toBe(16 * rows128(m))
      expect(labels.length).toBe(16 * m)
      expect(pairs.length).toBe(32 * m)
      let bad = 0
      // q_j = G(k_{s_j}) ^ s_j u_j, column by column from u as sent
      const q = gs.map((g, j) => {
        const col = Buffer.from(g)
        if (server.s[j]) for (let i = 0; i < m; i++) col[(off + i) >> 3] ^= uBit(u, m, i, j) << ((off + i) & 7)
        return col
      })
      for (let i = 0; i < m; i++) {
        for (let j = 0; j < 128; j += 17) if (uBit(u, m, i, j) !== (bit(g0[j], off + i) ^ bit(g1[j], off + i) ^ r[i])) bad++
        if (!labels.subarray(16 * i, 16 * i + 16).equals(H(row(g0, off, i), count + i))) bad++
        const qi = row(q, off, i)
        if (!pairs.subarray(32 * i, 32 * i + 16).equals(H(qi, count + i))) bad++
        if (!pairs.subarray(32 * i + 16, 32 * i + 32).equals(H(xor(qi, s), count + i))) bad++
      }
      expect(bad).toBe(0)
      off += rows128(m)
      count += m
    }
  })

  it('100,000 random OTs: the receiver holds m_{r_i} and not m_{1-r_i}; the pairs bits are balanced', () => {
    const { R, S } = session()
    const m = 100_000
    const r = randomChoices(m)
    const { u, labels } = R.extend(r)
    // the server reads u from anywhere in a frame: at an odd offset here
    const framed = Buffer.alloc(u.length + 1)
    u.copy(framed, 1)
    const pairs = S.extend(framed.subarray(1), m)
    let same = 0
    let other = 0
    for (let i = 0; i < m; i++) {
      const l = labels.subarray(16 * i, 16 * i + 16)
      if (l.equals(pairs.subarray(32 * i + 16 * r[i], 32 * i + 16 * r[i] + 16))) same++
      if (l.equals(pairs.subarray(32 * i + 16 * (1 - r[i]), 32 * i + 16 * (1 - r[i]) + 16))) other++
    }
    expect(same).toBe(m)
    expect(other).toBe(0)
    // every one of the 256 bit positions of (m0, m1) is 1 in about half of the OTs
    const ones = new Int32Array(256)
    for (let i = 0; i < m; i++) for (let b = 0; b < 256; b++) ones[b] += bit(pairs, 256 * i + b)
    const sigma = Math.sqrt(m) / 2
    for (let b = 0; b < 256; b++) expect(Math.abs(ones[b] - m / 2)).toBeLessThan(5 * sigma)
  })

  it("u hides the choices: without G(k1) (a broken receiver) the server reads r off u exactly", () => {
    /** Broken: skips the XOR with G(k1_j), so u_j = t_j ^ r. */
    class SkipsSecondStream extends IknpReceiver {
      protected override expand(j: number, which: 0 | 1, bytes: number): Buffer {
        return which === 1 ? Buffer.alloc(bytes) : super.expand(j, 0, bytes)
      }
    }
    const m = 4096
    const r = randomChoices(m)
    /** Per column j: the fraction of rows where u_j ^ G(k_{s_j}) (all the server can compute) equals r. */
    const agreement = (broken: boolean) => {
      const bs = new BaseOtSender()
      const br = new BaseOtReceiver()
      bs.finish(br.reply(bs.first()))
      const R = broken ? new SkipsSecondStream(bs) : new IknpReceiver(bs)
      const { u } = R.extend(r)
      const { s, k } = br.keys
      return { s, frac: k.map((key, j) => {
        const g = stream(key, m / 8)
        let eq = 0
        for (let i = 0; i < m; i++) if ((uBit(u, m, i, j) ^ bit(g, i)) === r[i]) eq++
        return eq / m
      }) }
    }
    const real = agreement(false)
    const sigma = 0.5 / Math.sqrt(m)
    for (const f of real.frac) expect(Math.abs(f - 0.5)).toBeLessThan(5 * sigma)
    const broken = agreement(true)
    const revealed = broken.frac.filter((f, j) => broken.s[j] === 0 && f === 1).length
    expect(revealed).toBe(broken.s.filter((b) => b === 0).length)
    expect(revealed).toBeGreaterThan(0)
  })

  it('s hides the other message: a client that knows s (a broken server) computes both', () => {
    const KNOWN = Uint8Array.from({ length: BASE_OTS }, (_, j) => (j * 7 + 3) % 5 === 0 ? 1 : 0)
    /** Broken: its choices are a pattern the client knows. */
    class PredictableChoices extends BaseOtReceiver {
      protected override choices(): Uint8Array {
        return KNOWN.slice()
      }
    }
    const sKnown = Buffer.alloc(16)
    for (let j = 0; j < 128; j++) sKnown[j >> 3] |= KNOWN[j] << (j & 7)
    const m = 2000
    /** How many OTs' other message m_{1-r_i} the client gets as H(t_i ^ KNOWN, i). */
    const stolen = (receiver: BaseOtReceiver) => {
      const { client, R, S } = session(receiver)
      const r = randomChoices(m)
      const { u } = R.extend(r)
      const pairs = S.extend(u, m)
      const t = client.k0.map((k) => stream(k, rows128(m) / 8)) // the client's own t_j = G(k0_j)
      const H = hasher(client.hashKey)
      let n = 0
      for (let i = 0; i < m; i++) {
        const o = 32 * i + 16 * (1 - r[i])
        if (H(xor(row(t, 0, i), sKnown), i).equals(pairs.subarray(o, o + 16))) n++
      }
      return n
    }
    expect(stolen(new PredictableChoices())).toBe(m)
    expect(stolen(new BaseOtReceiver())).toBe(0)
  })
})

describe('Gilboa products over Z_2^64', () => {
  const EDGES = [0n, 1n, 2n, 3n, 1n << 32n, (1n << 63n) - 1n, 1n << 63n, M64 - 1n, M64]

  /** Every pair of edge values, then `extra` random pairs. */
  function operands(extra: number) {
    const n = EDGES.length ** 2 + extra
    const x = new BigUint64Array(n)
    const y = new BigUint64Array(n)
    EDGES.forEach((a, i) => EDGES.forEach((b, j) => {
      x[i * EDGES.length + j] = a
      y[i * EDGES.length + j] = b
    }))
    Buffer.from(x.buffer).set(randomBytes(8 * extra), 8 * EDGES.length ** 2)
    Buffer.from(y.buffer).set(randomBytes(8 * extra), 8 * EDGES.length ** 2)
    return { x, y }
  }

  function product(s: ReturnType<typeof session>, x: BigUint64Array, y: BigUint64Array) {
    const choices = choiceBitsOf(x)
    const { u, labels } = s.R.extend(choices)
    const pairs = s.S.extend(u, choices.length)
    const { msg, share } = gilboaSender(pairs, y)
    expect(msg.length).toBe(8 * 64 * x.length)
    return { msg, h: share, g: gilboaReceiver(labels, x, msg) }
  }

  it('choice bits are the bits of x, LSB first', () => {
    const x = BigUint64Array.of(0x8000000000000001n, 0x0123456789abcdefn)
    const c = choiceBitsOf(x)
    for (let e = 0; e < 2; e++) for (let j = 0; j < 64; j++) expect(c[64 * e + j]).toBe(Number((x[e] >> BigInt(j)) & 1n))
  })

  it('g + h = x y mod 2^64 for edge values and random ones; d is fresh for equal inputs', () => {
    const { x, y } = operands(2000)
    const a = session()
    const runs = [product(a, x, y), product(a, x, y), product(session(), x, y)]
    for (const { g, h } of runs)
      for (let i = 0; i < x.length; i++) expect((g[i] + h[i]) & M64, `element ${i}`).toBe((x[i] * y[i]) & M64)
    // d = w0 - w1 + y 2^j: equal y and x, fresh OTs (the same session later, or a new one), other
    // words; and other shares
    for (const other of [runs[1], runs[2]]) {
      let equal = 0
      for (let k = 0; k < runs[0].msg.length; k += 8) if (runs[0].msg.readBigUInt64LE(k) === other.msg.readBigUInt64LE(k)) equal++
      for (let i = 0; i < x.length; i++) if (runs[0].h[i] === other.h[i]) equal++
      expect(equal).toBe(0)
    }
  })
})

describe('malformed input', () => {
  const bad = (f: () => unknown) => expect(f).toThrow(ProtocolError)

  it('base OTs: wrong lengths, invalid encodings and the identity point are ProtocolErrors', () => {
    const notAPoint = Buffer.alloc(32, 0xff) // not canonical (above the field prime)
    const negative = Buffer.alloc(32)
    negative[0] = 1 // a negative field element: ristretto255 rejects it
    const identity = Buffer.alloc(32)
    bad(() => new BaseOtReceiver().reply(Buffer.alloc(31)))
    bad(() => new BaseOtReceiver().reply(Buffer.alloc(33)))
    for (const p of [notAPoint, negative, identity]) bad(() => new BaseOtReceiver().reply(p))
    const bs = new BaseOtSender()
    const reply = new BaseOtReceiver().reply(bs.first())
    bad(() => new BaseOtSender().finish(reply.subarray(1)))
    for (const p of [notAPoint, negative, identity]) {
      const r = Buffer.from(reply)
      p.copy(r, 32 * 77)
      expect(() => new BaseOtSender().finish(r)).toThrow(/point 77/)
      bad(() => new BaseOtSender().finish(r))
    }
    expect(() => bs.finish(reply)).not.toThrow()
  })

  it('extension and products: wrong lengths are ProtocolErrors; local misuse is a RangeError', () => {
    const { R, S } = session()
    const { u } = R.extend(randomChoices(1000))
    bad(() => S.extend(u.subarray(16), 1000))
    bad(() => S.extend(Buffer.concat([u, Buffer.alloc(16)]), 1000))
    bad(() => S.extend(u, 2000))
    const notBits = new Uint8Array(EXT_CHUNK + 10)
    notBits[EXT_CHUNK + 5] = 2 // in the second chunk: refused before the first moves the streams
    expect(() => R.extend(notBits)).toThrow(RangeError)
    expect(() => S.extend(Buffer.alloc(0), MAX_EXTEND + 1)).toThrow(RangeError)
    // a rejected message leaves the session as it was: the good one still pairs up
    S.extend(u, 1000)
    const x = BigUint64Array.of(5n, 7n)
    const { u: u2, labels } = R.extend(choiceBitsOf(x))
    const { msg, share } = gilboaSender(S.extend(u2, 128), BigUint64Array.of(3n, 4n))
    bad(() => gilboaReceiver(labels, x, msg.subarray(8)))
    bad(() => gilboaReceiver(labels, x, Buffer.alloc(0)))
    // a product message read from an odd offset in a frame
    const framed = Buffer.alloc(msg.length + 3)
    msg.copy(framed, 3)
    const g = gilboaReceiver(labels, x, framed.subarray(3))
    expect([(g[0] + share[0]) & M64, (g[1] + share[1]) & M64]).toEqual([15n, 28n])
  })
})
