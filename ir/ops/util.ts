/** Shared helpers for op definitions: broadcasting, axis normalization, output allocation. */
import { OpError } from '../op.js'
import { isFloat, MAX_ELEMENTS, sizeOf, stridesOf, type Tensor, type TensorType } from '../tensor.js'

export function normAxis(axis: number, rank: number): number {
  const a = axis < 0 ? axis + rank : axis
  if (a < 0 || a >= rank) throw new OpError(`axis ${axis} is out of range for rank ${rank}`)
  return a
}

export function checkShape(shape: readonly number[]): number[] {
  for (const d of shape)
    if (!Number.isInteger(d) || d < 0) throw new OpError(`invalid dimension ${d} in shape [${shape.join(', ')}]`)
  if (sizeOf(shape) > MAX_ELEMENTS)
    throw new OpError(`shape [${shape.join(', ')}] has ${sizeOf(shape)} elements, more than the ${MAX_ELEMENTS} a tensor may hold`)
  return [...shape]
}

export function broadcastShapes(shapes: readonly (readonly number[])[]): number[] {
  const rank = Math.max(...shapes.map((s) => s.length))
  const out = new Array<number>(rank).fill(1)
  for (const s of shapes) {
    for (let i = 0; i < s.length; i++) {
      const o = rank - s.length + i
      const d = s[i]
      if (d === out[o] || d === 1) continue
      if (out[o] === 1) out[o] = d
      else throw new OpError(`shapes ${shapes.map((x) => `[${x.join(',')}]`).join(' and ')} do not broadcast`)
    }
  }
  return checkShape(out)
}

/** Strides of `shape` as read by an output of rank `rank` under broadcasting (0 on broadcast dims). */
export function broadcastStrides(shape: readonly number[], outShape: readonly number[]): number[] {
  const rank = outShape.length
  const st = stridesOf(shape)
  const out = new Array<number>(rank).fill(0)
  for (let i = 0; i < shape.length; i++) {
    const o = rank - shape.length + i
    out[o] = shape[i] === 1 && outShape[o] !== 1 ? 0 : st[i]
  }
  return out
}

/** For each output element, the flat index into an input of `shape` under broadcasting. */
export function broadcastIndex(shape: readonly number[], outShape: readonly number[]): Int32Array | null {
  if (shape.length === outShape.length && shape.every((d, i) => d === outShape[i])) return null
  const n = sizeOf(outShape)
  const idx = new Int32Array(n)
  const st = broadcastStrides(shape, outShape)
  const rank = outShape.length
  const counter = new Array<number>(rank).fill(0)
  let flat = 0
  for (let k = 0; k < n; k++) {
    idx[k] = flat
    for (let d = rank - 1; d >= 0; d--) {
      counter[d]++
      flat += st[d]
      if (counter[d] < outShape[d]) break
      flat -= st[d] * outShape[d]
      counter[d] = 0
    }
  }
  return idx
}

/** `t`'s values broadcast to `shape` (which its shape must broadcast to): `t` itself when equal. */
export function broadcastTo(t: Tensor, shape: readonly number[]): Tensor {
  const idx = broadcastIndex(t.shape, shape)
  if (!idx) return t
  const data = new Float64Array(idx.length)
  for (let i = 0; i < idx.length; i++) data[i] = t.data[idx[i]]
  return { dtype: t.dtype, shape: [...shape], data }
}

export function alloc(t: TensorType): Tensor {
  return { dtype: t.dtype, shape: t.shape, data: new Float64Array(sizeOf(t.shape)) }
}

export function withData(t: TensorType, data: Float64Array): Tensor {
  return { dtype: t.dtype, shape: t.shape, data }
}

export function requireFloat(t: TensorType, what = 'input'): void {
  if (!isFloat(t.dtype)) throw new OpError(`${what} must be a float tensor, got ${t.dtype}`)
}
/** Integer list from a constant tensor input (shapes, axes, pads). */
export function intsOf(t: Tensor | undefined, what: string): number[] {
  if (!t) throw new OpError(`${what} must be a compile-time constant`)
  return Array.from(t.data, (v) => {
    if (!Number.isInteger(v)) throw new OpError(`${what} must hold integers`)
    return v
  })
}

/** Step a C-order coordinate `c` to the next element of `shape` (wrapping to zeros after the last). */
export function nextIndex(c: number[], shape: readonly number[]): void {
  for (let d = shape.length - 1; d >= 0; d--) {
    if (++c[d] < shape[d]) return
    c[d] = 0
  }
}

/**
 * GatherElements / ScatterElements addressing: for every element i of `idx`, the offset in a tensor
 * of `shape` of i's coordinate with its `axis` coordinate replaced by idx[i] (negative from the end).
 */
export function elementOffsets(shape: readonly number[], idx: Tensor, axis: number): Int32Array {
  const rank = shape.length
  const st = stridesOf(shape)
  const out = new Int32Array(idx.data.length)
  const c = new Array<number>(rank).fill(0)
  for (let e = 0; e < idx.data.length; e++) {
    let k = idx.data[e]
    if (k < 0) k += shape[axis]
    if (!(k >= 0 && k < shape[axis])) throw new OpError(`index ${idx.data[e]} is out of range for axis ${axis} of size ${shape[axis]}`)
    let off = 0
    for (let d = 0; d < rank; d++) off += (d === axis ? k : c[d]) * st[d]
    out[e] = off
    nextIndex(c, idx.shape)
  }
  return out
}
