/**
 * Value ranges against the fixed-point headroom (backends/mpc/ranges.ts): the calibrated bounds equal
 * the float64 interpreter's own max on the calibration set times the margin; the truncation failure
 * probability matches its closed form on a one-layer schedule, and truncShare fails as often as the
 * derivation says; a model scaled up by 2^20 gets intBits widened, and without the check its two-party
 * run over TCP gives wrong logits (the wrap is real); scaled further it is refused in one line.
 */
import { describe, expect, it } from 'vitest'
import { readNpy } from '../../../compiler/npy.js'
import { GraphBuilder } from '../../../ir/builder.js'
import type { Graph } from '../../../ir/graph.js'
import { interpret } from '../../../ir/interpret.js'
import { tensor, type Tensor } from '../../../ir/tensor.js'
import { lowerMpc, MpcLowerError, printSchedule, runQuery, type MpcSchedule } from '../../../backends/mpc/index.js'
import { truncShare } from '../../../backends/mpc/ring.js'
import { scaled, xorshift32 } from '../../helpers.js'
import { compiled, DIGITS, images, parties } from './helpers.js'

const calib = readNpy(`${DIGITS}/calib_x.npy`)

/** max |v| per node over the calibration set, from one float64 run of the whole set. */
function oracleMax(g: Graph, x: Tensor): Map<string, number> {
  const values = interpret(g, [x], { keepAll: true })
  const out = new Map<string, number>()
  for (const [k, v] of values) out.set(k, v.data.reduce((m, a) => Math.max(m, Math.abs(a)), 0))
  return out
}

const checked = (s: MpcSchedule) => {
  if (s.ranges === 'unchecked') throw new Error('unchecked')
  return s.ranges
}

async function twoParty(g: Graph, s: MpcSchedule, x: Tensor): Promise<Tensor> {
  const p = await parties(g, s)
  try {
    const { output } = await runQuery(s, x, { connect: `127.0.0.1:${p.server.port}`, dealer: `127.0.0.1:${p.dealer.port}` })
    return output
  } finally {
    await p.close()
  }
}

describe('mpc value ranges', () => {
  it('bounds every segment and product by 2x the interpreter\'s max on the calibration set (cnn_square, mlp_relu)', () => {
    for (const m of ['cnn_square', 'mlp_relu']) {
      const g = compiled(m)
      const s = lowerMpc(g, { calib })
      const r = checked(s)
      const ref = oracleMax(g, calib)
      expect(r.samples).toBe(300)
      expect(r.margin).toBe(2)
      for (const v of r.values) {
        // cnn_square's squares are x * x with t = x: their products are bounded by (2 max |x|)^2
        const input = s.steps.find((st) => st.node === v.node && v.what === 'product')?.segment.node
        const want = input ? (2 * ref.get(input)!) ** 2 : 2 * ref.get(v.node)!
        expect(Math.abs(v.bound - want) / want).toBeLessThan(1e-5)
        expect(v.headroom).toBe(v.what === 'garbled input' ? 2 ** 14 : v.what === 'product' ? 2 ** 37 : 2 ** 34)
      }
      expect(r.values.some((v) => v.node === 'logits')).toBe(true)
      expect(s.params.intBits).toBe(14)
    }
  })

  it('states the truncation failure probability of a one-layer schedule in closed form: sum of |x| / 2^64 per truncated element', () => {
    // y = W x + b (3 outputs), z = y * y: t = y is truncated at 2^29 (3 elements), y^2 at 2^26 (3 elements)
    const W = [0.5, -1.25, 2, 0.75, -0.3, 0.1, 1.5, -2.5, 1, 1, 1, 1]
    const bias = [0.2, -0.4, 0.1]
    const b = new GraphBuilder('one', 13)
    b.input('x', 'float32', [1, 4])
    b.constant('W', tensor('float32', [3, 4], W))
    b.constant('b', tensor('float32', [3], bias))
    b.add('Gemm', ['x', 'W', 'b'], { alpha: 1, beta: 1, transA: 0, transB: 1 }, { name: 'y' })
    b.add('Mul', ['y', 'y'], {}, { name: 'z' })
    const g = b.build(['z'])
    const rnd = xorshift32(7)
    const n = 40
    const x = tensor('float32', [n, 4], Array.from({ length: 4 * n }, () => (rnd() / 2 ** 32) * 4 - 2))
    const s = lowerMpc(g, { calib: x })
    // the oracle: the layer by hand, per output element its max |y_i|, times the margin 2
    const m = [0, 1, 2].map((i) => {
      let best = 0
      for (let k = 0; k < n; k++) {
        let y = bias[i]
        for (let j = 0; j < 4; j++) y += W[i * 4 + j] * x.data[k * 4 + j]
        best = Math.max(best, Math.abs(y))
      }
      return 2 * best
    })
    const closed = m.reduce((a, v) => a + (v * 2 ** 29 + v * v * 2 ** 26) / 2 ** 64, 0)
    expect(s.truncation.truncatedElements).toBe(6)
    expect(s.truncation.bounds).toBe('calibrated')
    expect(Math.abs(s.truncation.failureProbabilityPerInference - closed) / closed).toBeLessThan(1e-5)
    expect(s.truncation.log2).toBeCloseTo(Math.log2(closed), 4)
    // and below SecureML's bound 2^(l + 1 - 64) per element for |x| < 2^l
    const secureml = m.reduce((a, v) => a + 2 ** (Math.ceil(Math.log2(v * 2 ** 29)) + 1 - 64) + 2 ** (Math.ceil(Math.log2(v * v * 2 ** 26)) + 1 - 64), 0)
    expect(s.truncation.failureProbabilityPerInference).toBeLessThan(secureml)
    expect(printSchedule(s)).toMatch(/truncation failure per inference: \S+ = 2\^-\d+\.\d over 6 truncated elements, worst /)
    // without calibration: unchecked, and the figure rests on the assumed |x| < 2^43 at all 6
    const u = lowerMpc(g)
    expect(u.ranges).toBe('unchecked')
    expect(u.truncation.bounds).toBe('assumed')
    expect(Math.abs(u.truncation.failureProbabilityPerInference / (6 * 2 ** (43 - 64)) - 1)).toBeLessThan(1e-5)
    expect(printSchedule(u)).toMatch(/ranges: unchecked/)
  })

  it('truncShare fails with probability |x| / 2^64 (uniform client share), off by about 2^(64 - k)', () => {
    const rnd = xorshift32(99)
    const trials = 40_000
    for (const x of [1n << 60n, -(3n << 58n)]) {
      const x0 = new BigUint64Array(trials)
      for (let i = 0; i < trials; i++) x0[i] = (BigInt(rnd()) << 32n) | BigInt(rnd())
      const x1 = x0.map((v) => BigInt.asUintN(64, x - v))
      const t0 = truncShare(x0, 16, 0)
      const t1 = truncShare(x1, 16, 1)
      let fails = 0
      for (let i = 0; i < trials; i++) {
        const err = BigInt.asIntN(64, t0[i] + t1[i]) - (x >> 16n)
        if (err < -1n || err > 1n) {
          fails++
          const off = (err < 0n ? -err : err) - (1n << 48n)
          expect(off >= -1n && off <= 1n).toBe(true)
        }
      }
      const p = Number(x < 0n ? -x : x) / 2 ** 64
      const sd = Math.sqrt(trials * p * (1 - p))
      expect(Math.abs(fails - trials * p)).toBeLessThan(5 * sd)
    }
  })

  it('widens intBits for mlp_relu with its first layer scaled by 2^20; unchecked, the two-party run gives wrong logits', async () => {
    const g = scaled(compiled('mlp_relu'), ['fc1.weight', 'fc1.bias'], 2 ** 20)
    const notes: string[] = []
    const s = lowerMpc(g, { calib, log: (m) => notes.push(m) })
    const r = checked(s)
    const ref = oracleMax(g, calib)
    const need = Math.floor(Math.log2(2 * ref.get('/fc1/Gemm_output_0')!)) + 1
    expect(need).toBeGreaterThan(20)
    expect(r.widened).toEqual({ intBits: { from: 14, to: need }, node: '/fc1/Gemm_output_0' })
    expect(s.params.gcBits).toBe(need + 13 + 16 + 1)
    expect(notes.filter((l) => l.startsWith('warning'))).toEqual([])
    const plain = lowerMpc(g)
    expect(plain.params.intBits).toBe(14)
    const { x } = images(4)
    const want = interpret(g, [x]).get('logits')!
    const scale = want.data.reduce((a, v) => Math.max(a, Math.abs(v)), 0)
    const err = (y: Tensor) => y.data.reduce((a, v, i) => Math.max(a, Math.abs(v - want.data[i])), 0) / scale
    expect(err(await twoParty(g, s, x))).toBeLessThan(1e-3)
    expect(err(await twoParty(g, plain, x))).toBeGreaterThan(0.5)
  }, 60_000)

  it('refuses in one line what no width holds: mlp_relu scaled by 2^30 (the logits wrap the ring), the second layer of cnn_square by 2^8 (truncation fails too often)', () => {
    const g = scaled(compiled('mlp_relu'), ['fc1.weight', 'fc1.bias'], 2 ** 30)
    expect(() => lowerMpc(g, { calib })).toThrow(MpcLowerError)
    expect(() => lowerMpc(g, { calib })).toThrow(
      /^node '\/fc2\/Gemm' \(Gemm\): \|y\| <= \S+ \(calibrated max \S+ times the margin 2\) exceeds the fixed-point headroom 2\^34 \(29 fractional bits in the 64-bit ring\); the values would wrap$/,
    )
    // given intBits by the caller, a too-wide garbled input is refused instead of widened
    expect(() => lowerMpc(scaled(compiled('mlp_relu'), ['fc1.weight', 'fc1.bias'], 2 ** 20), { calib, intBits: 14 })).toThrow(
      /^node '\/fc1\/Gemm' \(Gemm\): \|y\| <= \S+ \(calibrated max \S+ times the margin 2\) exceeds the garbled circuits' headroom 2\^14 \(intBits 14, fixed by the caller;/,
    )
    const sq = scaled(compiled('cnn_square'), ['conv2.weight_bn', '/conv2/Conv_output_0_bias_bn'], 2 ** 8)
    expect(() => lowerMpc(sq, { calib })).toThrow(/^truncation failure probability 2\^-\d+\.\d per inference exceeds the accepted 2\^-12\.0 \(--truncation-limit\): worst node '\S+' \(\S+\), \d+ truncated elements/)
    expect(lowerMpc(sq, { calib, truncationLimit: 0.5 }).truncation.failureProbabilityPerInference).toBeGreaterThan(2 ** -12)
  })
})
