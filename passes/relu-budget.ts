/**
 * relu-budget: SENet-style post-training ReLU budget (`reluBudget`: a count, or a fraction such as
 * 0.25 or 25%, of the model's ReLUs per sample). Sensitivity is measured on the calibration data:
 * each layer's by linearizing it (ReLU -> identity) alone and measuring the mean squared change of
 * the logits relative to their mean square; each position's share of it by the energy E[min(x, 0)^2]
 * that linearizing removes there. The budget goes to the positions with the highest share, and every
 * ReLU layer becomes a PartialRelu whose mask holds the kept positions (`reluGranularity: 'channel'`
 * keeps whole channels instead of pixels). Existing PartialRelu masks only shrink. The per-layer
 * report goes to `cx.report.reluBudget`.
 */
import type { Node } from '../ir/graph.js'
import type { PartialReluAttrs } from '../ir/ops/pi.js'
import { rewrite } from '../ir/rewrite.js'
import { secretValues } from '../ir/stats.js'
import { sizeOf, tensor, type Tensor } from '../ir/tensor.js'
import { maskSelector } from './activations.js'
import { Replay } from './ola.js'
import { PassError, type Pass } from './pass.js'

/** Parse a budget: an integer count, or a fraction (with a decimal point or a % sign). */
export function parseReluBudget(v: unknown, total: number): number {
  const s = String(v).trim()
  const bad = () => new PassError(`--relu-budget '${s}': expected a count (e.g. 500) or a fraction (e.g. 0.25 or 25%)`)
  if (/^\d+$/.test(s)) return Math.min(total, Number(s))
  const pct = s.endsWith('%')
  const f = Number(pct ? s.slice(0, -1) : s) / (pct ? 100 : 1)
  if (!/^\d*\.?\d+%?$/.test(s) || !(f >= 0 && f <= 1)) throw bad()
  return Math.round(f * total)
}

interface Layer {
  node: Node
  /** Candidate positions per sample (the current ReLU positions). */
  allowed: Uint8Array
  relus: number
  /** Energy removed by linearizing, per position. */
  energy: Float64Array
  sensitivity: number
}

export interface ReluBudgetLayer {
  name: string
  relus: number
  kept: number
  sensitivity: number
}

const identity = (x: Tensor, shape: Tensor['shape']): Tensor => ({ dtype: x.dtype, shape, data: x.data })

/** Relative mean squared logit change. */
function logitChange(a: Tensor, b: Tensor): number {
  let num = 0
  let den = 0
  for (let i = 0; i < a.data.length; i++) {
    num += (a.data[i] - b.data[i]) ** 2
    den += a.data[i] ** 2
  }
  return den > 0 ? num / den : num
}

export const reluBudget: Pass = {
  name: 'relu-budget',
  doc: 'SENet post-training ReLU budget (--relu-budget N or FRACTION): partial-ReLU masks on the most sensitive positions.',
  run(g, cx) {
    if (cx.options.reluBudget === undefined || cx.options.reluBudget === null) return g
    const secret = secretValues(g)
    const nodes = g.nodes.filter((n) => (n.op === 'Relu' || n.op === 'PartialRelu') && secret.has(n.name) && !(n.attrs as Partial<PartialReluAttrs>).poly)
    const layers: Layer[] = nodes.map((node) => {
      const per = node.type.shape.slice(1)
      const sel = maskSelector(node, [1, ...per])
      const allowed = sel ?? new Uint8Array(sizeOf(per)).fill(1)
      return { node, allowed, relus: allowed.reduce((s, v) => s + v, 0), energy: new Float64Array(allowed.length), sensitivity: 0 }
    })
    const total = layers.reduce((s, l) => s + l.relus, 0)
    const budget = parseReluBudget(cx.options.reluBudget, total)
    if (budget >= total || layers.length === 0) {
      cx.log(`relu-budget: budget ${budget} covers all ${total} ReLUs; nothing to do`)
      return g
    }
    if (!cx.calib) throw new PassError('--relu-budget needs calibration data (--calib)')
    const replay = new Replay(g, cx.calib, cx.accel)
    const base = replay.values.get(replay.g.outputs[0])!
    for (const [i, l] of layers.entries()) {
      const x = replay.values.get(l.node.inputs[0])!
      const P = l.allowed.length
      for (let k = 0; k < x.data.length; k++) {
        const v = x.data[k]
        if (v < 0 && l.allowed[k % P]) l.energy[k % P] += v * v
      }
      l.sensitivity = logitChange(base, replay.run(new Map([[l.node.name, identity]])))
      cx.log(`relu-budget: layer ${i + 1}/${layers.length} ${l.node.origin?.name || l.node.name}: sensitivity ${l.sensitivity.toExponential(3)}`)
    }
    const channel = cx.options.reluGranularity === 'channel'
    const units: { layer: number; positions: number[]; score: number }[] = []
    for (const [li, l] of layers.entries()) {
      const E = l.energy.reduce((s, v) => s + v, 0) || 1
      const shape = l.node.type.shape
      const C = shape.length >= 2 ? shape[1] : 1
      const inner = l.allowed.length / C
      const groups: number[][] = channel ? Array.from({ length: C }, (_, c) => Array.from({ length: inner }, (_, k) => c * inner + k)) : Array.from(l.allowed.keys(), (p) => [p])
      for (const grp of groups) {
        const pos = grp.filter((p) => l.allowed[p])
        if (!pos.length) continue
        const e = pos.reduce((s, p) => s + l.energy[p], 0)
        units.push({ layer: li, positions: pos, score: (l.sensitivity * e) / E / pos.length })
      }
    }
    units.sort((a, b) => b.score - a.score)
    const keep = layers.map((l) => new Uint8Array(l.allowed.length))
    let left = budget
    for (const u of units) {
      if (u.positions.length > left) continue
      for (const p of u.positions) keep[u.layer][p] = 1
      left -= u.positions.length
      if (left === 0) break
    }
    const report: ReluBudgetLayer[] = []
    const masks = new Map<string, Tensor>()
    layers.forEach((l, li) => {
      const kept = keep[li].reduce((s, v) => s + v, 0)
      report.push({ name: l.node.origin?.name || l.node.name, relus: l.relus, kept, sensitivity: l.sensitivity })
      masks.set(l.node.name, tensor(l.node.type.dtype, [1, ...l.node.type.shape.slice(1)], Float64Array.from(keep[li])))
    })
    const kept = budget - left
    cx.report.reluBudget = { budget, total, kept, granularity: channel ? 'channel' : 'pixel', layers: report }
    cx.log(`relu-budget: kept ${kept} of ${total} ReLUs (${report.map((r) => `${r.name} ${r.kept}/${r.relus}`).join(', ')})`)
    return rewrite(g, [
      {
        name: 'relu-budget',
        on: ['Relu', 'PartialRelu'],
        apply: (n) => {
          const m = masks.get(n.name)
          if (!m) return undefined
          const ones = m.data.reduce((s, v) => s + v, 0)
          if (ones === 0) return { op: 'Identity', inputs: [n.inputs[0]], attrs: {} }
          if (n.op === 'Relu' && ones === m.data.length) return undefined
          return { op: 'PartialRelu', inputs: [n.inputs[0]], attrs: { mask: m } }
        },
      },
    ])
  },
}
