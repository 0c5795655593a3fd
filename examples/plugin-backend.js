/**
 * A backend plugin (the whole interface: name, doc, pipeline, lower, print, summary):
 *   pic compile MODEL --backend ./examples/plugin-backend.js [--json]
 * It lowers the compiled graph to a cost report read off the ops' declared secret forms (each op's
 * `secret` entry, asked through LinearAnalysis; no op names are compared). Per node on secret values:
 * its form, output elements, multiply-adds (affine and layout: summed over its primitives, `macs` below),
 * polynomial degree, comparisons (ReLU: one per element it acts on; max pooling: kh kw - 1 per output)
 * and the multiplicative depth reached there: secret-by-secret products along the longest path, where
 * a degree-d polynomial costs ceil(log2 d) (x^d by repeated squaring; plaintext coefficients are free)
 * and a product of two secrets costs 1.
 */
import { LinearAnalysis, PIPELINES } from '@pic-compiler/pic'

const size = (shape) => shape.reduce((a, b) => a * b, 1)
const degreeOf = (poly) => Math.max(0, ...poly.coeffs.map((row) => row.findLastIndex((c) => c !== 0)))
/** Multiply-adds of one primitive (ir/linear.ts `Prim`): a convolution's output element takes C/group kh kw. */
function macs(p) {
  if (p.kind === 'conv') return size(p.out) * (p.geom.c / p.geom.group) * p.geom.kh * p.geom.kw
  if (p.kind === 'dense') return (size(p.in) / p.k) * p.k * p.n
  if (p.kind === 'sumpool') return size(p.out) * p.geom.kh * p.geom.kw
  if (p.kind === 'scale') return size(p.out)
  if (p.kind === 'segsum') return size(p.in)
  return 0 // reshape, index: moves only
}
const ones = (t) => t.data.reduce((a, v) => a + (v !== 0 ? 1 : 0), 0)

function comparisons(f, elements) {
  if (f.what === 'max') return elements * (f.window.kh * f.window.kw - 1)
  return f.positions ? ones(f.positions) : elements
}

export default {
  name: 'cost-report',
  doc: 'per-layer multiply-adds, polynomial degrees, comparisons and multiplicative depth from the ops\' declared secret forms',
  pipeline: (options) => PIPELINES.ir(options),
  lower(g) {
    const an = new LinearAnalysis(g, () => undefined)
    const depthAt = new Map()
    const layers = []
    for (const n of g.nodes) {
      let depth = Math.max(0, ...n.inputs.map((i) => (i ? (depthAt.get(i) ?? 0) : 0)))
      if (an.secret.has(n.name) && n.op !== 'Input') {
        const f = an.form(n)
        const layer = { name: n.name, op: n.op, form: f.form, elements: size(n.type.shape), macs: 0 }
        if (f.form === 'affine' || f.form === 'layout') layer.macs = f.terms.reduce((s, t) => s + t.prims.reduce((a, p) => a + macs(p), 0), 0)
        if (f.form === 'poly') layer.degree = degreeOf(f.poly)
        if (f.form === 'poly' && layer.degree > 1) depth += Math.ceil(Math.log2(layer.degree))
        if (f.form === 'product') depth += 1
        if (f.form === 'compare') layer.comparisons = comparisons(f, layer.elements)
        layers.push({ ...layer, depth })
      }
      depthAt.set(n.name, depth)
    }
    const sum = (k) => layers.reduce((a, l) => a + (l[k] ?? 0), 0)
    const depth = Math.max(0, ...g.outputs.map((o) => depthAt.get(o) ?? 0))
    return { plan: { format: 'cost-report/1', model: g.name, depth, macs: sum('macs'), comparisons: sum('comparisons'), layers } }
  },
  print(plan) {
    const rows = plan.layers.map((l) => `${l.name.padEnd(34)} ${l.op.padEnd(20)} ${l.form.padEnd(8)} ${String(l.elements).padStart(8)} ${String(l.macs).padStart(9)} ${String(l.degree ?? l.comparisons ?? '').padStart(6)} ${String(l.depth).padStart(5)}`)
    const head = `${'node'.padEnd(34)} ${'op'.padEnd(20)} ${'form'.padEnd(8)} ${'elements'.padStart(8)} ${'macs'.padStart(9)} ${'deg/cmp'.padStart(6)} ${'depth'.padStart(5)}`
    return [`${plan.model}: depth ${plan.depth}, ${plan.macs} multiply-adds, ${plan.comparisons} comparisons`, head, ...rows].join('\n') + '\n'
  },
  summary: (plan) => ({ model: plan.model, depth: plan.depth, macs: plan.macs, comparisons: plan.comparisons, layers: plan.layers }),
}
