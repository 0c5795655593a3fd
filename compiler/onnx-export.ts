/**
 * ONNX export: IR graph -> ModelProto bytes. Graph inputs keep their symbolic dims, constants become
 * raw_data initializers (constants that were ONNX Constant nodes stay Constant nodes), each op writes
 * its attributes through its table entry's `onnx`, and value_info records every intermediate type
 * (a dim that follows a symbol is written as that symbol, or left unnamed when it is derived from
 * one). PIC-only ops (Poly, PartialRelu, Silu) have no ONNX form: lower them first.
 */
import { symbolicShapes } from '../ir/builder.js'
import { constantOf, graphInputs, inputDims, type Graph, type Node } from '../ir/graph.js'
import { DEFAULT_SINCE, OpError, outputIndex, type OnnxAttr } from '../ir/op.js'
import { OPS, PIC_ONLY_OPS } from '../ir/ops/index.js'
import type { TensorType } from '../ir/tensor.js'
import { nodeError, PicError } from './errors.js'
import { MAX_OPSET } from './onnx-import.js'
import { onnx, protoTypeOf, tensorToProto } from './onnx-tensor.js'

export interface WriteOptions {
  /** Default-domain opset to declare (default: the graph's, raised to what its ops need). */
  opset?: number
  /** Write value_info for intermediate values (default true). */
  valueInfo?: boolean
  /** Name used in messages (default 'model'). */
  file?: string
  producerName?: string
}

export function writeModel(g: Graph, opts: WriteOptions = {}): Uint8Array {
  return onnx.ModelProto.encode(modelProto(g, opts)).finish()
}

/** The ONNX IR version that goes with an opset (8 up to opset 18, as onnx 1.13 writes it). */
function irVersionFor(opset: number): number {
  return opset >= 21 ? 10 : opset >= 19 ? 9 : 8
}

function modelProto(g: Graph, opts: WriteOptions = {}): onnx.ModelProto {
  const file = opts.file ?? 'model'
  for (const n of g.nodes)
    if (n.op !== 'Input' && PIC_ONLY_OPS.has(n.op))
      throw nodeError(file, n, `${n.op} is a PIC op with no ONNX form; lower it to ONNX ops before writing`)
  let opset = opts.opset ?? g.opset
  if (opts.opset === undefined) for (const n of g.nodes) opset = Math.max(opset, OPS[n.op]?.since ?? DEFAULT_SINCE)
  if (opset > MAX_OPSET) throw new PicError(`${file}: the graph needs opset ${opset}, beyond the ${MAX_OPSET} PIC writes`)

  const inputSymbols = Object.keys(g.symbols).filter((s) => graphInputs(g).some((n) => inputDims(n).includes(s)))
  const dimOf = symbolicShapes(g, inputSymbols)
  const graph = onnx.GraphProto.create({ name: g.name })
  const usedNames = new Set<string>()
  const nodeName = (n: Node) => {
    const want = n.origin && n.origin.op === n.op && n.origin.name ? n.origin.name : n.name
    const name = usedNames.has(want) ? n.name : want
    usedNames.add(name)
    return name
  }
  for (const n of g.nodes) {
    if (n.op === 'Input') {
      const dims = inputDims(n)
      graph.input.push(valueInfo(n.name, n.type, dims.map((d) => (typeof d === 'string' && d.startsWith('?') ? undefined : d))))
    } else if (n.op === 'Constant') {
      const value = constantOf(n)!
      if (n.origin?.op === 'Constant')
        graph.node.push(onnx.NodeProto.create({ name: nodeName(n), opType: 'Constant', output: [n.name], attribute: [attributeProto('value', { t: value })] }))
      else graph.initializer.push(tensorToProto(value, n.name))
    } else {
      let attrs
      try {
        const def = OPS[n.op]
        if (!def.onnx && Object.values(n.attrs).some((v) => v !== undefined)) throw new OpError('the op has attributes but no ONNX form for them')
        attrs = def.onnx?.(n.attrs, opset) ?? {}
      } catch (e) {
        if (e instanceof OpError) throw nodeError(file, n, e.message)
        throw e
      }
      const attribute = Object.entries(attrs).flatMap(([k, v]) => (v === undefined ? [] : [attributeProto(k, v)]))
      // a several-output op: this node's output at its index, the others named after it
      const def = OPS[n.op]
      const k = outputIndex(n.attrs)
      const output = def.outputs ? Array.from({ length: Math.max(def.outputs(n.attrs), k + 1) }, (_, j) => (j === k ? n.name : `${n.name}__output${j}`)) : [n.name]
      graph.node.push(onnx.NodeProto.create({ name: nodeName(n), opType: n.op, input: [...n.inputs], output, attribute }))
    }
  }
  const outputs = new Set(g.outputs)
  const byName = new Map(g.nodes.map((n) => [n.name, n]))
  for (const o of g.outputs) graph.output.push(valueInfo(o, byName.get(o)!.type, dimOf(o)))
  if (opts.valueInfo !== false)
    for (const n of g.nodes)
      if (n.op !== 'Input' && n.op !== 'Constant' && !outputs.has(n.name)) graph.valueInfo.push(valueInfo(n.name, n.type, dimOf(n.name)))

  return onnx.ModelProto.create({
    irVersion: irVersionFor(opset),
    opsetImport: [onnx.OperatorSetIdProto.create({ domain: '', version: opset })],
    producerName: opts.producerName ?? 'pic',
    graph,
  })
}

/** dims: a number, a symbol name, or undefined for an unnamed dim. */
function valueInfo(name: string, t: TensorType, dims: readonly (number | string | undefined)[]): onnx.ValueInfoProto {
  const dim = dims.map((d) =>
    typeof d === 'number' ? onnx.TensorShapeProto.Dimension.create({ dimValue: d }) : onnx.TensorShapeProto.Dimension.create(d === undefined ? {} : { dimParam: d }),
  )
  return onnx.ValueInfoProto.create({
    name,
    type: onnx.TypeProto.create({ tensorType: onnx.TypeProto.Tensor.create({ elemType: protoTypeOf(t.dtype), shape: onnx.TensorShapeProto.create({ dim }) }) }),
  })
}

function attributeProto(name: string, v: OnnxAttr): onnx.AttributeProto {
  const T = onnx.AttributeProto.AttributeType
  if ('f' in v) return onnx.AttributeProto.create({ name, type: T.FLOAT, f: v.f })
  if ('i' in v) return onnx.AttributeProto.create({ name, type: T.INT, i: v.i })
  if ('s' in v) return onnx.AttributeProto.create({ name, type: T.STRING, s: Buffer.from(v.s, 'utf8') })
  if ('t' in v) return onnx.AttributeProto.create({ name, type: T.TENSOR, t: tensorToProto(v.t) })
  if ('floats' in v) return onnx.AttributeProto.create({ name, type: T.FLOATS, floats: v.floats })
  return onnx.AttributeProto.create({ name, type: T.INTS, ints: v.ints })
}
