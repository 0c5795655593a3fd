/**
 * Plans without encryption: every fixture's plan, run noiselessly on slot vectors, equals the
 * interpreter on the compiled graph; parameters are within the 128-bit bound; the plan is
 * deterministic, printable and refuses non-polynomial ops with a clear message.
 */
import { describe, expect, it } from 'vitest'
import { ckksBackend, ckksPolyDepth, compileCkks, maxLogQ, printPlan, simulatePlan, type CkksPlan } from '../../../backends/ckks/index.js'
import { polyEvalDepth } from '../../../backends/ckks/lower.js'
import { analyze } from '../../../backends/mpc/analyze.js'
import { GraphBuilder } from '../../../ir/builder.js'
import type { PolyAttrs } from '../../../ir/ops/pi.js'
import { tensor } from '../../../ir/tensor.js'
import { passContext } from '../../../passes/pass.js'
import { compiledGraph, maxAbsDiff, MODELS, rawGraph, reference, testImages } from './helpers.js'

const plans = new Map<string, CkksPlan>()
function plan(name: string): CkksPlan {
  let p = plans.get(name)
  if (!p) plans.set(name, (p = compileCkks(compiledGraph(name), { model: name })))
  return p
}

describe('ckks plans', () => {
  for (const name of Object.keys(MODELS)) {
    it(`${name}: noiseless plan equals the interpreter, within the security bound`, () => {
      const g = compiledGraph(name)
      const p = plan(name)
      const x = testImages(MODELS[name], 4)
      const sim = simulatePlan(p, x)[0]
      const ref = reference(g, x)
      expect(maxAbsDiff(sim.data, ref.data)).toBeLessThan(1e-9)
      expect(p.params.totalBits).toBeLessThanOrEqual(maxLogQ(p.params.logN, 128))
      expect(p.params.security).toBe(128)
      expect(p.stats.bootstraps).toBe(0)
      expect(p.stats.depth).toBe(p.params.primes.length - 2)
      for (const i of p.instructions) {
        expect(i.level).toBeGreaterThanOrEqual(0)
        expect(i.level).toBeLessThanOrEqual(p.stats.depth)
        if (i.op === 'rotate') expect(p.keys.rotations).toContain(i.step)
      }
      expect(new Set(p.instructions.filter((i) => i.op === 'rotate').map((i) => i.step)).size).toBe(p.keys.rotations.length)
      expect(p.stats.keyBytes.total).toBeLessThan(2 ** 31)
    })
  }

  it('cryptonets28 needs one level per layer and few rotation keys', () => {
    const p = plan('cryptonets28')
    expect(p.stats.depth).toBe(5)
    expect(p.params.logN).toBe(13)
    expect(p.keys.rotations.length).toBeLessThanOrEqual(24)
    expect(p.inputs[0].regs.length).toBeGreaterThan(1)
  })

  for (const name of ['mlp_relu', 'senet_partial_relu', 'cnn_gelu', 'mlp_sigmoid_tanh']) {
    it(`${name} with --approx hermite:2: noiseless plan equals the interpreter`, () => {
      const g = compiledGraph(name, { approx: 'hermite:2' }, 'digits')
      const p = compileCkks(g)
      const x = testImages('digits', 3)
      expect(maxAbsDiff(simulatePlan(p, x)[0].data, reference(g, x).data)).toBeLessThan(1e-9)
      expect(p.params.totalBits).toBeLessThanOrEqual(maxLogQ(p.params.logN, 128))
    })
  }

  it("prices each degree at the depth the lowering really uses (OLA's cost model)", () => {
    // Gemm, Poly, Gemm: each Gemm takes one level (a mulPlain and its rescale), the rest is the Poly's
    const polyDepth = (poly: PolyAttrs) => {
      const b = new GraphBuilder('p', 13)
      b.input('x', 'float32', [1, 16])
      b.constant('w', tensor('float32', [16, 16], Array.from({ length: 256 }, (_, i) => Math.sin(i))))
      b.add('Gemm', ['x', 'w'], { alpha: 1, beta: 1, transA: 0, transB: 0 }, { name: 'h' })
      b.add('Poly', ['h'], { ...poly }, { name: 'y' })
      b.add('Gemm', ['y', 'w'], { alpha: 1, beta: 1, transA: 0, transB: 0 }, { name: 'out' })
      const g = b.build(['out'])
      const p = compileCkks(g)
      const x = tensor('float32', [1, 16], Array.from({ length: 16 }, (_, i) => Math.cos(i) / 4))
      expect(maxAbsDiff(simulatePlan(p, x)[0].data, reference(g, x).data)).toBeLessThan(1e-6)
      const constants = Object.values(p.constants).map((c) => JSON.stringify(c))
      expect(new Set(constants).size).toBe(constants.length)
      return p.stats.depth - 2
    }
    for (const basis of ['chebyshev', 'power'] as const)
      for (let d = 2; d <= 16; d++) {
        const coeffs = [Array.from({ length: d + 1 }, (_, k) => 1 / (k + 1))]
        const depth = polyDepth({ basis, axis: 1, coeffs, shift: [0.5], scale: [4] })
        expect([basis, d, depth]).toEqual([basis, d, polyEvalDepth(d, basis === 'chebyshev')])
        if (basis === 'chebyshev') expect(ckksPolyDepth(d)).toBe(depth)
      }
  })

  it('is deterministic', () => {
    const a = JSON.stringify(compileCkks(compiledGraph('pkn_cnn'), { model: 'pkn_cnn' }))
    const b = JSON.stringify(compileCkks(compiledGraph('pkn_cnn'), { model: 'pkn_cnn' }))
    expect(a).toBe(b)
  })

  it('lowers the unfused graphs too (AESPA before polynomial folding)', () => {
    const g = rawGraph('aespa_cnn')
    const p = compileCkks(g)
    const x = testImages('digits', 3)
    expect(maxAbsDiff(simulatePlan(p, x)[0].data, reference(g, x).data)).toBeLessThan(1e-9)
  })

  it('honours --security 192 and 256', () => {
    for (const security of [192, 256] as const) {
      const p = compileCkks(compiledGraph('cnn_square'), { security })
      expect(p.params.security).toBe(security)
      expect(p.params.totalBits).toBeLessThanOrEqual(maxLogQ(p.params.logN, security))
      expect(p.stats.bootstraps).toBe(0)
    }
  })

  it('places bootstraps when leveled parameters cannot hold the depth', () => {
    const p = compileCkks(compiledGraph('cnn_square'), { security: 192, logN: 13 })
    expect(p.stats.bootstraps).toBeGreaterThan(0)
    expect(p.params.totalBits).toBeLessThanOrEqual(maxLogQ(13, 192))
    expect(p.stats.notes.join('\n')).toMatch(/bootstrap/)
    const x = testImages('digits', 2)
    expect(maxAbsDiff(simulatePlan(p, x)[0].data, reference(compiledGraph('cnn_square'), x).data)).toBeLessThan(1e-9)
  })

  it('splits rotations into power-of-two chains when the keys would exceed the budget', () => {
    const full = plan('cnn_square')
    const per = full.stats.keyBytes.perRotationKey
    const p = compileCkks(compiledGraph('cnn_square'), { keyBudgetBytes: 14 * per })
    expect(p.keys.rotations.length + 1).toBeLessThanOrEqual(14)
    expect(p.stats.keyBytes.total).toBeLessThanOrEqual(14 * per)
    expect(p.stats.counts.rotate).toBeGreaterThan(full.stats.counts.rotate)
    expect(p.stats.notes.join('\n')).toMatch(/split into power-of-two chains/)
    const x = testImages('digits', 2)
    expect(maxAbsDiff(simulatePlan(p, x)[0].data, reference(compiledGraph('cnn_square'), x).data)).toBeLessThan(1e-9)
  })

  it('refuses non-polynomial ops with a clear message', () => {
    expect(() => compileCkks(rawGraph('mlp_relu', 'digits'))).toThrow("node '/act1/Relu' (Relu) is not a polynomial; CKKS needs it approximated (compile with --approx)")
  })

  it('says why a 3-D convolution is refused (both backends), instead of asking for an approximation', () => {
    const b = new GraphBuilder('conv3d', 13)
    b.input('x', 'float32', [1, 2, 4, 4, 4])
    b.constant('w', tensor('float32', [3, 2, 2, 2, 2], new Array(48).fill(0.1)))
    b.add('Conv', ['x', 'w'], { kernel: [2, 2, 2], strides: [1, 1, 1], pads: [0, 0, 0, 0, 0, 0], dilations: [1, 1, 1], autoPad: 'NOTSET', group: 1 }, { name: 'y' })
    const g = b.build(['y'])
    const why = "node 'y' (Conv): convolutions over more than two spatial dimensions are not supported on encrypted values"
    expect(() => compileCkks(g)).toThrow(why)
    expect(() => analyze(g)).toThrow(why)
  })

  it('prints a readable plan and a summary', () => {
    const p = plan('cnn_square')
    const text = printPlan(p)
    expect(text).toMatch(/^ckks plan 'cnn_square'/)
    expect(text).toMatch(/params: N = 8192 \(logN 13\)/)
    expect(text).toMatch(/instructions:\n {2}L\d/)
    const lowered = ckksBackend.lower(compiledGraph('cnn_square'), passContext())
    const s = ckksBackend.summary(lowered.plan, compiledGraph('cnn_square')) as { params: Record<string, unknown>; stats: Record<string, unknown> }
    expect(s.params.logN).toBe(13)
    expect(s.stats.depth).toBe(5)
  })
})
