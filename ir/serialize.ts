/**
 * JSON form of a graph that round-trips exactly. Tensors of more than 16 elements go to a binary
 * sidecar (float64 little-endian, 8-byte aligned) and are referenced by offset and length, with a
 * fingerprint (sha256 of dtype, shape and up to 256 evenly spaced values) that catches a sidecar
 * belonging to another graph without hashing hundreds of megabytes; smaller tensors are inlined as
 * arrays. The sidecar comes back as chunks (the tensors' own bytes, no copy) to write in order.
 */
import { createHash } from 'node:crypto'
import type { Graph, Node } from './graph.js'
import { isTensor } from './print.js'
import { sizeOf, type DType, type Tensor } from './tensor.js'

const INLINE = 16
const SAMPLES = 256
const VERSION = 2

export interface TensorRef {
  dtype: DType
  shape: number[]
  data?: number[]
  offset?: number
  length?: number
  fingerprint?: string
}

export interface GraphJSON {
  format: 'pic-ir'
  version: typeof VERSION
  name: string
  opset: number
  symbols: Record<string, number>
  outputs: string[]
  /** Total bytes of the sidecar this graph refers to. */
  sidecarBytes: number
  nodes: { name: string; op: string; inputs: string[]; attrs: unknown; type: { dtype: DType; shape: number[] }; origin?: { name: string; op: string } }[]
}

/** The sidecar as written: byte chunks, concatenated in order. */
export type Sidecar = readonly Uint8Array[]

function fingerprint(t: Tensor): string {
  const h = createHash('sha256').update(`${t.dtype}[${t.shape.join(',')}]`)
  const n = t.data.length
  const step = Math.max(1, Math.floor(n / SAMPLES))
  const picked = new Float64Array(Math.ceil(n / step))
  for (let i = 0, j = 0; i < n; i += step, j++) picked[j] = t.data[i]
  return h.update(new Uint8Array(picked.buffer)).digest('hex').slice(0, 16)
}

/** Graph -> JSON plus the sidecar chunks holding its large tensors. */
export function graphToJSON(g: Graph): { json: GraphJSON; sidecar: Uint8Array[] } {
  const sidecar: Uint8Array[] = []
  let offset = 0
  const enc = (v: unknown): unknown => {
    if (isTensor(v)) {
      if (v.data.length <= INLINE) return { $tensor: { dtype: v.dtype, shape: [...v.shape], data: Array.from(v.data) } }
      const ref: TensorRef = { dtype: v.dtype, shape: [...v.shape], offset, length: v.data.length, fingerprint: fingerprint(v) }
      sidecar.push(new Uint8Array(v.data.buffer, v.data.byteOffset, v.data.byteLength))
      offset += v.data.byteLength
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
  const json: GraphJSON = { format: 'pic-ir', version: VERSION, name: g.name, opset: g.opset, symbols: { ...g.symbols }, outputs: [...g.outputs], sidecarBytes: offset, nodes }
  return { json, sidecar }
}

/** One contiguous, 8-byte aligned buffer from the sidecar chunks (no copy when it already is one). */
function joined(sidecar: Uint8Array | Sidecar): Uint8Array {
  const one = sidecar instanceof Uint8Array ? sidecar : sidecar.length === 1 ? sidecar[0] : undefined
  if (one && one.byteOffset % 8 === 0) return one
  const chunks = one ? [one] : (sidecar as Sidecar)
  const out = new Uint8Array(chunks.reduce((s, c) => s + c.length, 0))
  let at = 0
  for (const c of chunks) {
    out.set(c, at)
    at += c.length
  }
  return out
}

export function graphFromJSON(json: GraphJSON, sidecar: Uint8Array | Sidecar = []): Graph {
  if (json.format !== 'pic-ir' || json.version !== VERSION) throw new Error(`not a PIC IR file (format pic-ir, version ${VERSION})`)
  const bytes = joined(sidecar)
  if (bytes.length !== (json.sidecarBytes ?? 0)) throw new Error(`the sidecar holds ${bytes.length} bytes, the IR refers to ${json.sidecarBytes ?? 0}`)
  const dec = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(dec)
    if (v && typeof v === 'object') {
      const ref = (v as { $tensor?: TensorRef }).$tensor
      if (ref) {
        let data: Float64Array
        if (ref.data) data = Float64Array.from(ref.data)
        else {
          const { offset = 0, length = 0 } = ref
          if (offset % 8 !== 0 || offset + length * 8 > bytes.length || length !== sizeOf(ref.shape)) throw new Error('the sidecar does not hold the tensors the IR refers to')
          data = new Float64Array(bytes.buffer, bytes.byteOffset + offset, length).slice()
        }
        const t: Tensor = { dtype: ref.dtype, shape: ref.shape, data }
        if (ref.fingerprint !== undefined && fingerprint(t) !== ref.fingerprint) throw new Error('a tensor in the sidecar does not match its fingerprint')
        return t
      }
      return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, dec(x)]))
    }
    return v
  }
  const nodes: Node[] = json.nodes.map((n) => ({ name: n.name, op: n.op, inputs: n.inputs, attrs: dec(n.attrs) as Record<string, unknown>, type: n.type, ...(n.origin ? { origin: n.origin } : {}) }))
  return { name: json.name, opset: json.opset, symbols: json.symbols, outputs: json.outputs, nodes }
}
