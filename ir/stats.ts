/** Graph statistics for reports: op counts, parameter counts, activation sizes, total cost. */
import type { Graph, Node } from './graph.js'
import { LinearAnalysis, secretNodes } from './linear.js'
import { polyDegree, polyDepth } from './ops/pi.js'
import { sizeOf } from './tensor.js'

/**
 * Op type -> node count, sorted by name. Graph inputs and initializers never count; Constant nodes
 * count only when asked (as the ONNX file's own Constant nodes, for `inspect`).
 */
export function opCounts(g: Graph, withConstants = false): Record<string, number> {
  const counts: Record<string, number> = {}
  for (const n of g.nodes) {
    if (n.op === 'Input' || (n.op === 'Constant' && !(withConstants && n.origin?.op === 'Constant'))) continue
    counts[n.op] = (counts[n.op] ?? 0) + 1
  }
  return Object.fromEntries(Object.entries(counts).sort(([a], [b]) => (a < b ? -1 : 1)))
}

/** Which values depend on a graph input (are secret in private inference). */
export function secretValues(g: Graph): Set<string> {
  return secretNodes(g)
}

/**
 * Multiplicative depth of the graph as a leveled scheme without plaintext-multiplication levels sees
 * it, from the ops' declared secret forms: a polynomial of degree d costs ceil(log2(d + 1))
 * (Paterson-Stockmeyer), a product of two secrets one, affine and layout ops none; comparisons and
 * non-polynomial ops cost none here (they must be approximated first). Backends compute their own.
 */
export function graphDepth(g: Graph): number {
  const an = new LinearAnalysis(g, () => undefined)
  const depth = new Map<string, number>()
  let max = 0
  for (const n of g.nodes) {
    let d = Math.max(0, ...n.inputs.map((i) => (i ? (depth.get(i) ?? 0) : 0)))
    if (an.secret.has(n.name) && n.op !== 'Input') {
      const f = an.form(n)
      if (f.form === 'poly') d += polyDepth(polyDegree(f.poly))
      else if (f.form === 'product') d += 1
    }
    depth.set(n.name, d)
    if (g.outputs.includes(n.name)) max = Math.max(max, d)
  }
  return max
}

/** Weight count: elements of float initializers, BatchNormalization running statistics excluded. */
export function parameterCount(g: Graph): number {
  const stats = new Set<string>()
  for (const n of g.nodes) if (n.op === 'BatchNormalization') for (const i of n.inputs.slice(3)) stats.add(i)
  let total = 0
  for (const n of g.nodes)
    if (n.op === 'Constant' && n.origin?.op === 'initializer' && !stats.has(n.name) && (n.type.dtype === 'float32' || n.type.dtype === 'float64'))
      total += sizeOf(n.type.shape)
  return total
}

/** Nodes on secret values that are not polynomial, by their declared form (comparisons and the rest). */
export function nonPolynomialNodes(g: Graph): Node[] {
  const an = new LinearAnalysis(g, () => undefined)
  return g.nodes.filter((n) => {
    if (!an.secret.has(n.name) || n.op === 'Input') return false
    const f = an.form(n).form
    return f === 'compare' || f === 'nonpoly'
  })
}

/** Op type -> output elements, over non-polynomial activation nodes on secret values. */
export function activationCounts(g: Graph): Record<string, number> {
  const out: Record<string, number> = {}
  for (const n of nonPolynomialNodes(g)) out[n.op] = (out[n.op] ?? 0) + sizeOf(n.type.shape)
  return Object.fromEntries(Object.entries(out).sort(([a], [b]) => (a < b ? -1 : 1)))
}
