/**
 * The float64 reference interpreter: the oracle every pass and backend is compared with. Runs the
 * nodes in order, frees each intermediate after its last use, and re-instantiates the graph when the
 * inputs bind its symbolic dims (the batch) to other values.
 */
import { instantiate } from './builder.js'
import { describeNode, graphInputs, type Graph, type InputAttrs, type Node } from './graph.js'
import { OPS } from './ops/index.js'
import { castValue, formatType, sameShape, type Tensor } from './tensor.js'

export class InterpretError extends Error {}

export interface InterpretOptions {
  /** Called with every node's value as it is computed (calibration, tracing). */
  onValue?: (node: Node, value: Tensor) => void
  /** Keep every intermediate value in the result (default: graph outputs only). */
  keepAll?: boolean
}

/** Bind symbolic dims from the given input shapes; returns the graph to run (maybe `g` itself). */
export function bindInputs(g: Graph, inputs: readonly Tensor[]): Graph {
  const ins = graphInputs(g)
  if (inputs.length !== ins.length) throw new InterpretError(`the graph takes ${ins.length} inputs, got ${inputs.length}`)
  const symbols: Record<string, number> = {}
  let rebind = false
  ins.forEach((n, i) => {
    const t = inputs[i]
    if (sameShape(t.shape, n.type.shape)) return
    const dims = (n.attrs as InputAttrs).dims
    if (t.shape.length !== dims.length) throw new InterpretError(`input '${n.name}' expects ${formatType(n.type)}, got rank ${t.shape.length}`)
    dims.forEach((d, k) => {
      if (typeof d === 'string') {
        if (symbols[d] !== undefined && symbols[d] !== t.shape[k]) throw new InterpretError(`dimension '${d}' is bound to both ${symbols[d]} and ${t.shape[k]}`)
        symbols[d] = t.shape[k]
        rebind = true
      } else if (d !== t.shape[k]) throw new InterpretError(`input '${n.name}' expects ${formatType(n.type)}, got shape [${t.shape.join(',')}]`)
    })
  })
  return rebind ? instantiate(g, symbols) : g
}

/** Run the graph on inputs given in graph-input order or by name; returns the outputs by name. */
export function interpret(g0: Graph, given: readonly Tensor[] | Readonly<Record<string, Tensor>>, opts: InterpretOptions = {}): Map<string, Tensor> {
  const declared = graphInputs(g0)
  const list = Array.isArray(given)
    ? (given as Tensor[])
    : declared.map((n) => {
        const t = (given as Record<string, Tensor>)[n.name]
        if (!t) throw new InterpretError(`missing input '${n.name}'`)
        return t
      })
  const g = bindInputs(g0, list)
  const lastUse = new Map<string, number>()
  g.nodes.forEach((n, i) => n.inputs.forEach((x) => x && lastUse.set(x, i)))
  const outputs = new Set(g.outputs)
  const env = new Map<string, Tensor>()
  let k = 0
  for (const [i, n] of g.nodes.entries()) {
    let v: Tensor
    if (n.op === 'Input') {
      const t = list[k++]
      v = t.dtype === n.type.dtype ? t : { ...n.type, data: t.data.map((x) => castValue(x, n.type.dtype)) }
    } else {
      const ins = n.inputs.map((x) => (x ? env.get(x)! : (undefined as unknown as Tensor)))
      try {
        v = OPS[n.op].eval(ins, n.attrs, n.type)
      } catch (e) {
        throw new InterpretError(`${describeNode(n)}: ${(e as Error).message}`)
      }
    }
    env.set(n.name, v)
    opts.onValue?.(n, v)
    if (!opts.keepAll)
      for (const x of n.inputs) if (x && lastUse.get(x) === i && !outputs.has(x)) env.delete(x)
  }
  if (opts.keepAll) return env
  return new Map(g.outputs.map((o) => [o, env.get(o)!]))
}

/** Convenience: the first output for a single input. */
export function run1(g: Graph, x: Tensor): Tensor {
  return interpret(g, [x]).get(g.outputs[0])!
}
