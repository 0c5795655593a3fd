/**
 * The ring kernels against straightforward BigInt oracles written here, on seeded random
 * data mixed with edge values (0, 1, 2^31, 2^32 +- 1, 2^63 +- 1, 2^64 - 1, ...): add, sub,
 * both parties of truncShare, encodeArray and decodeArray (bit for bit),
 * gather, toLimbs, fromLimbs on signed limbs up to 2^53 in magnitude, their round trip, and
 * fromLimbs of an integer linear combination of limbs.
 */
import { describe, expect, it } from 'vitest'
import {
  add, decode, decodeArray, encode, encodeArray, fromLimbs, gather, sub, toLimbs, truncShare,
} from '../../../backends/mpc/ring.js'

const M64 = (1n << 64n) - 1n
const u64 = (x: bigint) => BigInt.asUintN(64, x)

/** splitmix64, seeded. */
function gen(seed: number) {
  let s = BigInt(seed)
  const next = (): bigint => {
    s = u64(s + 0x9e3779b97f4a7c15n)
    let z = s
    z = u64((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n)
    z = u64((z ^ (z >> 27n)) * 0x94d049bb133111ebn)
    return z ^ (z >> 31n)
  }
  /** An integer in [0, k). */
  const int = (k: number) => Number(next() % BigInt(k))
  /** A uniform float in [0, 1). */
  const unit = () => Number(next() >> 11n) / 2 ** 53
  return { next, int, unit }
}

const EDGES: bigint[] = [
  0n, 1n, 2n, 0xffffn, 0x10000n, (1n << 31n) - 1n, 1n << 31n, (1n << 32n) - 1n, 1n << 32n, (1n << 32n) + 1n,
  (1n << 33n) - 1n, (1n << 53n) - 1n, 1n << 53n, (1n << 63n) - 1n, 1n << 63n, (1n << 63n) + 1n, M64, M64 - 1n,
  0xffffffff00000000n, 0x00000000ffffffffn, 0x8000000080000000n, 0x7fffffff7fffffffn, 0xffff0000ffff0000n,
]

/** n elements: every edge value, then random ones, some of them edge values plus or minus a little. */
function ring(r: ReturnType<typeof gen>, n: number): BigUint64Array {
  const out = new BigUint64Array(n)
  for (let i = 0; i < n; i++) {
    const k = r.int(8)
    if (i < EDGES.length) out[i] = EDGES[i]
    else if (k === 0) out[i] = EDGES[r.int(EDGES.length)]
    else if (k === 1) out[i] = u64(EDGES[r.int(EDGES.length)] + BigInt(r.int(7) - 3))
    else if (k === 2) out[i] = r.next() >> BigInt(r.int(64)) // small magnitudes
    else if (k === 3) out[i] = u64(-(r.next() >> BigInt(r.int(64)))) // small negative values
    else out[i] = r.next()
  }
  return out
}

/** A shuffled copy, so that edge values meet each other in binary kernels. */
function shuffled(r: ReturnType<typeof gen>, x: BigUint64Array): BigUint64Array {
  const y = x.slice()
  for (let i = y.length - 1; i > 0; i--) {
    const j = r.int(i + 1)
    const t = y[i]
    y[i] = y[j]
    y[j] = t
  }
  return y
}

const N = 2000

function expectRing(got: BigUint64Array, want: BigUint64Array) {
  expect(got).toBeInstanceOf(BigUint64Array)
  expect(got.length).toBe(want.length)
  for (let i = 0; i < want.length; i++) if (got[i] !== want[i]) expect([i, got[i]]).toEqual([i, want[i]])
}

const map2 = (a: BigUint64Array, b: BigUint64Array, f: (x: bigint, y: bigint) => bigint) => BigUint64Array.from(a, (x, i) => u64(f(x, b[i])))
const map1 = (a: BigUint64Array, f: (x: bigint) => bigint) => BigUint64Array.from(a, (x) => u64(f(x)))

/** truncShare as it was, per element. */
function truncRef(x: bigint, bits: number, party: 0 | 1): bigint {
  const s = BigInt(bits)
  return party === 0 ? u64(x >> s) : u64(-(u64(-x) >> s))
}

describe('elementwise kernels', () => {
  const r = gen(1)
  const a = ring(r, N)
  const b = shuffled(r, ring(r, N))
  // every pair of edge values
  const ea = BigUint64Array.from(EDGES.flatMap((x) => EDGES.map(() => x)))
  const eb = BigUint64Array.from(EDGES.flatMap(() => EDGES))

  it('add, sub', () => {
    for (const [x, y] of [[a, b], [ea, eb], [b, a]]) {
      expectRing(add(x, y), map2(x, y, (p, q) => p + q))
      expectRing(sub(x, y), map2(x, y, (p, q) => p - q))
    }
  })

  it('truncShare, both parties, every shift', () => {
    for (const party of [0, 1] as const)
      for (let bits = 0; bits <= 70; bits++) {
        expectRing(truncShare(a, bits, party), map1(a, (p) => truncRef(p, bits, party)))
        expectRing(truncShare(ea, bits, party), map1(ea, (p) => truncRef(p, bits, party)))
      }
    // shift counts outside the word kernels keep the BigInt behaviour
    expectRing(truncShare(a, -3, 0), map1(a, (p) => p >> -3n))
    expectRing(truncShare(a, -3, 1), map1(a, (p) => -(u64(-p) >> -3n)))
    expect(() => truncShare(a, 1.5, 0)).toThrow(RangeError)
  })

  it('shares that reconstruct to x truncate to x >> bits up to one unit', () => {
    const x = BigUint64Array.from({ length: N }, () => u64(BigInt(r.int(2 ** 40)) - (1n << 39n)))
    const s0 = BigUint64Array.from({ length: N }, () => r.next()) // uniform, as a dealer's mask
    const s1 = sub(x, s0)
    const t = add(truncShare(s0, 13, 0), truncShare(s1, 13, 1))
    let bad = 0
    for (let i = 0; i < N; i++) {
      const d = BigInt.asIntN(64, t[i] - u64(BigInt.asIntN(64, x[i]) >> 13n))
      if (d < -1n || d > 1n) bad++
    }
    expect(bad).toBeLessThan(3) // the failure probability is about 2^(41 - 64) per element
  })

  it('works on views at a byte offset and checks lengths', () => {
    const va = a.subarray(3, 503)
    const vb = b.subarray(7, 507)
    expectRing(add(va, vb), map2(va, vb, (p, q) => p + q))
    expectRing(truncShare(va, 12, 1), map1(va, (p) => truncRef(p, 12, 1)))
    expectRing(add(va, b), map2(va, b, (p, q) => p + q)) // a longer second operand is cut, as before
    expect(() => add(b, va)).toThrow(TypeError)
    expect(() => sub(b, va)).toThrow(TypeError)
  })

  it('gather', () => {
    const idx = Int32Array.from({ length: 3000 }, () => r.int(N))
    expectRing(gather(a, idx), BigUint64Array.from(idx, (j) => a[j]))
    expect(() => gather(a, Int32Array.of(0, N))).toThrow(TypeError)
    expect(() => gather(a, Int32Array.of(-1))).toThrow(TypeError)
  })
})

describe('fixed-point encoding', () => {
  const r = gen(2)

  it('encodeArray is encode, bit for bit', () => {
    const all: number[] = [0, -0, 1, -1, 0.5, -0.5, 1.5, -1.5, 2.5, -2.5, 1e-30, -1e-30, 2 ** 52 + 0.5, 2 ** 53 + 2, -(2 ** 53) - 2, 2 ** 62, -(2 ** 62), 2 ** 63, -(2 ** 63), 2 ** 63 - 1024, 2 ** 64, -(2 ** 64), 2 ** 70 + 2 ** 20, -(2 ** 70) - 2 ** 40, 1e300, -1e300, Number.MAX_VALUE, -Number.MAX_VALUE, Number.MIN_VALUE]
    for (let i = 0; i < N; i++) {
      const mag = 2 ** (r.int(80) - 16)
      all.push((r.unit() * 2 - 1) * mag)
      all.push(Math.round(r.unit() * mag) + (r.int(2) ? 0.5 : -0.5)) // ties
    }
    for (const frac of [0, 1, 8, 13, 16, 24, 31, 32, 33, 40, 60, -3]) {
      const v = all.filter((x) => Number.isFinite(x * 2 ** frac))
      const got = encodeArray(v, frac)
      expectRing(got, BigUint64Array.from(v, (x) => encode(x, frac)))
      expectRing(encodeArray(Float64Array.from(v), frac), got)
    }
    for (const bad of [NaN, Infinity, -Infinity]) expect(() => encodeArray([1, bad], 8)).toThrow(RangeError)
    expect(() => encodeArray([2 ** 1000], 100)).toThrow(RangeError) // 2^1100 overflows to Infinity
  })

  it('decodeArray is decode, bit for bit', () => {
    const u = ring(r, N)
    for (const frac of [0, 1, 8, 13, 16, 24, 31, 32, 33, 40, 52, 53, 64, 80, -5]) {
      const got = decodeArray(u, frac)
      expect(got).toBeInstanceOf(Float64Array)
      const want = Float64Array.from(u, (x) => decode(x, frac))
      expect(new Uint8Array(got.buffer)).toEqual(new Uint8Array(want.buffer))
    }
  })

  it('decode(encode(v)) round trips below 2^53', () => {
    const v = Float64Array.from({ length: N }, () => Math.round((r.unit() * 2 - 1) * 2 ** 40) / 2 ** 13)
    expect(decodeArray(encodeArray(v, 13), 13)).toEqual(v)
  })
})

/** The limbs of every element, the oracle's way. */
function limbsRef(x: BigUint64Array, bits: number): Float64Array {
  const L = Math.ceil(64 / bits)
  const n = x.length
  const out = new Float64Array(L * n)
  const mask = (1n << BigInt(bits)) - 1n
  for (let l = 0; l < L; l++) for (let i = 0; i < n; i++) out[l * n + i] = Number((x[i] >> BigInt(bits * l)) & mask)
  return out
}

function fromLimbsRef(limbs: Float64Array, n: number, bits: number): BigUint64Array {
  const L = limbs.length / n
  const out = new BigUint64Array(n)
  for (let i = 0; i < n; i++) {
    let s = 0n
    for (let l = 0; l < L; l++) s += BigInt(limbs[l * n + i]) << BigInt(bits * l)
    out[i] = u64(s)
  }
  return out
}

const WIDTHS = Array.from({ length: 25 }, (_, k) => k + 8)

describe('limbs', () => {
  const r = gen(3)
  const x = ring(r, N)

  it('toLimbs splits into unsigned limbs, limb-major', () => {
    for (const bits of WIDTHS) {
      const got = toLimbs(x, bits)
      expect(got.length).toBe(Math.ceil(64 / bits) * N)
      expect(got).toEqual(limbsRef(x, bits))
    }
    expect(() => toLimbs(x, 7)).toThrow(RangeError)
    expect(() => toLimbs(x, 33)).toThrow(RangeError)
  })

  it('fromLimbs inverts toLimbs', () => {
    for (const bits of WIDTHS) expectRing(fromLimbs(toLimbs(x, bits), N, bits), x)
    expectRing(fromLimbs(toLimbs(x.subarray(5, 105), 16), 100, 16), x.subarray(5, 105))
  })

  it('fromLimbs of signed limbs up to 2^53 in magnitude', () => {
    const B = 2 ** 53 - 1
    const special = [0, 1, -1, B, -B, B - 1, -(B - 1), 2 ** 52, -(2 ** 52), 2 ** 32, -(2 ** 32), 2 ** 32 - 1, -(2 ** 32 - 1), 2 ** 31, -(2 ** 31), 2 ** 48 + 1, -(2 ** 48) - 1]
    const n = 3000
    for (const bits of WIDTHS) {
      const L = Math.ceil(64 / bits)
      const limbs = new Float64Array(L * n)
      for (let k = 0; k < L * n; k++) {
        const c = r.int(4)
        if (k < n) limbs[k] = special[k % special.length] // limb 0: all specials
        else if (c === 0) limbs[k] = special[r.int(special.length)]
        else if (c === 1) limbs[k] = r.int(2) ? B : -B // near +-2^53 everywhere
        else limbs[k] = Number(BigInt.asIntN(64, r.next()) >> BigInt(10 + r.int(54))) // |v| < 2^53, every magnitude
      }
      // a few elements with every limb at the extremes
      for (let l = 0; l < L; l++) {
        limbs[l * n + 1] = B
        limbs[l * n + 2] = -B
        limbs[l * n + 3] = l % 2 ? B : -B
      }
      expectRing(fromLimbs(limbs, n, bits), fromLimbsRef(limbs, n, bits))
    }
    expect(() => fromLimbs(new Float64Array(7), 2, 16)).toThrow(RangeError)
    expect(fromLimbs(new Float64Array(0), 0, 16).length).toBe(0)
  })

  it('fromLimbs of a linear combination of limbs is the linear combination in the ring', () => {
    const terms = 512
    const n = 64
    for (const bits of [8, 12, 16, 20]) {
      const L = Math.ceil(64 / bits)
      for (const mode of ['random', 'extreme'] as const) {
        const xs = Array.from({ length: terms }, () => (mode === 'random' ? ring(r, n) : new BigUint64Array(n).fill(M64)))
        const w = Array.from({ length: terms }, (_, j) => (mode === 'random' ? r.int(2 ** 25 + 1) - 2 ** 24 : j < terms / 2 ? 2 ** 24 : -(2 ** 24)))
        if (mode === 'extreme') for (let i = 0; i < n / 2; i++) for (let j = terms / 2; j < terms; j++) xs[j][i] = 0n // sums reach 2^24 * 512 * (2^bits - 1)
        const acc = new Float64Array(L * n)
        for (let j = 0; j < terms; j++) {
          const lj = toLimbs(xs[j], bits)
          for (let k = 0; k < L * n; k++) acc[k] += w[j] * lj[k]
        }
        const want = new BigUint64Array(n)
        for (let i = 0; i < n; i++) {
          let s = 0n
          for (let j = 0; j < terms; j++) s += BigInt(w[j]) * xs[j][i]
          want[i] = u64(s)
        }
        expectRing(fromLimbs(acc, n, bits), want)
      }
    }
  })
})
