/**
 * JSON form of a graph that round-trips exactly. Tensors of more than 16 elements go to a binary
 * sidecar (float64 little-endian, 8-byte aligned) and are referenced by offset, length and digest;
 * smaller ones are inlined as arrays.
 */
import type { Graph, Node } from './graph.js'
import { isTensor, tensorDigest } from './print.js'
import { sizeOf, type DType, type Tensor } from './tensor.js'

const INLINE = 16

export interface TensorRef {
  dtype: DType
  shape: number[]
  data?: number[]
  offset?: number
  length?: number
  sha256?: string
}

export interface GraphJSON {
  format: 'pic-ir'
  version: 1
  name: string
  opset: number
  symbols: Record<string, number>
  outputs: string[]
  nodes: { name: string; op: string; inputs: string[]; attrs: unknown; type: { dtype: DType; shape: number[] }; origin?: { name: string; op: string } }[]
}

/** Graph -> JSON plus the sidecar bytes holding its large tensors. */
export function graphToJSON(g: Graph): { json: GraphJSON; sidecar: Uint8Array } {
  const chunks: Float64Array[] = []
  let offset = 0
  const enc = (v: unknown): unknown => {
    if (isTensor(v)) {
      if (v.data.length <= INLINE) return { $tensor: { dtype: v.dtype, shape: [...v.shape], data: Array.from(v.data) } }
      const ref: TensorRef = { dtype: v.dtype, shape: [...v.shape], offset, length: v.data.length, sha256: tensorDigest(v) }
      chunks.push(v.data)
      offset += v.data.length * 8
      return { $tensor: ref }
    }
    if (Array.isArray(v)) return v.map(enc)
    if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).filter(([, x]) => x !== undefined).map(([k, x]) => [k, enc(x)]))
    return v
  }
  const nodes = g.nodes.map((n) => ({
    name: n.name,
    op: n.op,
    inputs: [...n.inputs],
    attrs: enc(n.attrs),
    type: { dtype: n.type.dtype, shape: [...n.type.shape] },
    ...(n.origin ? { origin: { name: n.origin.name, op: n.origin.op } } : {}),
  }))
  const sidecar = new Uint8Array(offset)
  let at = 0
  for (const c of chunks) {
    sidecar.set(new Uint8Array(c.buffer, c.byteOffset, c.byteLength), at)
    at += c.byteLength
  }
  return { json: { format: 'pic-ir', version: 1, name: g.name, opset: g.opset, symbols: { ...g.symbols }, outputs: [...g.outputs], nodes }, sidecar }
}

export function graphFromJSON(json: GraphJSON, sidecar: Uint8Array = new Uint8Array(0)): Graph {
  if (json.format !== 'pic-ir' || json.version !== 1) throw new Error('not a PIC IR file (format pic-ir, version 1)')
  const aligned = sidecar.byteOffset % 8 === 0 ? sidecar : new Uint8Array(sidecar)
  const dec = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(dec)
    if (v && typeof v === 'object') {
      const ref = (v as { $tensor?: TensorRef }).$tensor
      if (ref) {
        let data: Float64Array
        if (ref.data) data = Float64Array.from(ref.data)
        else {
          const { offset = 0, length = 0 } = ref
          if (offset + length * 8 > aligned.length || length !== sizeOf(ref.shape)) throw new Error('the sidecar does not hold the tensors the IR refers to')
          data = new Float64Array(aligned.buffer, aligned.byteOffset + offset, length).slice()
        }
        const t: Tensor = { dtype: ref.dtype, shape: ref.shape, data }
        if (ref.sha256 && tensorDigest(t) !== ref.sha256) throw new Error('a tensor in the sidecar does not match its digest')
        return t
      }
      return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, dec(x)]))
    }
    return v
  }
  const nodes: Node[] = json.nodes.map((n) => ({ name: n.name, op: n.op, inputs: n.inputs, attrs: dec(n.attrs) as Record<string, unknown>, type: n.type, ...(n.origin ? { origin: n.origin } : {}) }))
  return { name: json.name, opset: json.opset, symbols: json.symbols, outputs: json.outputs, nodes }
}
