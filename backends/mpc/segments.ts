/**
 * The server's linear algebra: each segment (a value that is an affine function of sources) becomes
 * a sparse fixed-point matrix and bias, found by probing the float64 reference ops with unit vectors
 * on the sources (so every linear, layout and constant-arithmetic op the IR knows works without a
 * second implementation), then checked for affinity on a random point. Polynomial steps enter through
 * their power sources with the coefficients folded in, so the client never needs them.
 */
import type { Node } from '../../ir/graph.js'
import { OPS } from '../../ir/ops/index.js'
import { sizeOf, type Tensor } from '../../ir/tensor.js'
import type { MpcParams } from './cost.js'
import { encode, type SparseMatrix } from './ring.js'
import { MpcLowerError, type Analysis, type SegmentSpec } from './schedule.js'

export interface SegmentMatrix {
  spec: SegmentSpec
  /** Columns: the segment's sources concatenated in order. */
  m: SparseMatrix
  /** Bias at fracBits + weightFracBits fractional bits. */
  bias: BigUint64Array
}

/** Evaluate `target` from source values (by source id), through affine and public nodes only. */
export function evalSegment(an: Analysis, target: string, values: ReadonlyMap<number, Float64Array>, pub: Map<string, Tensor>): Float64Array {
  const env = new Map<string, Tensor>()
  const value = (name: string): Tensor => {
    const hit = env.get(name) ?? pub.get(name)
    if (hit) return hit
    const n = an.nodes.get(name)!
    const role = an.roles.get(name)
    let v: Tensor
    if (role === 'source' || role === 'gc' || role === 'mul') v = { ...n.type, data: values.get(an.sourcesOf.get(name)![0])! }
    else if (role === 'poly') v = { ...n.type, data: polyValue(an, n, values) }
    else if (role === 'leaky') {
      const r = values.get(an.sourcesOf.get(name)![0])!
      const x = value(n.inputs[0]).data
      const slope = an.leaky.get(name)!
      v = { ...n.type, data: Float64Array.from(r, (ri, i) => (1 - slope[i]) * ri + slope[i] * x[i]) }
    }
    else if (role === 'public') {
      v = evalNode(n, (i) => (an.roles.get(i) === 'public' ? value(i) : { ...an.nodes.get(i)!.type, data: new Float64Array(0) }))
      pub.set(name, v)
      return v
    } else if (role === 'affine') v = evalNode(n, value)
    else throw new MpcLowerError(`internal: segment reaches '${name}' (${role})`)
    env.set(name, v)
    return v
  }
  const out = value(target).data
  if (out.length !== sizeOf(an.nodes.get(target)!.type.shape)) throw new MpcLowerError(`internal: segment '${target}' has the wrong size`)
  return out
}

function evalNode(n: Node, input: (name: string) => Tensor): Tensor {
  const ins = n.inputs.map((i) => (i ? input(i) : (undefined as unknown as Tensor)))
  return OPS[n.op].eval(ins, n.attrs, n.type)
}

function polyValue(an: Analysis, n: Node, values: ReadonlyMap<number, Float64Array>): Float64Array {
  const ids = an.sourcesOf.get(n.name)!
  const x1 = values.get(ids[0])!
  const powers = ids.slice(1).map((id) => values.get(id)!)
  const detail = an.poly.get(n.name)!
  const out = new Float64Array(x1.length)
  let slot = 0
  for (let i = 0; i < x1.length; i++) {
    const c = detail.coeffs(i)
    if (!c) {
      const { shift, scale } = detail.norm(i)
      out[i] = scale * x1[i] + shift
      continue
    }
    let v = c[0] + (c[1] ?? 0) * x1[i]
    for (let k = 2; k < c.length; k++) v += c[k] * powers[k - 2][slot]
    if (powers.length) slot++
    out[i] = v
  }
  return out
}

/** The segment's value, normalized per channel when it feeds a polynomial step. */
function segmentValue(an: Analysis, spec: SegmentSpec, values: ReadonlyMap<number, Float64Array>, pub: Map<string, Tensor>): Float64Array {
  const y = evalSegment(an, spec.node, values, pub)
  if (!spec.normalizedFor) return y
  const d = an.poly.get(spec.normalizedFor)!
  const out = new Float64Array(y.length)
  for (let i = 0; i < y.length; i++) {
    const { shift, scale } = d.norm(i)
    out[i] = (y[i] - shift) / scale
  }
  return out
}

/** Build the fixed-point matrix of one segment by probing. */
export function segmentMatrix(an: Analysis, spec: SegmentSpec, params: MpcParams, pub: Map<string, Tensor>): SegmentMatrix {
  const sizes = spec.sources.map((id) => an.sources[id].size)
  const cols = sizes.reduce((a, b) => a + b, 0)
  const zeros = () => new Map(spec.sources.map((id, j) => [id, new Float64Array(sizes[j])]))
  const unit = zeros()
  // (a segment that is its source itself returns the probe's own array: copy what must outlive a probe)
  const base = Float64Array.from(segmentValue(an, spec, unit, pub))
  const rows = base.length
  // column c of the matrix, kept sparse: the rows where probing with e_c moves the value
  const colRows: Int32Array[] = []
  const colVals: Float64Array[] = []
  spec.sources.forEach((id, j) => {
    const arr = unit.get(id)!
    for (let e = 0; e < sizes[j]; e++) {
      arr[e] = 1
      const y = segmentValue(an, spec, unit, pub)
      const nz: number[] = []
      for (let r = 0; r < rows; r++) if (y[r] !== base[r]) nz.push(r)
      colRows.push(Int32Array.from(nz))
      colVals.push(Float64Array.from(nz, (r) => y[r] - base[r]))
      arr[e] = 0
    }
  })
  const probe = zeros()
  let seed = 12345
  const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31) * 2 - 1
  for (const arr of probe.values()) for (let i = 0; i < arr.length; i++) arr[i] = rnd()
  const yr = segmentValue(an, spec, probe, pub)
  const flat = spec.sources.flatMap((id) => Array.from(probe.get(id)!))
  const acc = Float64Array.from(base)
  for (let c = 0; c < cols; c++) for (let k = 0; k < colRows[c].length; k++) acc[colRows[c][k]] += colVals[c][k] * flat[c]
  for (let r = 0; r < rows; r++)
    if (Math.abs(acc[r] - yr[r]) > 1e-6 * (1 + Math.abs(yr[r])))
      throw new MpcLowerError(`the value '${spec.node}' is not an affine function of its secret inputs`)
  // CSR by transposing the sparse columns (columns visited in order, so each row's stay sorted)
  const scale = 2 ** params.weightFracBits
  const perRow: { c: number; q: bigint }[][] = Array.from({ length: rows }, () => [])
  for (let c = 0; c < cols; c++)
    for (let k = 0; k < colRows[c].length; k++) {
      const v = colVals[c][k]
      const q = Math.round(v * scale)
      if (q === 0) continue
      if (Math.abs(q) > 2 ** 40) throw new MpcLowerError(`weight ${v} in '${spec.node}' is too large for the fixed-point format`)
      perRow[colRows[c][k]].push({ c, q: BigInt(q) })
    }
  const rowPtr = new Int32Array(rows + 1)
  for (let r = 0; r < rows; r++) rowPtr[r + 1] = rowPtr[r] + perRow[r].length
  const entries = perRow.flat()
  const colIdx = Int32Array.from(entries, (e) => e.c)
  const values = BigInt64Array.from(entries, (e) => e.q)
  const bias = new BigUint64Array(rows)
  for (let r = 0; r < rows; r++) bias[r] = encode(base[r], params.fracBits + params.weightFracBits)
  return { spec, m: { rows, cols, rowPtr, colIdx, values }, bias }
}
