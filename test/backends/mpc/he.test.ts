/**
 * Linear-layer correlations by homomorphic encryption (backends/mpc/he.ts), with node-seal.
 * Oracles: applyRing of a one-term RingOperator (the limb convolution over Z_2^64 of
 * backends/mpc/linear.ts), BigInt negacyclic products and CRT computed here, SEAL's own inverse NTT,
 * closed forms of the flooding bound. Exactness: decrypt(evaluate(encrypt(u))) + s == W u mod 2^64
 * bit for bit on uniform u, for fmnist32 ResNet-20's conv shapes, a grouped and a dilated conv, two
 * dense layers (one with k > N/2) and batches. Circuit privacy: the client's noise has one
 * distribution whatever the weights, and each protection fails its check when removed (the server's
 * TEST ONLY HeLeak): without flooding the noise tracks the weights, without re-randomization c1 is
 * c1_in K, with only the used coefficients masked the others are the product's partial sums.
 * Malformed buffers from either peer are ProtocolErrors.
 */
import { randomBytes } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  FLOOD_SIGMA_MIN, HE_INPUT_CT_BYTES, HE_N, HE_OUTPUT_CT_BYTES, HE_PUBLIC_KEY_BYTES, HeClient, HeError, HeServer, NOISE_BOUND, planConv, planDense, planPrim,
  PRODUCT_WEIGHT_BYTES, termCost, type HeConvPlan, type HeLeak, type HeTermPlan,
} from '../../../backends/mpc/he.js'
import { applyRing } from '../../../backends/mpc/linear.js'
import { ProtocolError } from '../../../backends/mpc/net.js'
import { modulusAt } from '../../../backends/ckks/refresh.js'
import { loadSeal, makeContext } from '../../../backends/ckks/seal.js'
import type { ConvGeom, Prim } from '../../../ir/linear.js'
import { xorshift32 } from '../../helpers.js'

const N = HE_N
const rnd = (n: number) => new BigUint64Array(randomBytes(8 * n).buffer)

/** Integer weights uniform on [-2^bits, 2^bits] (to 2^-53) from a seeded stream. */
function weights(n: number, bits: number, seed: number): Float64Array {
  const r = xorshift32(seed)
  const span = 2 ** (bits + 1) + 1
  return new Float64Array(n).map(() => Math.floor(((r() * 2 ** 21 + (r() >>> 11)) / 2 ** 53) * span) - 2 ** bits)
}

function conv(o: { c: number; m: number; h: number; k: number; s?: number; p?: number; group?: number; d?: number; images?: number; bits?: number; seed?: number }): Prim & { kind: 'conv' } {
  const { c, m, h, k, s = 1, p = 0, group = 1, d = 1, images = 1, bits = 12, seed = 1 } = o
  const oh = Math.floor((h + 2 * p - (k - 1) * d - 1) / s) + 1
  const geom: ConvGeom = { c, h, w: h, m, oh, ow: oh, kh: k, kw: k, strides: [s, s], pads: [p, p, p, p], dilations: [d, d], group }
  return { kind: 'conv', in: [images, c, h, h], out: [images, m, oh, oh], geom, weight: weights(m * (c / group) * k * k, bits, seed) }
}

function dense(k: number, n: number, rows = 1, bits = 12, seed = 2): Prim & { kind: 'dense' } {
  return { kind: 'dense', in: [rows, k], out: [rows, n], k, n, weight: weights(k * n, bits, seed) }
}

/** W u mod 2^64 by the ring operator of linear.ts (16-bit limbs: every partial sum here stays below 2^53). */
function oracle(prim: Prim, u: BigUint64Array): BigUint64Array {
  const size = prim.out.reduce((a, b) => a * b, 1)
  return applyRing({ size, terms: [{ source: 0, prims: [prim] }], bias: new BigUint64Array(size), limbBits: 16 }, () => u, false)
}

let client: HeClient
let server: HeServer
const broken = new Map<string, HeServer>()

beforeAll(async () => {
  client = await HeClient.create()
  server = await HeServer.create(client.publicKey())
  for (const [name, leak] of Object.entries({ noFlood: { noFlood: true }, noRerandomize: { noRerandomize: true }, maskUsedOnly: { maskUsedOnly: true } } as Record<string, HeLeak>))
    broken.set(name, await HeServer.create(client.publicKey(), leak))
})

afterAll(() => {
  client?.delete()
  server?.delete()
  for (const s of broken.values()) s.delete()
})

/** One round trip: the client's share, the server's mask, the ciphertexts both ways. */
function roundTrip(prim: Prim, u: BigUint64Array = rnd(planPrim(prim).inSize), s?: BigUint64Array, srv = server) {
  const plan = planPrim(prim)
  const mask = s ?? rnd(plan.outSize)
  const prep = srv.prepare(plan, prim)
  try {
    const up = client.encrypt(plan, u)
    const down = srv.evaluate(prep, up, mask)
    return { plan, u, s: mask, up, down, v: client.decrypt(plan, down), flood: prep.flood }
  } finally {
    prep.delete()
  }
}

/** The packing conditions of the header, checked on a plan. */
function packingHolds(p: HeTermPlan): boolean {
  if (p.kind === 'dense') return p.chunk <= N / 2 && p.perCt * p.chunk <= N && p.blocks === Math.ceil(p.k / p.chunk) && p.groups === Math.ceil(p.n / p.perCt)
  const g = p.geom
  const HW = p.H * p.W
  const O = (p.cSub - 1) * HW + (g.kh - 1) * p.dh * p.W + (g.kw - 1) * p.dw
  return p.perCt * p.cSub * HW <= N && p.spacing === p.cSub * HW && p.offset === O && p.blocks === Math.ceil(g.c / p.cSub) && p.groups === Math.ceil(g.m / p.perCt)
}

describe('exactness: decrypt + s == W u mod 2^64, bit for bit', () => {
  const cases: [string, Prim][] = [
    ['conv 1->16 3x3 at 32x32 pad 1', conv({ c: 1, m: 16, h: 32, k: 3, p: 1 })],
    ['conv 16->16 3x3 at 32x32 pad 1', conv({ c: 16, m: 16, h: 32, k: 3, p: 1 })],
    ['conv 16->32 3x3 stride 2 at 32x32 pad 1', conv({ c: 16, m: 32, h: 32, k: 3, s: 2, p: 1 })],
    ['conv 16->32 1x1 stride 2 at 32x32', conv({ c: 16, m: 32, h: 32, k: 1, s: 2 })],
    ['conv 64->64 3x3 at 8x8 pad 1', conv({ c: 64, m: 64, h: 8, k: 3, p: 1 })],
    ['grouped conv 8->16 3x3 groups 4 at 32x32 pad 1', conv({ c: 8, m: 16, h: 32, k: 3, p: 1, group: 4 })],
    ['depthwise conv 12->12 3x3 groups 12 at 16x16 pad 1', conv({ c: 12, m: 12, h: 16, k: 3, p: 1, group: 12 })],
    ['dilated conv 4->4 3x3 dilation 2 at 16x16 pad 2', conv({ c: 4, m: 4, h: 16, k: 3, p: 2, d: 2 })],
    ['dense 64->10', dense(64, 10)],
    ['dense 5000->12 (k > N/2: chunks summed)', dense(5000, 12)],
    ['batch of 2: conv 16->16 3x3 at 16x16 pad 1', conv({ c: 16, m: 16, h: 16, k: 3, p: 1, images: 2 })],
    ['batch of 2: dense 64->10', dense(64, 10, 2)],
  ]
  for (const [name, prim] of cases)
    it(name, () => {
      const r = roundTrip(prim)
      expect(packingHolds(r.plan)).toBe(true)
      const want = oracle(prim, r.u)
      const got = new BigUint64Array(r.v.length)
      for (let i = 0; i < got.length; i++) got[i] = r.v[i] + r.s[i]
      expect(got).toEqual(want)
      // the predicted ciphertexts and bytes are the real ones
      const c = termCost(r.plan)
      expect([r.up.length, r.down.length]).toEqual([c.inCts, c.outCts])
      expect(r.up.every((b) => b.length === HE_INPUT_CT_BYTES) && r.down.every((b) => b.length === HE_OUTPUT_CT_BYTES)).toBe(true)
      expect(r.up.reduce((a, b) => a + b.length, 0)).toBe(c.bytesUp)
      expect(r.down.reduce((a, b) => a + b.length, 0)).toBe(c.bytesDown)
      if (name.includes('k > N/2')) expect(r.plan.blocks).toBeGreaterThan(1)
      if (name.includes('grouped')) expect(c.products).toBeLessThan(c.inCts * r.plan.groups)
    })
})

describe('plans', () => {
  /** Cost of a (C, G) packing with products counted pair by pair (a pair is needed when a block holds a channel of an output's group). */
  function bruteConvCost(g: ConvGeom, C: number, G: number): number {
    const blocks = Math.ceil(g.c / C)
    const groups = Math.ceil(g.m / G)
    let products = 0
    for (let b = 0; b < blocks; b++)
      for (let t = 0; t < groups; t++) {
        let need = false
        for (let ch = b * C; ch < Math.min(g.c, (b + 1) * C) && !need; ch++)
          for (let o = t * G; o < Math.min(g.m, (t + 1) * G) && !need; o++) need = Math.floor(ch / (g.c / g.group)) === Math.floor(o / (g.m / g.group))
        if (need) products++
      }
    return blocks * HE_INPUT_CT_BYTES + groups * HE_OUTPUT_CT_BYTES + products * PRODUCT_WEIGHT_BYTES
  }

  it('the packing search finds the cheapest feasible (C, G) for ResNet-20 shapes and a grouped conv', () => {
    for (const prim of [conv({ c: 16, m: 16, h: 32, k: 3, p: 1 }), conv({ c: 16, m: 32, h: 32, k: 3, s: 2, p: 1 }), conv({ c: 64, m: 64, h: 8, k: 3, p: 1 }), conv({ c: 8, m: 16, h: 32, k: 3, p: 1, group: 4 })]) {
      const p = planPrim(prim) as HeConvPlan
      const HW = p.H * p.W
      let best = Infinity
      for (let C = 1; C <= prim.geom.c; C++) for (let G = 1; G <= prim.geom.m && G * C * HW <= N; G++) best = Math.min(best, bruteConvCost(prim.geom, C, G))
      const c = termCost(p)
      expect(c.bytesUp + c.bytesDown + c.products * PRODUCT_WEIGHT_BYTES).toBe(best)
    }
  })

  it('the packed image is cropped to what outputs read, and a 1-tap axis is subsampled by the client', () => {
    const p3 = planPrim(conv({ c: 16, m: 32, h: 32, k: 3, s: 2, p: 1 })) as HeConvPlan
    expect([p3.H, p3.W, p3.strideH, p3.rowStep]).toEqual([33, 33, 2, 1]) // (16 - 1) 2 + 2 + 1
    const p1 = planPrim(conv({ c: 16, m: 32, h: 32, k: 1, s: 2 })) as HeConvPlan
    expect([p1.H, p1.W, p1.strideH, p1.rowStep]).toEqual([16, 16, 1, 2])
  })

  it('refuses a channel that does not fit N, primitives other than conv and dense, and inconsistent geometry', () => {
    expect(() => planPrim(conv({ c: 1, m: 1, h: 93, k: 3 }))).toThrow(/93x93 = 8649 coefficients\) does not fit a ciphertext of 8192/)
    expect(() => planPrim({ kind: 'reshape', in: [4], out: [2, 2] })).toThrow(HeError)
    const g = conv({ c: 2, m: 2, h: 8, k: 3 }).geom
    expect(() => planConv({ ...g, oh: 7 }, 1)).toThrow(/does not follow/)
    expect(() => planConv({ ...g, group: 3 }, 1)).toThrow(HeError)
    expect(() => planDense(0, 3, 1)).toThrow(HeError)
    // the server's weights must belong to the plan's geometry
    expect(() => server.prepare(planPrim(conv({ c: 2, m: 2, h: 8, k: 3 })), conv({ c: 2, m: 3, h: 8, k: 3 }))).toThrow(/does not have the plan's geometry/)
  })
})

describe('flooding', () => {
  const Q = (async () => {
    const seal = await loadSeal()
    return modulusAt(makeContext(seal, { logN: 13, primes: [60, 60, 60, 38], logScale: 0, security: 128 }).primes, 2)
  })()

  it('A is public and sigma is the closed form floor(log2(A / (N (B + B_pk)))), B = (B_e + 1/2) ||W||_1 + 1/2', async () => {
    const q = await Q
    const A = q / 2n ** 66n - q / 2n ** 106n - 1n
    for (const [bits, seed] of [[8, 3], [16, 4]]) {
      const prim = dense(64, 10, 1, bits, seed)
      const plan = planPrim(prim)
      expect([plan.blocks, plan.groups]).toEqual([1, 1])
      const f = server.prepare(plan, prim)
      f.delete()
      const l1 = prim.weight.reduce((a, w) => a + BigInt(Math.abs(w)), 0n)
      // B = ceil((2 B_e + 1) L / 2 + 1 / 2)
      const B = ((2n * BigInt(NOISE_BOUND) + 1n) * l1 + 1n + 1n) / 2n
      // B_pk = B_e (2N + 1) + ceil((N + 1) / 2)
      const Bpk = BigInt(NOISE_BOUND) * BigInt(2 * N + 1) + BigInt(Math.ceil((N + 1) / 2))
      let sigma = 0
      while ((BigInt(N) * (B + Bpk)) << BigInt(sigma + 1) <= A) sigma++
      expect(f.flood.A).toBe(A)
      expect(f.flood.B).toBe(B)
      expect(f.flood.Bpk).toBe(Bpk)
      expect(f.flood.sigma).toBe(sigma)
      expect(sigma).toBeGreaterThanOrEqual(FLOOD_SIGMA_MIN)
      expect((A + B + f.flood.Bpk) * 2n ** 66n < q).toBe(true)
    }
  })

  it('refuses a term whose weights leave less than 40 bits of flooding, naming it', () => {
    const prim = dense(4096, 2, 1, 50, 5)
    expect(() => server.prepare(planPrim(prim), prim, 'segment 7 (Gemm fc)')).toThrow(/^segment 7 \(Gemm fc\): its weights are too large .* sigma = 3\d bits/)
  })
})

// ---------------------------------------------------------------------------------------------
// circuit privacy

/** Two samples' means and variances agree within 5 standard errors (variance's from the sample fourth moments). */
function sameDistribution(a: Float64Array, b: Float64Array): { ok: boolean; zMean: number; zVar: number } {
  const moments = (x: Float64Array) => {
    let m = 0
    for (const v of x) m += v
    m /= x.length
    let m2 = 0
    let m4 = 0
    for (const v of x) {
      const d = (v - m) * (v - m)
      m2 += d
      m4 += d * d
    }
    return { m, v: m2 / x.length, m4: m4 / x.length, n: x.length }
  }
  const A = moments(a)
  const B = moments(b)
  const zMean = Math.abs(A.m - B.m) / Math.sqrt(A.v / A.n + B.v / B.n)
  const zVar = Math.abs(A.v - B.v) / Math.sqrt((A.m4 - A.v * A.v) / A.n + (B.m4 - B.v * B.v) / B.n)
  return { ok: zMean < 5 && zVar < 5, zMean, zVar }
}

describe('circuit privacy', () => {
  // one input block, one output ciphertext: every coefficient of it is a sample
  const base = conv({ c: 2, m: 2, h: 16, k: 3, p: 1, bits: 10, seed: 11 })
  const heavy: Prim = { ...base, weight: base.weight.map((w) => 4 * w) }

  /** The client's view under W1 and W2 with masks making W1 u - s1 = W2 u - s2. */
  function views(srv: HeServer) {
    const u = rnd(planPrim(base).inSize)
    const s1 = rnd(planPrim(base).outSize)
    const y1 = oracle(base, u)
    const y2 = oracle(heavy, u)
    const s2 = s1.map((v, i) => v + y2[i] - y1[i])
    const r1 = roundTrip(base, u, s1, srv)
    const r2 = roundTrip(heavy, u, s2, srv)
    expect(r2.v).toEqual(r1.v)
    expect(r1.down.length).toBe(1)
    return { r1, r2, n1: client.inspect(r1.down)[0].noise, n2: client.inspect(r2.down)[0].noise }
  }

  it('the noise has one distribution for W1 and W2 = 4 W1 (within its bound); without flooding it tells them apart', () => {
    const real = views(server)
    const same = sameDistribution(real.n1, real.n2)
    expect(same.ok, JSON.stringify(same)).toBe(true)
    const bound = Number(real.r1.flood.A + real.r2.flood.B + real.r2.flood.Bpk)
    expect(real.n1.every((x) => Math.abs(x) <= bound) && real.n2.every((x) => Math.abs(x) <= bound)).toBe(true)
    // uniform on [-A, A]: variance A^2 / 3 within 5 standard errors (4 A^4 / 45 N)
    const A = Number(real.r1.flood.A)
    const v1 = real.n1.reduce((a, x) => a + x * x, 0) / N
    expect(Math.abs(v1 - (A * A) / 3)).toBeLessThan(5 * Math.sqrt((4 * A ** 4) / (45 * N)))

    const leak = views(broken.get('noFlood')!)
    const diff = sameDistribution(leak.n1, leak.n2)
    expect(diff.ok).toBe(false)
    // the unflooded noise grows with the weights: e K with K four times as large
    const sd = (x: Float64Array) => Math.sqrt(x.reduce((a, v) => a + v * v, 0) / x.length)
    expect(sd(leak.n2) / sd(leak.n1)).toBeGreaterThan(3)
  })

  /** A small 1 -> 1 3x3 conv at 8x8 pad 1: packed 10 x 10, O = 2 W + 2, one product. */
  const small = conv({ c: 1, m: 1, h: 8, k: 3, p: 1, bits: 10, seed: 12 })
  const W = 10
  const O = 2 * W + 2
  /** The kernel polynomial by the header's layout: K[i, j] at O - (i W + j). */
  const kernelTaps = Array.from({ length: 9 }, (_, t) => ({ pos: O - (Math.floor(t / 3) * W + (t % 3)), w: BigInt(small.weight[t]) }))

  it('without re-randomization the output c1 is c1_in K (SEAL inverse NTT, BigInt product); with it, it is not', async () => {
    const plan = planPrim(small) as HeConvPlan
    expect([plan.W, plan.offset, plan.blocks, plan.groups]).toEqual([W, O, 1, 1])
    const seal = await loadSeal()
    const sc = makeContext(seal, { logN: 13, primes: [60, 60, 60, 38], logScale: 0, security: 128 })
    const ev = seal.Evaluator(sc.context)
    /** The c1 residues of a serialized ciphertext in coefficient form (prime-major). */
    const c1 = (b: Buffer): bigint[] => {
      const ct = seal.CipherText()
      ct.loadArray(sc.context, b)
      ev.cipherTransformFromNtt(ct, ct)
      const raw = ct.saveArray(seal.ComprModeType.none)
      ct.delete()
      const words = new BigUint64Array(raw.buffer.slice(raw.byteOffset + raw.length - 16 * N * 3 + 8 * N * 3, raw.byteOffset + raw.length))
      return Array.from(words)
    }
    const expected = (cin: bigint[]): bigint[] => {
      const out = new Array<bigint>(3 * N).fill(0n)
      sc.primes.forEach((q, j) => {
        for (const { pos, w } of kernelTaps)
          for (let i = 0; i < N; i++) {
            const k = i + pos
            const term = w * cin[j * N + i]
            if (k < N) out[j * N + k] += term
            else out[j * N + k - N] -= term // X^N = -1
          }
        for (let i = 0; i < N; i++) out[j * N + i] = ((out[j * N + i] % q) + q) % q
      })
      return out
    }
    const matches = (a: bigint[], b: bigint[]) => a.reduce((n, x, i) => n + (x === b[i] ? 1 : 0), 0)
    const u = rnd(plan.inSize)
    const leaky = roundTrip(small, u, undefined, broken.get('noRerandomize')!)
    expect(matches(c1(leaky.down[0]), expected(c1(leaky.up[0])))).toBe(3 * N)
    const real = roundTrip(small, u)
    expect(matches(c1(real.down[0]), expected(c1(real.up[0])))).toBeLessThan(8)
    ev.delete()
  })

  it('unused coefficients: the partial sums of u K when only the outputs are masked, uniform otherwise', () => {
    const plan = planPrim(small)
    const u = rnd(plan.inSize)
    // the packed input: coefficient y W + x holds u[y - 1, x - 1]; Z = u K negacyclic over Z, mod 2^64
    const packed = new Array<bigint>(N).fill(0n)
    for (let y = 1; y <= 8; y++) for (let x = 1; x <= 8; x++) packed[y * W + x] = u[(y - 1) * 8 + (x - 1)]
    const Z = new BigUint64Array(N)
    for (const { pos, w } of kernelTaps) for (let i = 0; i < 100; i++) Z[i + pos] += w * packed[i]
    const used = new Set<number>()
    for (let y = 0; y < 8; y++) for (let x = 0; x < 8; x++) used.add(O + y * W + x)
    const unused = Array.from({ length: N }, (_, i) => i).filter((i) => !used.has(i))
    const nonzero = unused.filter((i) => Z[i] !== 0n).length
    expect(nonzero).toBeGreaterThan(30) // the border partial sums exist

    const leaky = roundTrip(small, u, undefined, broken.get('maskUsedOnly')!)
    const lv = client.inspect(leaky.down)[0].v
    expect(unused.every((i) => lv[i] === Z[i])).toBe(true)

    const real = roundTrip(small, u)
    const rv = client.inspect(real.down)[0].v
    expect(unused.filter((i) => rv[i] === Z[i]).length).toBe(0)
    // uniform: the top 32 bits average 1/2 within 5 standard errors
    const mean = unused.reduce((a, i) => a + Number(rv[i] >> 32n) / 2 ** 32, 0) / unused.length
    expect(Math.abs(mean - 0.5)).toBeLessThan(5 * Math.sqrt(1 / 12 / unused.length))
    // the used coefficients hold W u - s in both
    for (const r of [leaky, real]) {
      const view = client.inspect(r.down)[0].v
      const y = oracle(small, u)
      expect([...used].every((c, k) => view[c] === BigInt.asUintN(64, y[k] - r.s[k]))).toBe(true)
    }
  })
})

describe('malformed buffers are ProtocolErrors', () => {
  const prim = conv({ c: 2, m: 2, h: 8, k: 3, p: 1 })
  const plan = planPrim(prim)

  it('from the client: wrong count, truncated, compressed, other parameters, bad data, not scale 1', async () => {
    const prep = server.prepare(plan, prim)
    const s = rnd(plan.outSize)
    const cts = client.encrypt(plan, rnd(plan.inSize))
    const bad = (x: Buffer[]) => () => server.evaluate(prep, x, s)
    expect(bad([])).toThrow(ProtocolError)
    expect(bad([...cts, cts[0]])).toThrow(/sent 2 input ciphertexts for a term of 1/)
    expect(bad([cts[0].subarray(0, cts[0].length - 1)])).toThrow(ProtocolError)
    expect(bad([Buffer.concat([cts[0], Buffer.alloc(8)])])).toThrow(ProtocolError)
    // another context of the same shape: N = 8192, three data primes, other primes
    const seal = await loadSeal()
    const other = makeContext(seal, { logN: 13, primes: [58, 60, 60, 40], logScale: 0, security: 128 })
    const kg = seal.KeyGenerator(other.context)
    const sk = kg.secretKey()
    const pk = kg.createPublicKey()
    const enc = seal.Encryptor(other.context, pk, sk)
    const encoder = seal.CKKSEncoder(other.context)
    const pt = encoder.encode(new Float64Array(N / 2).fill(1), 1)!
    const ser = enc.encryptSymmetricSerializable(pt)
    const foreign = Buffer.from(ser.saveArray(seal.ComprModeType.none))
    const compressed = Buffer.from(ser.saveArray(seal.ComprModeType.zstd))
    expect(foreign.length).toBe(HE_INPUT_CT_BYTES)
    expect(bad([foreign])).toThrow(/SEAL refused it/)
    expect(bad([compressed])).toThrow(ProtocolError)
    // a residue above its prime
    const garbage = Buffer.from(cts[0])
    garbage.writeBigUInt64LE(2n ** 64n - 1n, garbage.length - 8 * 100)
    expect(bad([garbage])).toThrow(ProtocolError)
    // scale 2 (the double after parms id, NTT flag, size, degree and moduli count)
    const scaled = Buffer.from(cts[0])
    scaled.writeDoubleLE(2, 16 + 32 + 1 + 24)
    expect(bad([scaled])).toThrow(ProtocolError)
    // the real one still works
    expect(server.evaluate(prep, cts, s).length).toBe(1)
    for (const o of [ser, pt, encoder, enc, pk, sk, kg]) o.delete()
    prep.delete()
  })

  it('from the server: wrong count, truncated, an input ciphertext for an output; a malformed public key', async () => {
    const prep = server.prepare(plan, prim)
    const cts = client.encrypt(plan, rnd(plan.inSize))
    const out = server.evaluate(prep, cts, rnd(plan.outSize))
    prep.delete()
    expect(() => client.decrypt(plan, [...out, out[0]])).toThrow(/sent 2 output ciphertexts for a term of 1/)
    expect(() => client.decrypt(plan, [out[0].subarray(0, 1000)])).toThrow(ProtocolError)
    expect(() => client.decrypt(plan, [cts[0]])).toThrow(ProtocolError)
    const pk = client.publicKey()
    expect(pk.length).toBe(HE_PUBLIC_KEY_BYTES)
    await expect(HeServer.create(pk.subarray(0, pk.length - 1))).rejects.toThrow(ProtocolError)
    // a residue of c0 above its prime (the data follows a 113-byte head)
    const flipped = Buffer.from(pk)
    flipped.writeBigUInt64LE(2n ** 64n - 1n, 113)
    await expect(HeServer.create(flipped)).rejects.toThrow(ProtocolError)
  })
})
