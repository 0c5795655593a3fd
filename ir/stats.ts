/** Graph statistics for reports: op counts, parameter counts, activation sizes, total cost. */
import { constantOf, type Graph, type Node } from './graph.js'
import type { Cost, Operand } from './op.js'
import { OPS } from './ops/index.js'
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
  const secret = new Set<string>()
  for (const n of g.nodes) {
    if (n.op === 'Input') secret.add(n.name)
    else if (OPS[n.op]?.kind !== 'source' && n.inputs.some((i) => i && secret.has(i))) secret.add(n.name)
  }
  return secret
}

/** Each node's cost as its op reports it, with secret-ness and constant values of the operands. */
export function nodeCosts(g: Graph): Map<string, Cost> {
  const secret = secretValues(g)
  const byName = new Map(g.nodes.map((n) => [n.name, n]))
  const out = new Map<string, Cost>()
  for (const n of g.nodes) {
    const def = OPS[n.op]
    if (!def?.cost) continue
    const ins: Operand[] = n.inputs.map((i) => {
      const p = i ? byName.get(i) : undefined
      return { ...(p?.type ?? { dtype: 'float32', shape: [] }), secret: !!i && secret.has(i), value: p && constantOf(p) }
    })
    out.set(n.name, def.cost(ins, n.attrs, n.type))
  }
  return out
}

/** Multiplicative depth of the graph (longest chain of levels over secret values). */
export function graphDepth(g: Graph): number {
  const costs = nodeCosts(g)
  const depth = new Map<string, number>()
  let max = 0
  for (const n of g.nodes) {
    const d = Math.max(0, ...n.inputs.map((i) => (i ? (depth.get(i) ?? 0) : 0))) + (costs.get(n.name)?.depth ?? 0)
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

/** Nodes on secret values that are not polynomial (a PartialRelu whose masked part is a Poly is). */
export function nonPolynomialNodes(g: Graph): Node[] {
  const secret = secretValues(g)
  return g.nodes.filter((n) => OPS[n.op]?.kind === 'nonlinear' && secret.has(n.name) && !(n.op === 'PartialRelu' && (n.attrs as { poly?: unknown }).poly))
}

/** Op type -> output elements, over non-polynomial activation nodes on secret values. */
export function activationCounts(g: Graph): Record<string, number> {
  const out: Record<string, number> = {}
  for (const n of nonPolynomialNodes(g)) out[n.op] = (out[n.op] ?? 0) + sizeOf(n.type.shape)
  return Object.fromEntries(Object.entries(out).sort(([a], [b]) => (a < b ? -1 : 1)))
}
