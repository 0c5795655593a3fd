import { describe, expect, it } from 'vitest'
import { readNpy } from '../../compiler/npy.js'
import { GraphBuilder } from '../../ir/builder.js'
import type { Graph } from '../../ir/graph.js'
import type { PartialReluAttrs, PolyAttrs } from '../../ir/ops/pi.js'
import { nonPolynomialNodes } from '../../ir/stats.js'
import { tensor, type Tensor } from '../../ir/tensor.js'
import { approximate, parseApprox, type LayerReport } from '../../passes/approximate.js'
import { passContext, runPipeline } from '../../passes/pass.js'
import { PIPELINES, common } from '../../passes/pipelines.js'
import { digits } from '../helpers.js'
import { accuracy, fixture, ops, run } from './util.js'

const calib = readNpy(digits('calib_x.npy'))

function compile(model: string, options: Record<string, unknown>) {
  const cx = passContext(options, { calib })
  const g = runPipeline(fixture(model), PIPELINES.ckks(options), cx)
  return { g, report: cx.report }
}

/** Op types of the secret non-polynomial nodes left. */
const nonPolynomial = (g: Graph): string[] => nonPolynomialNodes(g).map((n) => n.op)

describe('parseApprox', () => {
  it('reads every spec', () => {
    expect(parseApprox('none')).toEqual({ method: 'none' })
    expect(parseApprox('hermite:2')).toEqual({ method: 'hermite', degree: 2 })
    expect(parseApprox('chebyshev:15')).toEqual({ method: 'chebyshev', degree: 15 })
    expect(parseApprox('minimax:7')).toEqual({ method: 'minimax', degree: 7 })
    expect(parseApprox('wls:12')).toEqual({ method: 'wls', degree: 12 })
    expect(parseApprox('wls:3,8,2')).toEqual({ method: 'wls', degree: 8, degrees: [3, 8, 2] })
    expect(parseApprox('ola')).toEqual({ method: 'ola', budget: 0.01 })
    expect(parseApprox('ola:0.05')).toEqual({ method: 'ola', budget: 0.05 })
  })
  it('names what is wrong', () => {
    expect(() => parseApprox('hermite')).toThrow("--approx 'hermite': the degree must be an integer from 1 to 127")
    expect(() => parseApprox('minimax:2.5')).toThrow("--approx 'minimax:2.5': the degree must be an integer from 1 to 127")
    expect(() => parseApprox('wls:3,,2')).toThrow("--approx 'wls:3,,2': the degree must be an integer from 1 to 127 (or a list D1,D2,... of them, one per layer)")
    expect(() => parseApprox('wls:3,200')).toThrow('the degree must be an integer from 1 to 127')
    expect(() => parseApprox('ola:2')).toThrow("--approx 'ola:2': the OLA budget must be a number between 0 and 1")
    expect(() => parseApprox('taylor:3')).toThrow("--approx 'taylor:3': expected none, hermite:D, chebyshev:D, minimax:D, wls:D or ola[:BUDGET]")
  })
})

describe('approximate on small graphs', () => {
  /** Calibration data whose two channels have exactly mean 0 / std 1 and mean 2 / std 0.5. */
  function standardized(): Tensor {
    const v = [-1.5, -0.5, 0.5, 1.5]
    const s = Math.sqrt(v.reduce((a, t) => a + t * t, 0) / 4)
    const z = v.map((t) => t / s)
    return tensor('float32', [4, 2], z.flatMap((t) => [t, 2 + 0.5 * t]))
  }
  function reluGraph(): Graph {
    const b = new GraphBuilder('g', 13)
    b.input('x', 'float32', ['N', 2])
    b.add('Relu', ['x'], {}, { name: 'y' })
    return b.build(['y'])
  }

  it('hermite:2 is the per-channel AESPA fit from the calibration mean and std', () => {
    const cx = passContext({ approx: 'hermite:2' }, { calib: standardized() })
    const out = runPipeline(reluGraph(), [approximate], cx)
    const p = out.nodes.find((n) => n.op === 'Poly')!.attrs as unknown as PolyAttrs
    expect(p.basis).toBe('hermite')
    expect(p.shift[0]).toBeCloseTo(0, 6)
    expect(p.scale[0]).toBeCloseTo(1, 6)
    ;[1 / Math.sqrt(2 * Math.PI), 0.5, 1 / Math.sqrt(4 * Math.PI)].forEach((c, k) => expect(p.coeffs[0][k]).toBeCloseTo(c, 6))
    expect(p.shift[1]).toBeCloseTo(2, 6)
    expect(p.scale[1]).toBeCloseTo(0.5, 6)
    const layers = cx.report.layers as LayerReport[]
    expect(layers).toHaveLength(1)
    expect(layers[0]).toMatchObject({ name: 'y', op: 'Relu', method: 'hermite', degree: 2, depth: 2 })
  })

  it('needs calibration data', () => {
    expect(() => runPipeline(reluGraph(), [approximate], passContext({ approx: 'chebyshev:4' }))).toThrow('--approx chebyshev needs calibration data (--calib)')
  })

  it('approximates only the masked positions of a PartialRelu', () => {
    const b = new GraphBuilder('g', 13)
    b.input('x', 'float32', ['N', 2, 2])
    b.add('PartialRelu', ['x'], { mask: tensor('float32', [1, 2, 1], [1, 0]) }, { name: 'y' })
    const g = b.build(['y'])
    const x = tensor('float32', [3, 2, 2], [-1, 2, -3, 4, 0.5, -0.5, 1.5, -2, 3, 1, -1, 0])
    const out = runPipeline(g, [approximate], passContext({ approx: 'chebyshev:6' }, { calib: x }))
    expect(ops(out)).toMatchObject({ PartialRelu: 1 })
    expect((out.nodes.find((n) => n.op === 'PartialRelu')!.attrs as unknown as PartialReluAttrs).poly).toBeDefined()
    const [y] = run(out, [x])
    for (let i = 0; i < 12; i++) if (Math.floor(i / 2) % 2 === 1) expect(y.data[i]).toBe(x.data[i])
    const [exact] = run(g, [x])
    for (let i = 0; i < 12; i++) expect(Math.abs(y.data[i] - exact.data[i])).toBeLessThan(0.5)
  })
})

describe('approximate on the digits fixtures', () => {
  it('leaves no non-polynomial op for CKKS and keeps accuracy (chebyshev:8 on mlp_sigmoid_tanh)', () => {
    const { g, report } = compile('mlp_sigmoid_tanh', { approx: 'chebyshev:8' })
    expect(nonPolynomial(g)).toEqual([])
    expect(ops(g).Poly).toBe(2)
    expect(accuracy(g)).toBeGreaterThanOrEqual(0.9658 - 0.015)
    const layers = report.layers as LayerReport[]
    expect(layers.map((l) => [l.op, l.method, l.degree])).toEqual([['Sigmoid', 'chebyshev', 8], ['Tanh', 'chebyshev', 8]])
    for (const l of layers) {
      expect(l.interval![0]).toBeLessThan(l.stats.min)
      expect(l.interval![1]).toBeGreaterThan(l.stats.max)
      expect(l.rmsError).toBeLessThanOrEqual(l.maxAbsError)
      expect(l.maxAbsError).toBeLessThan(0.05)
    }
  })

  it('wls:D gives every layer the density-weighted fit at degree D and keeps accuracy (wls:3 on resnet8)', () => {
    const { g, report } = compile('resnet8', { approx: 'wls:3' })
    expect(nonPolynomial(g)).toEqual([])
    const layers = report.layers as LayerReport[]
    expect(layers.map((l) => [l.method, l.basis, l.degree])).toEqual(Array(7).fill(['wls', 'chebyshev', 3]))
    expect(accuracy(g)).toBeGreaterThanOrEqual(accuracy(runPipeline(fixture('resnet8'), common, passContext())) - 0.015)
  })

  it('a degree list gives each layer its own degree, in graph order, and must name every layer', () => {
    const { report } = compile('resnet8', { approx: 'wls:1,2,3,4,5,6,7' })
    expect((report.layers as LayerReport[]).map((l) => l.degree)).toEqual([1, 2, 3, 4, 5, 6, 7])
    expect(() => compile('resnet8', { approx: 'wls:3,2' })).toThrow(/^--approx wls:3,2: 2 degrees given for 7 approximated layers \(/)
  })

  it('lowers MaxPool through a polynomial sign (minimax:7 on cnn_bn_relu_maxpool)', () => {
    const { g, report } = compile('cnn_bn_relu_maxpool', { approx: 'minimax:7' })
    expect(nonPolynomial(g)).toEqual([])
    const signs = g.nodes.filter((n) => n.op === 'Poly' && (n.attrs as unknown as PolyAttrs).of === 'Sign')
    expect(signs).toHaveLength(3)
    expect((report.layers as LayerReport[]).map((l) => l.op)).toEqual(['Relu', 'Abs', 'Abs', 'Abs', 'Relu'])
  })

  it('--keep-relu approximates everything but ReLU', () => {
    const { g } = compile('cnn_bn_relu_maxpool', { approx: 'hermite:2', keepRelu: true })
    expect(ops(g)).toMatchObject({ Relu: 2, MaxPool: 1 })
    expect(ops(g).Poly).toBeUndefined()
    const s = compile('senet_partial_relu', { approx: 'hermite:2', keepRelu: true }).g
    expect(ops(s).PartialRelu).toBe(2)
    const m = compile('mlp_sigmoid_tanh', { approx: 'hermite:3', keepRelu: true }).g
    expect(ops(m).Poly).toBe(2)
  })

  it('recognized GELU becomes one polynomial per layer (hermite:4 on cnn_gelu)', () => {
    const { g } = compile('cnn_gelu', { approx: 'hermite:4' })
    expect(nonPolynomial(g)).toEqual([])
    expect(g.nodes.filter((n) => n.op === 'Poly').map((n) => (n.attrs as unknown as PolyAttrs).of)).toEqual(['Gelu', 'Gelu'])
  })

  it('none changes nothing', () => {
    const g = runPipeline(fixture('mlp_relu'), common, passContext())
    expect(runPipeline(g, [approximate], passContext({ approx: 'none' }, { calib }))).toBe(g)
  })
})
