/**
 * ONNX import: ModelProto bytes -> typed IR graph. Checks the model's structure, lists every
 * unsupported op at once, orders nodes topologically (cycles are errors), converts initializers and
 * Constant nodes, resolves external data inside the model's folder only, binds symbolic dims, infers
 * every type and cross-checks it against the model's value_info. Every failure is a PicError naming
 * the file and the ONNX node.
 */
import { closeSync, fstatSync, openSync, readSync, realpathSync } from 'node:fs'
import path from 'node:path'
import { GraphBuilder, GraphError } from '../ir/builder.js'
import type { Graph, Origin } from '../ir/graph.js'
import { DEFAULT_SINCE, RawAttrs, OpError, type AttrValue } from '../ir/op.js'
import { OPS, PIC_ONLY_OPS } from '../ir/ops/index.js'
import type { DType } from '../ir/tensor.js'
import { nodeError, PicError } from './errors.js'
import { CycleError, topoOrder } from '../ir/topo.js'
import { dtypeOf, elemTypeName, onnx, tensorFromProto, toInt } from './onnx-tensor.js'

const MIN_OPSET = 1
export const MAX_OPSET = 21
/** Newest ONNX IR version (onnx 1.18); anything above is not a model PIC can read. */
const MAX_IR_VERSION = 11

export interface ImportOptions {
  /** Name used in messages (default: the path, or 'model'). */
  file?: string
  /** Folder that external data is resolved in and may not leave. */
  baseDir?: string
  /** Values for symbolic dims (default 1 for each). */
  symbols?: Record<string, number>
}

function decodeModel(bytes: Uint8Array, file: string): onnx.ModelProto {
  if (bytes.length === 0) throw new PicError(`${file}: the file is empty`)
  let m: onnx.ModelProto
  try {
    m = onnx.ModelProto.decode(bytes)
  } catch (e) {
    const msg = (e as Error).message
    if (/index out of range/.test(msg)) throw new PicError(`${file}: not a valid ONNX model: the protobuf ends inside a field (truncated file?)`)
    throw new PicError(`${file}: not a valid ONNX model: the protobuf is corrupt (${msg})`)
  }
  let ir: number
  try {
    ir = toInt(m.irVersion)
  } catch {
    ir = -1
  }
  if (ir === 0) throw new PicError(`${file}: not an ONNX model: ir_version is missing`)
  if (ir < 1 || ir > MAX_IR_VERSION) throw new PicError(`${file}: not an ONNX model: ir_version ${String(m.irVersion)} is not an ONNX IR version (1 to ${MAX_IR_VERSION})`)
  if (!m.graph) throw new PicError(`${file}: not an ONNX model: the graph is missing`)
  if ((m.graph.output ?? []).length === 0) throw new PicError(`${file}: not an ONNX model: the graph has no outputs`)
  return m
}

/** Default-domain opset the model imports. */
function defaultOpset(m: onnx.ModelProto, file: string): number {
  let opset: number | undefined
  for (const o of m.opsetImport ?? []) if (!o.domain || o.domain === 'ai.onnx') opset = toInt(o.version)
  if (opset === undefined) throw new PicError(`${file}: the model imports no default-domain (ai.onnx) opset`)
  if (opset < MIN_OPSET || opset > MAX_OPSET) throw new PicError(`${file}: opset ${opset} is not supported (PIC reads opsets ${MIN_OPSET} to ${MAX_OPSET})`)
  return opset
}

function attrValue(a: onnx.IAttributeProto): AttrValue | undefined {
  const T = onnx.AttributeProto.AttributeType
  switch (a.type) {
    case T.FLOAT: return a.f ?? 0
    case T.INT: return toInt(a.i as never)
    case T.STRING: return Buffer.from(a.s ?? []).toString('utf8')
    case T.TENSOR: return a.t ? tensorFromProto(a.t) : undefined
    case T.FLOATS: return [...(a.floats ?? [])]
    case T.INTS: return (a.ints ?? []).map((v) => toInt(v as never))
    case T.STRINGS: return (a.strings ?? []).map((s) => Buffer.from(s).toString('utf8'))
    case T.TENSORS: return (a.tensors ?? []).map((t) => tensorFromProto(t))
    default: return undefined
  }
}

/** Read external tensor data from inside `baseDir` only, with its bounds checked. */
function externalReader(file: string, baseDir: string | undefined) {
  let rootDir: string | undefined
  return (t: onnx.ITensorProto): Uint8Array => {
    const kv = new Map((t.externalData ?? []).map((e) => [e.key ?? '', e.value ?? '']))
    const loc = kv.get('location')
    const name = t.name ?? ''
    if (!loc) throw new Error(`tensor '${name}' has external data without a location`)
    if (!baseDir) throw new Error(`tensor '${name}' has external data but the model was not read from a folder`)
    const root = (rootDir ??= realpathSync(baseDir))
    const target = path.resolve(root, loc)
    if (path.isAbsolute(loc) || (target !== root && !target.startsWith(root + path.sep)))
      throw new Error(`tensor '${name}': external data location '${loc}' points outside the model's folder`)
    let real: string
    try {
      real = realpathSync(target)
    } catch {
      throw new Error(`tensor '${name}': external data file '${loc}' does not exist`)
    }
    if (!real.startsWith(root + path.sep)) throw new Error(`tensor '${name}': external data location '${loc}' points outside the model's folder`)
    const fd = openSync(real, 'r')
    try {
      const size = fstatSync(fd).size
      const offset = Number(kv.get('offset') ?? 0)
      const length = kv.has('length') ? Number(kv.get('length')) : size - offset
      if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > size)
        throw new Error(`tensor '${name}': external data range ${offset}+${length} is outside '${loc}' (${size} bytes)`)
      const buf = Buffer.alloc(length)
      readSync(fd, buf, 0, length, offset)
      return buf
    } finally {
      closeSync(fd)
    }
  }
}

interface ValueType {
  elemType: number
  dims?: (number | string)[]
}

function valueType(v: onnx.IValueInfoProto): ValueType | undefined {
  const tt = v.type?.tensorType
  if (!tt) return undefined
  const dims = tt.shape ? (tt.shape.dim ?? []).map((d, i) => (d.dimParam ? d.dimParam : d.dimValue !== null && d.dimValue !== undefined && (d.dimValue as unknown) !== 0 ? toInt(d.dimValue as never) : `?${v.name ?? ''}:${i}`)) : undefined
  return { elemType: tt.elemType ?? 0, dims }
}

function originOf(n: onnx.INodeProto, i: number): Origin {
  return { name: n.name || n.output?.[0] || `#${i}`, op: n.domain && n.domain !== 'ai.onnx' ? `${n.domain}.${n.opType}` : (n.opType ?? '') }
}

/**
 * ONNX ModelProto bytes -> IR graph. Large float32 weights keep reading from `bytes` until first used
 * as float64 (see deferredFloat32), so the caller must not modify `bytes` afterwards.
 */
export function importModel(bytes: Uint8Array, opts: ImportOptions = {}): Graph {
  const file = opts.file ?? 'model'
  const m = decodeModel(bytes, file)
  const opset = defaultOpset(m, file)
  const g = m.graph!
  const nodes = g.node ?? []

  const unsupported = new Map<string, string[]>()
  nodes.forEach((n, i) => {
    const o = originOf(n, i)
    const def = PIC_ONLY_OPS.has(o.op) ? undefined : OPS[o.op]
    const since = def?.since ?? DEFAULT_SINCE
    const key = !def ? o.op || '(empty op type)' : opset < since ? `${o.op} before opset ${since}` : undefined
    if (key) unsupported.set(key, [...(unsupported.get(key) ?? []), o.name])
  })
  if (unsupported.size > 0) {
    const list = [...unsupported].map(([op, names]) => `${op} (${names.length === 1 ? `node '${names[0]}'` : `${names.length} nodes: ${names.slice(0, 3).map((x) => `'${x}'`).join(', ')}${names.length > 3 ? ', ...' : ''}`})`)
    throw new PicError(`${file}: unsupported op${unsupported.size > 1 ? 's' : ''}: ${list.join('; ')}`)
  }
  if ((g.sparseInitializer ?? []).length > 0) throw new PicError(`${file}: sparse initializers are not supported`)

  const b = new GraphBuilder(g.name || 'main', opset, opts.symbols ?? {})
  const external = externalReader(file, opts.baseDir)
  const initNames = new Set<string>()
  for (const t of g.initializer ?? []) {
    const name = t.name ?? ''
    if (!name) throw new PicError(`${file}: an initializer has no name`)
    if (b.has(name)) throw new PicError(`${file}: initializer '${name}' is defined twice`)
    try {
      b.constant(name, tensorFromProto(t, external), { name, op: 'initializer' })
    } catch (e) {
      throw new PicError(`${file}: initializer '${name}': ${(e as Error).message.replace(/^tensor '[^']*':? /, '')}`)
    }
    initNames.add(name)
  }
  for (const v of g.input ?? []) {
    const name = v.name ?? ''
    if (initNames.has(name)) continue
    const vt = valueType(v)
    if (!vt || !vt.dims) throw new PicError(`${file}: graph input '${name}' has no tensor type with a shape`)
    const dtype = dtypeOf(vt.elemType)
    if (!dtype) throw new PicError(`${file}: graph input '${name}' has unsupported element type ${elemTypeName(vt.elemType)}`)
    try {
      b.input(name, dtype, vt.dims)
    } catch (e) {
      throw new PicError(`${file}: graph ${(e as Error).message}`)
    }
  }

  const outputs = (g.output ?? []).map((o) => o.name ?? '')
  const order = orderNodes(nodes, b, file, outputs)
  for (const i of order) addNode(nodes[i], i, b, opset, file)

  for (const o of outputs) if (!b.has(o)) throw new PicError(`${file}: graph output '${o}' is not produced by any node`)
  const graph = b.build(outputs)
  crossCheck(graph, [...(g.valueInfo ?? []), ...(g.output ?? [])], file)
  return graph
}

/** Node indices in topological order; also refuses uses of secondary outputs (Dropout's mask, ...). */
function orderNodes(nodes: onnx.INodeProto[], b: GraphBuilder, file: string, graphOutputs: string[]): number[] {
  const producer = new Map<string, number>()
  const secondary = new Map<string, [number, number]>()
  nodes.forEach((n, i) =>
    (n.output ?? []).forEach((o, k) => {
      if (!o) return
      if (producer.has(o) || b.has(o)) throw nodeError(file, { name: o, op: n.opType ?? '', origin: originOf(n, i) }, `value '${o}' is defined twice`)
      producer.set(o, i)
      if (k > 0) secondary.set(o, [i, k])
    }),
  )
  const used = [...nodes.flatMap((n) => n.input ?? []), ...graphOutputs]
  for (const u of used) {
    const s = secondary.get(u)
    if (!s) continue
    const o = originOf(nodes[s[0]], s[0])
    if (OPS[o.op]?.outputs) continue
    throw nodeError(file, { name: o.name, op: o.op, origin: o }, `output ${s[1]} ('${u}') is used, but PIC supports only the first output of ${o.op}`)
  }
  const ids = nodes.map((_, i) => String(i))
  const edges: [string, string][] = []
  nodes.forEach((n, i) => {
    for (const inp of n.input ?? []) {
      const p = producer.get(inp)
      if (p !== undefined) edges.push([String(p), String(i)])
    }
  })
  try {
    return topoOrder(ids, edges).map(Number)
  } catch (e) {
    if (e instanceof CycleError) {
      const names = e.cycle.map((id) => originOf(nodes[Number(id)], Number(id)))
      throw new PicError(`${file}: the graph has a cycle through ${names.map((o) => `node '${o.name}' (${o.op})`).join(' -> ')}`)
    }
    throw e
  }
}

function addNode(n: onnx.INodeProto, i: number, b: GraphBuilder, opset: number, file: string): void {
  const origin = originOf(n, i)
  const where = { name: origin.name, op: origin.op, origin }
  const outs = n.output ?? []
  // a several-output op may leave its first output unnamed (an RNN's Y when only Y_h is used)
  if (outs.length === 0 || !(OPS[origin.op]?.outputs ? outs.some(Boolean) : outs[0])) throw nodeError(file, where, 'the node has no output')
  const raw = new Map<string, AttrValue>()
  for (const a of n.attribute ?? []) {
    let v: AttrValue | undefined
    try {
      v = attrValue(a)
    } catch (e) {
      throw nodeError(file, where, `attribute '${a.name}': ${(e as Error).message}`)
    }
    if (v === undefined) throw nodeError(file, where, `attribute '${a.name}' has a type PIC does not read (graphs, sparse tensors or type protos)`)
    raw.set(a.name ?? '', v)
  }
  const def = OPS[origin.op]
  try {
    if (origin.op === 'Constant') b.constant(outs[0], def.attrs(new RawAttrs(raw, opset)).value, origin)
    else if (def.outputs) {
      // one IR node per output of a several-output op
      const attrs = def.attrs(new RawAttrs(raw, opset))
      outs.forEach((o, k) => {
        if (o) b.add(origin.op, n.input ?? [], { ...attrs, output: k, outputs: outs.length }, { name: o, origin })
      })
    } else b.add(origin.op, n.input ?? [], def.attrs(new RawAttrs(raw, opset)), { name: outs[0], origin })
  } catch (e) {
    if (e instanceof OpError || e instanceof GraphError) throw nodeError(file, where, e.message)
    throw e
  }
}

function crossCheck(g: Graph, infos: onnx.IValueInfoProto[], file: string): void {
  const byName = new Map(g.nodes.map((n) => [n.name, n]))
  for (const v of infos) {
    const n = byName.get(v.name ?? '')
    const vt = valueType(v)
    if (!n || !vt) continue
    const dt: DType | undefined = dtypeOf(vt.elemType)
    if (vt.elemType !== 0 && dt !== n.type.dtype)
      throw nodeError(file, n, `the model declares '${n.name}' as ${elemTypeName(vt.elemType)} but it computes ${n.type.dtype}`)
    if (!vt.dims) continue
    const bad =
      vt.dims.length !== n.type.shape.length ||
      vt.dims.some((d, i) => (typeof d === 'number' ? d !== n.type.shape[i] : d in g.symbols && g.symbols[d] !== n.type.shape[i]))
    if (bad) throw nodeError(file, n, `the model declares '${n.name}' with shape [${vt.dims.join(', ')}] but it computes [${n.type.shape.join(', ')}]`)
  }
}
