/**
 * The graph: a DAG of nodes with one result each, kept in topological order. Graph inputs and
 * constants are nodes too (ops `Input` and `Constant`), so a graph is just its node list plus the
 * names of its outputs. Graphs and nodes are immutable: passes build new ones.
 */
import type { Tensor, TensorType } from './tensor.js'

export type Attrs = Record<string, unknown>

export interface Origin {
  /** ONNX node name (may be empty in the file). */
  readonly name: string
  /** ONNX op type. */
  readonly op: string
}

export interface Node<A = Attrs> {
  /** Unique name of the value this node computes. */
  readonly name: string
  readonly op: string
  /** Names of the nodes whose values feed this one; '' marks an absent optional input. */
  readonly inputs: readonly string[]
  readonly attrs: A
  readonly type: TensorType
  /** The ONNX node this one came from, for messages and reports. */
  readonly origin?: Origin
}

export interface InputAttrs {
  /** Declared dims; strings are symbolic (bound by `Graph.symbols`). */
  readonly dims: readonly (number | string)[]
}

export interface ConstantAttrs {
  readonly value: Tensor
}

export interface Graph {
  readonly name: string
  /** Topological order. */
  readonly nodes: readonly Node[]
  readonly outputs: readonly string[]
  /** Default ONNX opset the graph's ONNX ops follow. */
  readonly opset: number
  /** Values bound to symbolic input dims. */
  readonly symbols: Readonly<Record<string, number>>
}

export function graphInputs(g: Graph): Node[] {
  return g.nodes.filter((n) => n.op === 'Input')
}

/** Declared dims of an Input node (strings are symbols). */
export function inputDims(n: Node): readonly (number | string)[] {
  return (n.attrs as unknown as InputAttrs).dims
}

/** Count of uses per node name (graph outputs count as a use). */
export function useCounts(g: Graph): Map<string, number> {
  const uses = new Map<string, number>()
  for (const n of g.nodes) for (const i of n.inputs) if (i) uses.set(i, (uses.get(i) ?? 0) + 1)
  for (const o of g.outputs) uses.set(o, (uses.get(o) ?? 0) + 1)
  return uses
}

/** Map from node name to the nodes that read it. */
export function consumers(g: Graph): Map<string, Node[]> {
  const m = new Map<string, Node[]>()
  for (const n of g.nodes)
    for (const i of n.inputs) {
      if (!i) continue
      let l = m.get(i)
      if (!l) m.set(i, (l = []))
      if (!l.includes(n)) l.push(n)
    }
  return m
}

/** "name (Op)" as ONNX knew it, for messages. */
export function describeNode(n: Pick<Node, 'name' | 'op' | 'origin'>): string {
  if (n.origin) return `node '${n.origin.name || n.name}' (${n.origin.op})`
  return `node '${n.name}' (${n.op})`
}

/** A Constant node's value (undefined for any other node). */
export function constantOf(n: Node): Tensor | undefined {
  return n.op === 'Constant' ? (n.attrs as { value: Tensor }).value : undefined
}
