import { describe, expect, it } from 'vitest'
import { readNpy } from '../../compiler/npy.js'
import type { Graph } from '../../ir/graph.js'
import type { PartialReluAttrs } from '../../ir/ops/pi.js'
import { broadcastIndex } from '../../ir/ops/util.js'
import { sizeOf } from '../../ir/tensor.js'
import { passContext, runPipeline } from '../../passes/pass.js'
import { common } from '../../passes/pipelines.js'
import { parseReluBudget, reluBudget, type ReluBudgetLayer } from '../../passes/relu-budget.js'
import { digits, MANIFEST } from '../helpers.js'
import { accuracy, fixture, ops } from './util.js'

const calib = readNpy(digits('calib_x.npy'))

/** ReLU positions per sample: a Relu counts its whole value, a PartialRelu its mask's ones. */
function relus(g: Graph): number {
  let n = 0
  for (const v of g.nodes) {
    const per = [1, ...v.type.shape.slice(1)]
    if (v.op === 'Relu') n += sizeOf(per)
    if (v.op === 'PartialRelu') {
      const m = (v.attrs as unknown as PartialReluAttrs).mask
      const idx = broadcastIndex(m.shape, per)
      for (let i = 0; i < sizeOf(per); i++) n += m.data[idx ? idx[i] : i]
    }
  }
  return n
}

const budget = (model: string, reluBudgetOption: unknown) => {
  const g = runPipeline(fixture(model), common, passContext())
  const cx = passContext({ reluBudget: reluBudgetOption }, { calib })
  return { g, out: runPipeline(g, [reluBudget], cx), report: cx.report.reluBudget as { budget: number; total: number; kept: number; layers: ReluBudgetLayer[] } }
}

describe('parseReluBudget', () => {
  it('reads counts and fractions', () => {
    expect(parseReluBudget('500', 768)).toBe(500)
    expect(parseReluBudget(2000, 768)).toBe(768)
    expect(parseReluBudget('0.25', 768)).toBe(192)
    expect(parseReluBudget('50%', 768)).toBe(384)
    expect(() => parseReluBudget('half', 768)).toThrow("--relu-budget 'half': expected a count (e.g. 500) or a fraction (e.g. 0.25 or 25%)")
    expect(() => parseReluBudget('1.5', 768)).toThrow("--relu-budget '1.5'")
  })
})

describe('relu-budget', () => {
  it('keeps exactly the budget as partial-ReLU masks, with a per-layer report', () => {
    const { g, out, report } = budget('cnn_bn_relu_maxpool', '0.5')
    const total = 8 * 8 * 8 + 16 * 4 * 4
    expect(relus(g)).toBe(total)
    expect(relus(out)).toBe(total / 2)
    expect(ops(out).Relu ?? 0).toBe(0)
    expect(report).toMatchObject({ budget: total / 2, total, kept: total / 2 })
    expect(report.layers.map((l) => [l.relus])).toEqual([[512], [256]])
    expect(report.layers.reduce((s, l) => s + l.kept, 0)).toBe(total / 2)
    for (const l of report.layers) expect(l.sensitivity).toBeGreaterThan(0)
  })

  it('keeps accuracy with three quarters of the ReLUs', () => {
    const { out } = budget('cnn_bn_relu_maxpool', 0.75)
    expect(accuracy(out)).toBeGreaterThanOrEqual(MANIFEST.models.cnn_bn_relu_maxpool.test_accuracy - 0.015)
  })

  it('only shrinks existing partial-ReLU masks', () => {
    const { g, out } = budget('senet_partial_relu', '100')
    expect(relus(out)).toBe(100)
    const before = g.nodes.filter((n) => n.op === 'PartialRelu')
    const after = new Map(out.nodes.map((n) => [n.name, n]))
    let kept = 0
    for (const n of before) {
      const old = (n.attrs as unknown as PartialReluAttrs).mask
      const now = after.get(n.name)!
      expect(['PartialRelu', 'Identity']).toContain(now.op)
      if (now.op === 'Identity') continue
      const m = (now.attrs as unknown as PartialReluAttrs).mask
      const per = [1, ...n.type.shape.slice(1)]
      const [io, im] = [broadcastIndex(old.shape, per), broadcastIndex(m.shape, per)]
      for (let i = 0; i < sizeOf(per); i++)
        if (m.data[im ? im[i] : i]) {
          expect(old.data[io ? io[i] : i]).toBe(1)
          kept++
        }
    }
    expect(kept).toBe(100)
  })

  it('changes nothing when the budget covers every ReLU or is not set', () => {
    const a = budget('mlp_relu', '1.0')
    expect(a.out).toBe(a.g)
    const b = runPipeline(fixture('mlp_relu'), common, passContext())
    expect(runPipeline(b, [reluBudget], passContext({}, { calib }))).toBe(b)
  })
})
