/** fold-constants: every node whose inputs are all compile-time constants becomes a Constant. */
import { describeNode } from '../ir/graph.js'
import { OPS } from '../ir/ops/index.js'
import { rewrite, type Rule } from '../ir/rewrite.js'
import { PassError, type Pass } from './pass.js'

const foldRule: Rule = {
  name: 'fold',
  on: Object.keys(OPS).filter((op) => op !== 'Input' && op !== 'Constant'),
  apply: (n, cx) => {
    const def = OPS[n.op]
    const ins = []
    for (const i of n.inputs) {
      if (!i) {
        ins.push(undefined as never)
        continue
      }
      const v = cx.constant(i)
      if (v) ins.push(v)
      else if (def.kind === 'source') ins.push({ ...cx.producer(i)!.type, data: new Float64Array(0) })
      else return undefined
    }
    try {
      return { op: 'Constant', inputs: [], attrs: { value: def.eval(ins, n.attrs, n.type) } }
    } catch (e) {
      throw new PassError(`${describeNode(n)}: ${(e as Error).message}`)
    }
  },
}

export const foldConstants: Pass = {
  name: 'fold-constants',
  doc: 'Evaluate nodes whose inputs are all constants (Shape of a static shape included) into Constants.',
  run: (g) => rewrite(g, [foldRule]),
}
