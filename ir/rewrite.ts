/**
 * Rewriting: rules `{ name, on, apply }` applied bottom-up in one topological sweep. A rule sees a
 * node whose inputs are already rewritten and returns nothing (keep it), the name of an existing
 * value (forward to it), or a replacement `{ op, inputs, attrs }` that takes the node's name, so graph
 * outputs keep their names, and its origin (or, when it had none, the node it replaced, so later
 * passes still see what it came from). Helper nodes come from `cx.add`. Dead nodes are dropped at the end.
 */
import { GraphBuilder } from './builder.js'
import { constantOf, useCounts, type Attrs, type Graph, type Node, type Origin } from './graph.js'
import type { Tensor } from './tensor.js'

export interface Replacement {
  op: string
  inputs: readonly string[]
  attrs: Attrs
}

export interface RewriteContext {
  /** The node (in the graph being built) that produces a value. */
  producer(name: string): Node | undefined
  /** The value when known at compile time. */
  constant(name: string): Tensor | undefined
  /** How many times the original graph uses a value (graph outputs count). */
  uses(name: string): number
  /** Add a helper node with a fresh name derived from `base`; returns its name. */
  add(op: string, inputs: readonly string[], attrs: Attrs, base: string, origin?: Origin): string
  addConstant(value: Tensor, base: string): string
}

export interface Rule {
  readonly name: string
  readonly on: readonly string[]
  apply(n: Node, cx: RewriteContext): Replacement | string | undefined
}

const MAX_REWRITES_PER_NODE = 16

export function rewrite(g: Graph, rules: readonly Rule[]): Graph {
  const b = new GraphBuilder(g.name, g.opset, g.symbols)
  const rename = new Map<string, string>()
  const uses = useCounts(g)
  const outputs = new Set(g.outputs)
  const cx: RewriteContext = {
    producer: (name) => b.get(name),
    constant: (name) => b.constantValue(name),
    uses: (name) => uses.get(name) ?? 0,
    add: (op, inputs, attrs, base, origin) => b.add(op, inputs, attrs, { name: b.fresh(base), origin }).name,
    addConstant: (value, base) => b.constant(b.fresh(base), value).name,
  }
  const byOp = new Map<string, Rule[]>()
  for (const r of rules) for (const op of r.on) byOp.set(op, [...(byOp.get(op) ?? []), r])

  for (const n of g.nodes) {
    const inputs = n.inputs.map((i) => (i ? (rename.get(i) ?? i) : ''))
    let cur: Node = { ...n, inputs }
    for (let step = 0; step < MAX_REWRITES_PER_NODE; step++) {
      let replaced = false
      for (const r of byOp.get(cur.op) ?? []) {
        const rep = r.apply(cur, cx)
        if (rep === undefined) continue
        if (typeof rep === 'string') {
          if (outputs.has(n.name) || rep === n.name) continue
          rename.set(n.name, rep)
          cur = undefined as unknown as Node
        } else cur = { ...cur, op: rep.op, inputs: [...rep.inputs], attrs: rep.attrs }
        replaced = true
        break
      }
      if (!replaced || !cur) break
    }
    if (!cur) continue
    if (cur.op === 'Input') b.copy(cur)
    else if (cur.op === 'Constant') b.constant(n.name, constantOf(cur)!, n.origin)
    else if (cur === n || (cur.op === n.op && cur.attrs === n.attrs && cur.inputs.every((x, i) => x === n.inputs[i]))) b.copy(n)
    else b.add(cur.op, cur.inputs, cur.attrs, { name: n.name, origin: n.origin ?? (cur.op !== n.op ? { name: n.name, op: n.op } : undefined) })
  }
  return eliminateDead(b.build(g.outputs.map((o) => rename.get(o) ?? o)))
}

/** Drop nodes no output depends on (graph inputs always stay). */
export function eliminateDead(g: Graph): Graph {
  const live = new Set(g.outputs)
  for (let i = g.nodes.length - 1; i >= 0; i--) {
    const n = g.nodes[i]
    if (live.has(n.name)) for (const x of n.inputs) if (x) live.add(x)
  }
  const nodes = g.nodes.filter((n) => n.op === 'Input' || live.has(n.name))
  return nodes.length === g.nodes.length ? g : { ...g, nodes }
}
