/**
 * The verifier: names unique, every input defined before its use (hence acyclic), arity within the
 * op's bounds, and every node's stored type equal to what its op infers now.
 */
import { PicError } from './errors.js'
import type { Graph } from './graph.js'
import { constantOf, describeNode } from './graph.js'
import { OPS } from './ops/index.js'
import { formatType, sameType, type Tensor, type TensorType } from './tensor.js'

export class VerifyError extends PicError {}

export function verify(g: Graph): void {
  const defined = new Map<string, TensorType>()
  const values = new Map<string, Tensor>()
  for (const n of g.nodes) {
    const where = describeNode(n)
    if (defined.has(n.name)) throw new VerifyError(`${where}: value '${n.name}' is defined twice`)
    const def = OPS[n.op]
    if (!def) throw new VerifyError(`${where}: unknown op '${n.op}'`)
    const [lo, hi] = def.arity
    if (n.inputs.length < lo || n.inputs.length > hi) throw new VerifyError(`${where}: ${n.inputs.length} inputs, the op takes ${lo} to ${hi}`)
    for (const i of n.inputs) if (i && !defined.has(i)) throw new VerifyError(`${where}: input '${i}' is not defined before its use`)
    if (n.op === 'Constant') values.set(n.name, constantOf(n)!)
    if (n.op !== 'Input' && n.op !== 'Constant') {
      const ins = n.inputs.map((i) => (i ? defined.get(i)! : (undefined as unknown as TensorType)))
      // An op that needs an input's value (Reshape's shape, say) computed by other nodes cannot be
      // checked here; any other failure to infer is an error.
      let unknownValue = false
      const constant = (k: number) => {
        const v = n.inputs[k] ? values.get(n.inputs[k]) : undefined
        if (!v) unknownValue = true
        return v
      }
      let t: TensorType
      try {
        t = def.infer(ins, n.attrs, { constant })
      } catch (e) {
        if (!unknownValue) throw new VerifyError(`${where}: ${(e as Error).message}`)
        t = n.type
      }
      if (!sameType(t, n.type)) throw new VerifyError(`${where}: stored type ${formatType(n.type)} but the op infers ${formatType(t)}`)
    }
    defined.set(n.name, n.type)
  }
  for (const o of g.outputs) if (!defined.has(o)) throw new VerifyError(`graph output '${o}' is not defined`)
}
