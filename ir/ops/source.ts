/** Source ops: graph inputs and constants (initializers and ONNX Constant nodes alike). */
import type { ConstantAttrs, InputAttrs } from '../graph.js'
import { defineOp, OpError, type OpDef } from '../op.js'
import { tensor } from '../tensor.js'

export const Input = defineOp<InputAttrs & { dtype: string; shape: number[] }>({
  doc: 'A graph input; its type is bound when the graph is instantiated.',
  kind: 'source',
  arity: [0, 0],
  since: 1,
  attrs: () => {
    throw new OpError('Input nodes are created by the importer or the builder')
  },
  infer: (_ins, a) => ({ dtype: a.dtype as never, shape: a.shape }),
  eval: () => {
    throw new OpError('Input nodes take their values from the caller')
  },
})

export const Constant = defineOp<ConstantAttrs>({
  doc: 'A constant tensor (initializer or ONNX Constant).',
  kind: 'source',
  arity: [0, 0],
  since: 1,
  attrs: (raw) => {
    const t = raw.tensor('value')
    if (t) return { value: t }
    if (raw.has('value_float')) return { value: tensor('float32', [], [raw.float('value_float')]) }
    if (raw.has('value_floats')) {
      const v = raw.floats('value_floats')
      return { value: tensor('float32', [v.length], v) }
    }
    if (raw.has('value_int')) return { value: tensor('int64', [], [raw.int('value_int')]) }
    if (raw.has('value_ints')) {
      const v = raw.ints('value_ints')
      return { value: tensor('int64', [v.length], v) }
    }
    throw new OpError('Constant needs a value, value_float(s) or value_int(s) attribute (sparse and string values are not supported)')
  },
  infer: (_ins, a) => ({ dtype: a.value.dtype, shape: a.value.shape }),
  eval: (_ins, a) => a.value,
})

export const SOURCE_OPS: Record<string, OpDef> = { Input, Constant }
