/**
 * The op table: every op the IR knows, ONNX's under their ONNX names and PIC's own (Poly,
 * PartialRelu, Silu). Nothing else in the code base decides what an op means.
 */
import type { OpDef } from '../op.js'
import { ELEMENTWISE_OPS } from './elementwise.js'
import { ARRANGE_OPS } from './arrange.js'
import { MATH_OPS } from './math.js'
import { NORM_OPS } from './norm.js'
import { RESIZE_OPS } from './resize.js'
import { NN_OPS } from './nn.js'
import { PI_OPS } from './pi.js'
import { QUANT_OPS } from './quant.js'
import { REDUCE_OPS } from './reduce.js'
import { RNN_OPS } from './rnn.js'
import { SAMPLE_OPS } from './sample.js'
import { SHAPE_OPS } from './shape.js'
import { SOURCE_OPS } from './source.js'

export const OPS: Readonly<Record<string, OpDef>> = Object.freeze({
  ...SOURCE_OPS,
  ...ELEMENTWISE_OPS,
  ...MATH_OPS,
  ...ARRANGE_OPS,
  ...NORM_OPS,
  ...RESIZE_OPS,
  ...NN_OPS,
  ...SHAPE_OPS,
  ...REDUCE_OPS,
  ...PI_OPS,
  ...QUANT_OPS,
  ...RNN_OPS,
  ...SAMPLE_OPS,
})

/** Ops that exist only inside PIC (the ONNX importer refuses them; the writer lowers them). */
export const PIC_ONLY_OPS: ReadonlySet<string> = new Set(['Input', 'Poly', 'PartialRelu', 'Silu'])
