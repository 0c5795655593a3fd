/**
 * approximate-normalizations: the IR before and after for a LayerNorm and a Softmax, a graph without
 * them unchanged, the approximations against the exact ops (the interpreter) within bounds derived
 * here from the emitted guess polynomials, broken variants (no Newton steps, a guess fitted on the
 * wrong range) failing those bounds, and the CLI's refusal of malformed specs.
 */
import { spawnSync } from 'node:child_process'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { GraphBuilder } from '../../ir/builder.js'
import type { Graph } from '../../ir/graph.js'
import { interpret } from '../../ir/interpret.js'
import type { PolyAttrs } from '../../ir/ops/pi.js'
import { evalBasis } from '../../ir/poly.js'
import type { Tensor } from '../../ir/tensor.js'
import { approximateNormalizations, parseNormSpec, parseSoftmaxSpec, type NormalizationReport } from '../../passes/approximate-normalizations.js'
import { passContext, runPipeline } from '../../passes/pass.js'
import { constant, onnxNode, random, skeleton } from './util.js'

function lnGraph(): Graph {
  const b = new GraphBuilder('ln', 17, { N: 8 })
  b.input('x', 'float32', ['N', 4, 8])
  constant(b, 's', [8], random([8], 2, 0.5, 1.5))
  constant(b, 'b', [8], random([8], 3, -1, 1))
  onnxNode(b, 'LayerNormalization', ['x', 's', 'b'], 'ln', { axis: -1, epsilon: 1e-5 })
  return b.build(['ln'])
}

function smGraph(): Graph {
  const b = new GraphBuilder('sm', 17, { N: 8 })
  b.input('x', 'float32', ['N', 3, 6])
  onnxNode(b, 'Softmax', ['x'], 'sm', { axis: -1 })
  return b.build(['sm'])
}

/** Calibration rows whose scale varies from `lo` to about `hi` (LayerNorm: var from about 0.08 to 1.3). */
function calib(shape: number[], seed: number, lo = 0.5, hi = 2): Tensor {
  const x = random(shape, seed, -1, 1)
  const per = x.data.length / shape[0]
  for (let i = 0; i < shape[0]; i++) for (let j = 0; j < per; j++) x.data[i * per + j] *= lo + ((hi - lo) * i) / shape[0]
  return x
}

function approx(g: Graph, options: Record<string, unknown>, x: Tensor): { h: Graph; layers: NormalizationReport[] } {
  const cx = passContext(options, { calib: x })
  const h = runPipeline(g, [approximateNormalizations], cx)
  return { h, layers: cx.report.normalizations as NormalizationReport[] }
}

const out = (g: Graph, x: Tensor) => interpret(g, [x]).get(g.outputs[0])!

/** The guess's relative error range max |p(t) f(t)^-1 - 1| on [lo, hi], evaluated here from the emitted Poly. */
function guessError(h: Graph, f: (t: number) => number): number {
  const p = h.nodes.find((n) => n.op === 'Poly')!.attrs as unknown as PolyAttrs
  const [lo, hi] = p.interval!
  let e = 0
  for (let i = 0; i <= 4000; i++) {
    const t = lo + ((hi - lo) * i) / 4000
    e = Math.max(e, Math.abs(evalBasis(p.basis, p.coeffs[0], (t - p.shift[0]) / p.scale[0]) / f(t) - 1))
  }
  return e
}

describe('approximate-normalizations', () => {
  it('replaces LayerNorm by mean, variance, a guess and Newton steps, each secret product between equal shapes', () => {
    const g = lnGraph()
    const { h, layers } = approx(g, { approxNorm: 'newton:2,1' }, calib([8, 4, 8], 5))
    expect(skeleton(g)).toEqual(['ln = LayerNormalization(x, #s, #b)'])
    expect(skeleton(h)).toEqual([
      'ln_mean = ReduceMean(x)',
      'ln_d = Sub(x, ln_mean)',
      'ln_dd = Mul(ln_d, ln_d)',
      'ln_var = ReduceMean(ln_dd)',
      'ln_veps = Add(ln_var, #ln_veps_c)',
      'ln_guess = Poly(ln_veps)',
      'ln_vy0 = Mul(ln_veps, ln_guess)',
      'ln_yy0 = Mul(ln_guess, ln_guess)',
      'ln_vy3_0 = Mul(ln_vy0, ln_yy0)',
      'ln_h0_mul = Mul(ln_vy3_0, #ln_h0_a)',
      'ln_y15_0_mul = Mul(ln_guess, #ln_y15_0_a)',
      'ln_newton0 = Add(ln_y15_0_mul, ln_h0_mul)',
      'ln_expand = Expand(ln_newton0, #ln_shape)',
      'ln_normed = Mul(ln_d, ln_expand)',
      'ln_scaled = Mul(ln_normed, #s)',
      'ln = Add(ln_scaled, #b)',
    ])
    for (const n of h.nodes.filter((v) => v.op === 'Mul' && !v.inputs.some((i) => h.nodes.find((c) => c.name === i)?.op === 'Constant')))
      expect(h.nodes.find((c) => c.name === n.inputs[0])!.type.shape).toEqual(h.nodes.find((c) => c.name === n.inputs[1])!.type.shape)
    expect(layers[0]).toMatchObject({ op: 'LayerNormalization', method: 'newton', guessDegree: 2, newtonSteps: 1, depth: 1 + 2 + 2 + 1 })
  })

  it('replaces Softmax by a shift, (1 + z / 2^K)^(2^K), a sum and a Newton reciprocal', () => {
    const g = smGraph()
    const x = calib([8, 3, 6], 7)
    const { h, layers } = approx(g, { approxSoftmax: 'exp:2+newton:1,1' }, x)
    expect(skeleton(g)).toEqual(['sm = Softmax(x)'])
    expect(skeleton(h)).toEqual([
      'sm_base_mul = Mul(x, #sm_base_a)',
      'sm_base = Add(sm_base_mul, #sm_base_c)',
      'sm_sq0 = Mul(sm_base, sm_base)',
      'sm_sq1 = Mul(sm_sq0, sm_sq0)',
      'sm_sum = ReduceSum(sm_sq1, #sm_axes)',
      'sm_guess = Poly(sm_sum)',
      'sm_sy0 = Mul(sm_sum, sm_guess)',
      'sm_two0_mul = Mul(sm_sy0, #sm_two0_a)',
      'sm_two0 = Add(sm_two0_mul, #sm_two0_c)',
      'sm_newton0 = Mul(sm_guess, sm_two0)',
      'sm_expand = Expand(sm_newton0, #sm_shape)',
      'sm = Mul(sm_sq1, sm_expand)',
    ])
    // c is the calibrated max of x: z = x - c <= 0 on every calibration value
    expect(layers[0].shift).toBe(Math.max(...x.data))
    expect(layers[0]).toMatchObject({ op: 'Softmax', method: 'exp', expSquarings: 2, guessDegree: 1, newtonSteps: 1, depth: 2 + 1 + 2 + 1 })
  })

  it('leaves a graph without LayerNorm or Softmax unchanged', () => {
    const b = new GraphBuilder('plain', 17, { N: 2 })
    b.input('x', 'float32', ['N', 4])
    onnxNode(b, 'Relu', ['x'], 'r')
    onnxNode(b, 'Mul', ['r', 'r'], 'm')
    const g = b.build(['m'])
    const { h } = approx(g, { approxNorm: 'newton:3,3', approxSoftmax: 'exp:8' }, random([4, 4], 1))
    expect(h).toBe(g)
    // and without the options the pass does nothing to a LayerNorm either
    expect(skeleton(approx(lnGraph(), {}, calib([8, 4, 8], 5)).h)).toEqual(['ln = LayerNormalization(x, #s, #b)'])
  })

  /**
   * LayerNorm's bound: with y0 = (1 + e0) / sqrt(v), |e0| <= E0 (measured here on the Poly the pass
   * emitted), a Newton step gives e' = -e^2 (3 + e) / 2, so |e_1| <= E0^2 (3 + E0) / 2 and then, e being
   * negative, |e_{k+1}| <= e_k^2 (3 - e_k) / 2. The output is d y s + b, so |out - exact| <= |e_K| |exact - b|.
   */
  function lnBound(E0: number, K: number): number {
    let t = E0
    for (let k = 0; k < K; k++) t = k === 0 ? (t * t * (3 + t)) / 2 : (t * t * (3 - t)) / 2
    return t
  }

  function lnError(h: Graph, g: Graph, x: Tensor): number {
    const [a, e] = [out(h, x), out(g, x)]
    const bias = g.nodes.find((n) => n.name === 'b')!
    const bv = (bias.attrs as { value: Tensor }).value.data
    let worst = 0
    for (let i = 0; i < e.data.length; i++) worst = Math.max(worst, Math.abs(a.data[i] - e.data[i]) / Math.max(1e-300, Math.abs(e.data[i] - bv[i % 8])))
    return worst
  }

  it('LayerNorm matches the exact op within the Newton bound from the guess error; without the steps it does not', () => {
    const g = lnGraph()
    const x = calib([8, 4, 8], 5)
    const { h } = approx(g, { approxNorm: 'newton:2,4' }, x)
    const E0 = guessError(h, (t) => 1 / Math.sqrt(t))
    const bound = lnBound(E0, 4)
    expect(E0).toBeGreaterThan(0.01)
    expect(bound).toBeLessThan(1e-4)
    expect(lnError(h, g, x)).toBeLessThanOrEqual(bound + 1e-12)
    // broken: the same guess with 0 Newton steps is off by far more than the 4-step bound
    const broken = approx(g, { approxNorm: 'newton:2,0' }, x).h
    expect(lnError(broken, g, x)).toBeGreaterThan(100 * bound)
  })

  it('a guess fitted on the wrong range (calibration 100x smaller) fails the bound on the real inputs', () => {
    const g = lnGraph()
    const x = calib([8, 4, 8], 5)
    const small = { ...x, data: x.data.map((v) => v / 100) }
    const wrong = approx(g, { approxNorm: 'newton:2,3' }, small).h
    const good = approx(g, { approxNorm: 'newton:2,3' }, x).h
    const bound = lnBound(guessError(good, (t) => 1 / Math.sqrt(t)), 3)
    expect(lnError(wrong, g, x)).toBeGreaterThan(100 * bound)
  })

  /**
   * Softmax's bound: e_j = exp(z_j) (1 + d_j), |d_j| <= D, D = max over the fit interval of
   * |(1 + z/2^K)^(2^K) e^-z - 1| (computed here), so the sum is s (1 + d) with |d| <= D; the reciprocal
   * r = (1 - rho) / s_hat with |rho| <= R0^(2^N) (R0 the guess's relative error, measured here on the
   * emitted Poly). Then out_j / softmax_j = (1 + d_j)(1 - rho) / (1 + d): relative error at most
   * (1 + D)(1 + rho) / (1 - D) - 1.
   */
  it('Softmax matches the exact op within the exp and reciprocal bounds; with no Newton steps it does not', () => {
    const g = smGraph()
    const x = calib([8, 3, 6], 7, 0.5, 1.5)
    const K = 12
    const N = 6
    const { h, layers } = approx(g, { approxSoftmax: `exp:${K}+newton:1,${N}` }, x)
    const [zlo, zhi] = layers[0].expInterval!
    let D = 0
    for (let i = 0; i <= 2000; i++) {
      const z = zlo + ((zhi - zlo) * i) / 2000
      D = Math.max(D, Math.abs((1 + z / 2 ** K) ** (2 ** K) * Math.exp(-z) - 1))
    }
    const rho = guessError(h, (s) => 1 / s) ** (2 ** N)
    const bound = ((1 + D) * (1 + rho)) / (1 - D) - 1
    expect(bound).toBeLessThan(1e-2)
    const rel = (hh: Graph) => {
      const [a, e] = [out(hh, x), out(g, x)]
      return Math.max(...Array.from(e.data, (v, i) => Math.abs(a.data[i] / v - 1)))
    }
    expect(rel(h)).toBeLessThanOrEqual(bound + 1e-12)
    const broken = approx(g, { approxSoftmax: `exp:${K}+newton:1,0` }, x).h
    expect(rel(broken)).toBeGreaterThan(10 * bound)
  })

  it('2quad and thex are the polynomial (and ReLU) attention replacements', () => {
    const g = smGraph()
    const x = calib([8, 3, 6], 7)
    const q = approx(g, { approxSoftmax: '2quad:5+newton:2,12' }, x).h
    const t = approx(g, { approxSoftmax: 'thex+newton:2,30' }, x).h
    const [yq, yt] = [out(q, x), out(t, x)]
    for (let i = 0; i < x.data.length; i++) {
      const row = Math.floor(i / 6) * 6
      const sq = Array.from({ length: 6 }, (_, j) => (x.data[row + j] + 5) ** 2).reduce((p, v) => p + v)
      expect(Math.abs(yq.data[i] - (x.data[i] + 5) ** 2 / sq)).toBeLessThan(1e-6)
    }
    expect(t.nodes.some((n) => n.op === 'Relu')).toBe(true)
    // every row of the ReLU attention sums to 1
    for (let r = 0; r < yt.data.length / 6; r++) expect(Math.abs(yt.data.slice(r * 6, r * 6 + 6).reduce((p, v) => p + v) - 1)).toBeLessThan(1e-6)
  })

  it('refuses a graph that reads LayerNormalization output 1 or 2 of a secret', () => {
    const b = new GraphBuilder('ln2', 17, { N: 2 })
    b.input('x', 'float32', ['N', 4])
    constant(b, 's', [4], random([4], 2, 0.5, 1.5))
    b.add('LayerNormalization', ['x', 's'], { axis: -1, epsilon: 1e-5, output: 1, outputs: 3 }, { name: 'mean' })
    const g = b.build(['mean'])
    expect(() => approx(g, { approxNorm: 'newton:3,3' }, random([4, 4], 1))).toThrow(/output 1 \(mean or inverse std\)/)
  })

  it('parses the specs and refuses malformed ones with one line', () => {
    expect(parseNormSpec('newton:3,2')).toEqual({ method: 'newton', degree: 3, steps: 2 })
    expect(parseSoftmaxSpec('exp:8+newton:1,20')).toEqual({ method: 'exp', squarings: 8, recip: { degree: 1, steps: 20 } })
    expect(parseSoftmaxSpec('2quad')).toMatchObject({ method: '2quad', c: 5 })
    expect(() => parseNormSpec('newton:3')).toThrow("--approx-norm 'newton:3': expected newton:D,K")
    expect(() => parseSoftmaxSpec('exp:0')).toThrow("--approx-softmax 'exp:0': exp:K needs K squarings from 1 to 30")
    expect(() => parseSoftmaxSpec('cubic')).toThrow(/expected none, exp:K, poly:D, 2quad\[:C\] or thex/)
  })

  it('pic eval refuses a malformed --approx-norm with one pic: error line', () => {
    const root = path.resolve(import.meta.dirname, '../..')
    const f = (n: string) => `test/fixtures/fmnist32/${n}`
    const r = spawnSync(process.execPath, [path.join(root, 'node_modules/vite-node/vite-node.mjs'), 'compiler/cli.ts', '--', 'eval', f('convnext_mini.onnx'), '--data', f('test_x.npy'), '--labels', f('test_y.npy'), '--calib', f('calib_x.npy'), '--approx-norm', 'newton:x,3'], {
      cwd: root,
      encoding: 'utf8',
      timeout: 60_000,
    })
    expect(r.status).toBe(2)
    expect(r.stderr.split('\n')[0]).toBe("pic: error: --approx-norm 'newton:x,3': expected newton:D,K with D an initial-guess degree from 0 to 63 and K Newton steps from 0 to 64")
  }, 60_000)
})
