/**
 * Stable text form of a graph, one line per node:
 *   %name : float32[1,8,8,8] = Conv(%x, %w, %b) {group: 1, pads: [1,1,1,1]}
 * Large constants are summarized by shape and a digest, so the text stays small and deterministic.
 */
import { createHash } from 'node:crypto'
import { constantOf, inputDims, type Graph, type Node } from './graph.js'
import { formatType, type Tensor } from './tensor.js'

/** Constants up to this many elements are printed in full. */
const INLINE = 8

export function isTensor(v: unknown): v is Tensor {
  return typeof v === 'object' && v !== null && (v as Tensor).data instanceof Float64Array && Array.isArray((v as Tensor).shape)
}

const digests = new WeakMap<Tensor, string>()

/** sha256 of the float64 little-endian values, first 12 hex digits (once per tensor: --trace prints every pass). */
function tensorDigest(t: Tensor): string {
  let d = digests.get(t)
  if (d === undefined) {
    const h = createHash('sha256')
    h.update(`${t.dtype}[${t.shape.join(',')}]`)
    h.update(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength))
    digests.set(t, (d = h.digest('hex').slice(0, 12)))
  }
  return d
}

function num(v: number): string {
  return Number.isInteger(v) ? String(v) : String(Number(v.toPrecision(6)))
}

export function formatTensor(t: Tensor): string {
  if (t.data.length <= INLINE) return `${t.dtype}[${t.shape.join(',')}]{${Array.from(t.data, num).join(', ')}}`
  return `${t.dtype}[${t.shape.join(',')}]<sha256:${tensorDigest(t)}>`
}

export function formatValue(v: unknown): string {
  if (isTensor(v)) return formatTensor(v)
  if (Array.isArray(v)) return v.length > 16 ? `[${v.slice(0, 16).map(formatValue).join(', ')}, ... ${v.length} items]` : `[${v.map(formatValue).join(', ')}]`
  if (typeof v === 'number') return num(v)
  if (typeof v === 'string') return JSON.stringify(v)
  if (v && typeof v === 'object')
    return `{${Object.entries(v)
      .filter(([, x]) => x !== undefined)
      .map(([k, x]) => `${k}: ${formatValue(x)}`)
      .join(', ')}}`
  return String(v)
}

export function printNode(n: Node): string {
  const head = `%${n.name} : ${formatType(n.type)} = `
  if (n.op === 'Constant') return head + `Constant ${formatTensor(constantOf(n)!)}`
  if (n.op === 'Input') return head + `Input [${inputDims(n).join(', ')}]`
  const attrs = Object.entries(n.attrs).filter(([, v]) => v !== undefined)
  const a = attrs.length ? ` ${formatValue(Object.fromEntries(attrs))}` : ''
  return `${head}${n.op}(${n.inputs.map((i) => (i ? `%${i}` : '_')).join(', ')})${a}`
}

export function printGraph(g: Graph): string {
  const sym = Object.entries(g.symbols)
  const lines = [`graph ${g.name} (opset ${g.opset}${sym.length ? `; ${sym.map(([k, v]) => `${k}=${v}`).join(', ')}` : ''})`]
  for (const n of g.nodes) lines.push('  ' + printNode(n))
  lines.push(`  return ${g.outputs.map((o) => `%${o}`).join(', ')}`)
  return lines.join('\n') + '\n'
}
