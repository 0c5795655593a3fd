/**
 * remove-noops: Identity, Dropout (inference) and Pad whose pads are all zero forward their input.
 * A no-op that is itself a graph output stays, so output names never change.
 */
import { padIsNoop } from '../ir/ops/shape.js'
import { rewrite, type Rule } from '../ir/rewrite.js'
import type { TensorType } from '../ir/tensor.js'
import type { Pass } from './pass.js'

const passThrough: Rule = {
  name: 'pass-through',
  on: ['Identity', 'Dropout'],
  apply: (n) => n.inputs[0],
}

const zeroPad: Rule = {
  name: 'zero-pad',
  on: ['Pad'],
  apply: (n, cx) => {
    const types = n.inputs.map((i) => (i ? cx.producer(i)!.type : (undefined as unknown as TensorType)))
    const constant = (k: number) => (n.inputs[k] ? cx.constant(n.inputs[k]) : undefined)
    return padIsNoop(types, n.attrs as never, { constant }) ? n.inputs[0] : undefined
  },
}

export const removeNoops: Pass = {
  name: 'remove-noops',
  doc: 'Forward the input of Identity, Dropout and all-zero Pad nodes.',
  run: (g) => rewrite(g, [passThrough, zeroPad]),
}
