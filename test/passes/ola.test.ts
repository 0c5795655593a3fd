import { describe, expect, it } from 'vitest'
import { readNpy } from '../../compiler/npy.js'
import { targets, type LayerReport } from '../../passes/approximate.js'
import { calibrate } from '../../passes/calibrate.js'
import { knapsack, ola, olaPoly, Replay, replaceWith } from '../../passes/ola.js'
import { passContext, runPipeline } from '../../passes/pass.js'
import { common, PIPELINES } from '../../passes/pipelines.js'
import type { Graph } from '../../ir/graph.js'
import { digits, MANIFEST, picAsync } from '../helpers.js'
import { agreement, fixture, run } from './util.js'
import { rewrite } from '../../ir/rewrite.js'
import { applyPoly, type PolyAttrs } from '../../ir/ops/pi.js'
import type { Activation } from '../../passes/activations.js'
import type { ActivationStats } from '../../passes/calibrate.js'

const calib = readNpy(digits('calib_x.npy'))

describe('knapsack', () => {
  it('finds the cheapest choice within the budget (checked by enumeration)', () => {
    const options = [
      [{ flips: 5, cost: 1 }, { flips: 2, cost: 3 }, { flips: 0, cost: 6 }],
      [{ flips: 3, cost: 2 }, { flips: 1, cost: 4 }, { flips: 0, cost: 5 }],
      [{ flips: 1, cost: 1 }, { flips: 0, cost: 2 }],
    ]
    for (const units of [0, 1, 2, 3, 4, 6, 9]) {
      let best = Infinity
      for (const a of options[0]) for (const b of options[1]) for (const c of options[2]) if (a.flips + b.flips + c.flips <= units) best = Math.min(best, a.cost + b.cost + c.cost)
      const pick = knapsack(options, units)!
      expect(pick.reduce((s, k, l) => s + options[l][k].cost, 0)).toBe(best)
      expect(pick.reduce((s, k, l) => s + options[l][k].flips, 0)).toBeLessThanOrEqual(units)
    }
  })
})

describe('olaPoly', () => {
  // ReLU inputs ~ N(0, 1) seen in [-10, 10]: 512 bins, almost all of the mass within 3 standard deviations
  const bins = 512
  const counts = Array.from({ length: bins }, (_, i) => {
    const x = -10 + (20 * (i + 0.5)) / bins
    return Math.round(1e6 * Math.exp(-x * x / 2))
  })
  counts[0] = counts[bins - 1] = 1
  const act = { fn: (x: Float64Array) => x.map((v) => Math.max(0, v)), target: 'Relu', kinks: [0] } as unknown as Activation
  const st = { histogram: { lo: -10, hi: 10, counts } } as unknown as ActivationStats

  it('stays bounded where the calibration density is nearly zero (a share of the weight spread over the interval)', () => {
    const supError = (tail: number) => {
      const p = olaPoly(act, st, 31, 1, tail)
      const [a, b] = p.interval!
      const x = Float64Array.from({ length: 4001 }, (_, i) => a + ((b - a) * i) / 4000)
      const y = applyPoly(p, { dtype: 'float64', shape: [x.length], data: x }, { dtype: 'float64', shape: [x.length] })
      return Math.max(...Array.from(x, (v, i) => Math.abs(y[i] - Math.max(0, v))))
    }
    // ReLU reaches 10 on the interval; the best uniform error at degree 31 is about 0.14 * 10 / 31 = 0.05
    // (Bernstein's constant for |x|, halved): the fit, which spends its weight on the bulk, stays within 20% of the range
    expect(supError(1e-3)).toBeLessThan(2)
    // the density alone leaves the tails free: the broken variant (no spread weight) is off by 10x the range there
    expect(supError(0)).toBeGreaterThan(100)
  })

  it('covers inputs a little past the calibrated range (the interval is 5% wider on each side)', () => {
    const p = olaPoly(act, st, 31)
    expect(p.interval).toEqual([-11, 11])
    // an unseen input 5% of the range past the calibrated maximum (fmnist32/resnet20's test images reach 4.4% past it)
    const at = (q: PolyAttrs, v: number) => applyPoly(q, { dtype: 'float64', shape: [1], data: Float64Array.of(v) }, { dtype: 'float64', shape: [1] })[0]
    expect(Math.abs(at(p, 11) - 11)).toBeLessThan(2)
    // the broken variant: the same fit on the calibrated range plus one histogram bin, as before; past it the degree-31 fit diverges
    const narrow = olaPoly(act, st, 31, 1, 1e-3, 1 / bins)
    expect(Math.abs(at(narrow, 11) - 11)).toBeGreaterThan(20)
  })
})

describe('Replay', () => {
  it('replaying only the downstream part equals interpreting the rewritten graph', () => {
    const g = runPipeline(fixture('cnn_bn_relu_maxpool'), common, passContext())
    const acts = targets(g, false)
    const st = calibrate(g, calib, { nodes: acts.map((a) => a.node.name) })
    const act = acts[1]
    const poly = olaPoly(act, st.get(act.node.name)!, 3)
    const x = readNpy(digits('calib_x.npy'))
    const replay = new Replay(g, x)
    const fast = replay.run(new Map([[act.node.name, replaceWith(act, poly)]]))
    const rewritten = rewrite(g, [{ name: 'one', on: ['Relu'], apply: (n) => (n.name === act.node.name ? { op: 'Poly', inputs: n.inputs, attrs: { ...poly } } : undefined) }])
    const [slow] = run(rewritten, [x])
    expect(Array.from(fast.data)).toEqual(Array.from(slow.data))
    const [orig] = run(g, [x])
    expect(replay.flips(fast)).toBe(Math.round(x.shape[0] * (1 - agreement(orig, slow))))
  })

  it('runs float64 calibration data the way the interpreter does (cast to the input dtype)', () => {
    const g = runPipeline(fixture('mlp_relu'), common, passContext())
    const x = { ...calib, dtype: 'float64' as const, data: calib.data.map((v, i) => v + 1e-9 * (i % 7)) }
    const [want] = run(g, [x])
    expect(Array.from(new Replay(g, x).values.get(g.outputs[0])!.data)).toEqual(Array.from(want.data))
  })

  it('re-evaluating one changed layer from a joint run equals evaluating everything again', () => {
    const g = runPipeline(fixture('cnn_bn_relu_maxpool'), common, passContext())
    const acts = targets(g, false)
    const st = calibrate(g, calib, { nodes: acts.map((a) => a.node.name) })
    const fit = (k: number, d: number) => replaceWith(acts[k], olaPoly(acts[k], st.get(acts[k].node.name)!, d))
    const replay = new Replay(g, calib)
    const before = new Map([[acts[0].node.name, fit(0, 3)], [acts[1].node.name, fit(1, 3)]])
    const after = new Map([[acts[0].node.name, fit(0, 3)], [acts[1].node.name, fit(1, 5)]])
    const base = replay.evaluate(before)
    const partial = replay.evaluate(after, [acts[1].node.name], base).get(g.outputs[0])!
    expect(Array.from(partial.data)).toEqual(Array.from(replay.run(after).data))
    expect(Array.from(partial.data)).not.toEqual(Array.from(base.get(g.outputs[0])!.data))
  })
})

describe('ola', () => {
  it('stops where no layer can take a cheaper measured degree with the joint error within budget', () => {
    const g = runPipeline(fixture('cnn_bn_relu_maxpool'), common, passContext())
    const acts = targets(g, false)
    const st = calibrate(g, calib, { nodes: acts.map((a) => a.node.name) })
    const layers = acts.map((act) => ({ act, stats: st.get(act.node.name)! }))
    const keep = 0.2
    const r = ola(g, layers, calib, { budget: 0.02, keep })
    const replay = new Replay(g, calib)
    const allowed = 0.02 * calib.shape[0]
    const chosen = new Map(layers.map(({ act }) => [act.node.name, replaceWith(act, r.choices.get(act.node.name)!.poly)]))
    const joint = replay.loss(replay.run(chosen), keep)
    expect(joint).toBeLessThanOrEqual(allowed + 1e-9)
    expect(r.jointError).toBe(joint / calib.shape[0])
    let tried = 0
    for (const { act, stats } of layers) {
      const c = r.choices.get(act.node.name)!
      for (const cand of c.candidates.filter((o) => o.cost < c.cost && o.loss <= allowed)) {
        const alt = new Map(chosen).set(act.node.name, replaceWith(act, olaPoly(act, stats, cand.degree)))
        expect(replay.loss(replay.run(alt), keep)).toBeGreaterThan(allowed)
        tried++
      }
    }
    expect(tried).toBeGreaterThan(0)
  })
})

describe('replaying a choice', () => {
  const compileWith = (model: string, approx: string, logs: string[] = []) => {
    const cx = passContext({ approx }, { calib, log: (m: string) => logs.push(m) })
    return runPipeline(fixture(model), PIPELINES.ckks({ approx }), cx)
  }
  const hintIn = (logs: string[]) => logs.map((m) => /--approx (wls:[\d,]+) fits the same polynomials/.exec(m)?.[1]).find(Boolean)
  const polys = (g: Graph) => g.nodes.filter((n) => n.op === 'Poly').map((n) => n.attrs)

  it('wls with the degree list OLA logged fits the same polynomials (mlp_sigmoid_tanh, two layers)', () => {
    const logs: string[] = []
    const a = compileWith('mlp_sigmoid_tanh', 'ola:0.01', logs)
    const hint = hintIn(logs)
    expect(hint).toMatch(/^wls:\d+,\d+$/)
    expect(polys(a)).toHaveLength(2)
    expect(polys(compileWith('mlp_sigmoid_tanh', hint!))).toEqual(polys(a))
  })

  it('logs no list where OLA kept a per-channel Hermite fit, which a wls list would not reproduce (senet_partial_relu)', () => {
    const logs: string[] = []
    compileWith('senet_partial_relu', 'ola:0.01', logs)
    expect(logs.some((m) => m.startsWith('ola: layer'))).toBe(true)
    expect(hintIn(logs)).toBeUndefined()
  })
})

// Through `pic eval` in a child process: resnet8's OLA run takes 40-70 s on a loaded machine, and a
// test that long in the worker's own thread trips vitest's 60 s RPC timeout ("onTaskUpdate").
describe('ola:0.01 keeps digits test accuracy within 1.5 points (pic eval)', () => {
  for (const model of ['mlp_relu', 'cnn_bn_relu_maxpool', 'resnet8', 'cnn_gelu', 'mlp_sigmoid_tanh', 'senet_partial_relu'])
    it(model, async () => {
      const r = await picAsync('eval', digits(`${model}.onnx`), '--data', digits('test_x.npy'), '--labels', digits('test_y.npy'), '--approx', 'ola:0.01', '--calib', digits('calib_x.npy'), '--json', '--quiet')
      expect(r.stderr).toBe('')
      expect(r.code).toBe(0)
      const out = JSON.parse(r.stdout) as { accuracy: { original: number; compiled: number }; layers: LayerReport[]; ola: { jointAgreementDrop: number; totalCost: number } }
      expect(out.accuracy.original).toBeCloseTo(MANIFEST.models[model].test_accuracy, 6)
      expect(out.accuracy.compiled).toBeGreaterThanOrEqual(MANIFEST.models[model].test_accuracy - 0.015)
      expect(out.layers.length).toBeGreaterThan(0)
      expect(out.layers.every((l) => l.method === 'ola' && l.degree >= 1)).toBe(true)
      expect(out.ola.jointAgreementDrop).toBeLessThanOrEqual(0.01 + 1e-12)
      expect(out.ola.totalCost).toBeCloseTo(out.layers.reduce((s, l) => s + l.cost!, 0), 9)
    })
})
