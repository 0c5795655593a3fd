/**
 * Tensors and tensor types: the values the IR computes with. Every tensor holds its elements as a
 * Float64Array in C order whatever its dtype (integers are exact below 2^53, bools are 0/1).
 */

export type DType = 'float32' | 'float64' | 'int64' | 'bool'

export interface TensorType {
  readonly dtype: DType
  readonly shape: readonly number[]
}

export interface Tensor extends TensorType {
  readonly data: Float64Array
}

/**
 * Largest element count a single tensor may have: 2^27 elements of 8 bytes is 1 GiB, so a declared
 * shape beyond it is refused before anything is allocated.
 */
export const MAX_ELEMENTS = 2 ** 27

export function sizeOf(shape: readonly number[]): number {
  let n = 1
  for (const d of shape) n *= d
  return n
}

export function stridesOf(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length)
  let acc = 1
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc
    acc *= shape[i]
  }
  return s
}

export function tensor(dtype: DType, shape: readonly number[], data?: Float64Array | ArrayLike<number>): Tensor {
  const n = sizeOf(shape)
  let d: Float64Array
  if (data === undefined) d = new Float64Array(n)
  else if (data instanceof Float64Array) d = data
  else d = Float64Array.from(data)
  if (d.length !== n) throw new Error(`tensor of shape [${shape.join(', ')}] needs ${n} elements, got ${d.length}`)
  return { dtype, shape: [...shape], data: d }
}

export function scalar(value: number, dtype: DType = 'float32'): Tensor {
  return tensor(dtype, [], [value])
}

export function sameType(a: TensorType, b: TensorType): boolean {
  return a.dtype === b.dtype && sameShape(a.shape, b.shape)
}

export function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i])
}

export function formatType(t: TensorType): string {
  return `${t.dtype}[${t.shape.join(',')}]`
}

/** Round a value to the dtype's representable set (float32 rounding, integer truncation, bool). */
export function castValue(v: number, dtype: DType): number {
  switch (dtype) {
    case 'float32':
      return Math.fround(v)
    case 'float64':
      return v
    case 'int64':
      return Math.trunc(v)
    case 'bool':
      return v !== 0 ? 1 : 0
  }
}

export function isFloat(dtype: DType): boolean {
  return dtype === 'float32' || dtype === 'float64'
}
