/**
 * Tensors and tensor types: the values the IR computes with. Every tensor holds its elements as a
 * Float64Array in C order whatever its dtype (integers are exact below 2^53, bools are 0/1; the
 * narrow integers and float16 are computed in float64 and brought back to their range and precision
 * after each op, so they store what ONNX stores); large
 * imported float32 weights make that array on first read (`deferredFloat32`).
 *
 * bfloat16 (1 sign, 8 exponent, 7 fraction bits: the top half of a float32) rounds as ONNX 1.12's
 * Cast and its backend test data do: the float32 value with its low 16 bits dropped (toward zero;
 * NaN stays a quiet NaN), not to nearest. uint64 holds exact integers only: a value outside
 * [0, 2^53 - 1] (or not an integer) is refused with a PicError rather than rounded.
 */
import { PicError } from './errors.js'

export type DType = 'float16' | 'float32' | 'float64' | 'int8' | 'int16' | 'int32' | 'int64' | 'uint8' | 'uint16' | 'uint32' | 'uint64' | 'bfloat16' | 'bool'

/** ONNX's TensorProto element type codes of the dtypes (the ONNX standard's numbering). */
export const ONNX_ELEM_TYPE: Readonly<Record<DType, number>> = { float32: 1, uint8: 2, int8: 3, uint16: 4, int16: 5, int32: 6, int64: 7, bool: 9, float16: 10, float64: 11, uint32: 12, uint64: 13, bfloat16: 16 }

/** The dtype of an ONNX element type code, or undefined when PIC has none (strings, complex, float8, ...). */
export function dtypeOfElemType(code: number): DType | undefined {
  return (Object.keys(ONNX_ELEM_TYPE) as DType[]).find((d) => ONNX_ELEM_TYPE[d] === code)
}

/** Integer dtypes narrower than int64: [bits, signed]. Their values are kept in range by `castValue`. */
const NARROW_INTS: Partial<Record<DType, [number, boolean]>> = { int8: [8, true], int16: [16, true], int32: [32, true], uint8: [8, false], uint16: [16, false], uint32: [32, false] }

export function isInteger(dtype: DType): boolean {
  return dtype === 'int64' || dtype === 'uint64' || NARROW_INTS[dtype] !== undefined
}

/**
 * Dtypes whose values an op's float64 result must be brought back to (integers narrower than 64
 * bits, float16, bfloat16), and uint64, whose results are checked to be exact.
 */
export function isNarrow(dtype: DType): boolean {
  return dtype === 'float16' || dtype === 'bfloat16' || dtype === 'uint64' || NARROW_INTS[dtype] !== undefined
}

const F32 = new Float32Array(1)
const U32 = new Uint32Array(F32.buffer)

/** bfloat16 bits of a value: its float32's top 16 bits (the rest dropped, toward zero); NaN is 0x7fc0. */
export function bfloat16Bits(v: number): number {
  if (Number.isNaN(v)) return 0x7fc0
  F32[0] = v
  return U32[0] >>> 16
}

/** The value of bfloat16 bits. */
export function bfloat16Value(bits: number): number {
  U32[0] = (bits & 0xffff) << 16
  return F32[0]
}

/** The bfloat16 value of v, as ONNX 1.12's Cast makes it (see the header). */
export function roundBfloat16(v: number): number {
  return Number.isNaN(v) ? v : bfloat16Value(bfloat16Bits(v))
}

/** v as a uint64 that float64 holds exactly (truncated toward zero), or a PicError. */
export function exactUint64(v: number): number {
  const t = Math.trunc(v)
  if (!(t >= 0 && t <= Number.MAX_SAFE_INTEGER))
    throw new PicError(`uint64 value ${v} is not held exactly: PIC computes in float64 and keeps uint64 values from 0 to 2^53 - 1`)
  return t
}

/** The nearest float16 value (round half to even; overflow to infinity). */
export function roundHalf(v: number): number {
  if (!Number.isFinite(v) || v === 0) return v
  const a = Math.abs(v)
  if (a >= 65520) return Math.sign(v) * Infinity
  const e = Math.max(Math.floor(Math.log2(a)), -14)
  const q = 2 ** (e - 10)
  let m = a / q
  const f = Math.floor(m)
  const r = m - f
  m = r > 0.5 || (r === 0.5 && f % 2 === 1) ? f + 1 : f
  return Math.sign(v) * m * q
}

/** The value of IEEE half-precision bits. */
export function halfValue(bits: number): number {
  const s = bits & 0x8000 ? -1 : 1
  const e = (bits >> 10) & 0x1f
  const f = bits & 0x3ff
  if (e === 0) return s * f * 2 ** -24
  if (e === 31) return f ? NaN : s * Infinity
  return s * (1 + f / 1024) * 2 ** (e - 15)
}

/** IEEE half-precision bits of a value already rounded to float16. */
function halfBits(v: number): number {
  const s = v < 0 || Object.is(v, -0) ? 0x8000 : 0
  const a = Math.abs(v)
  if (Number.isNaN(v)) return 0x7e00
  if (a === Infinity) return s | 0x7c00
  if (a === 0) return s
  if (a < 2 ** -14) return s | Math.round(a / 2 ** -24)
  const e = Math.floor(Math.log2(a))
  return s | ((e + 15) << 10) | Math.round((a / 2 ** e - 1) * 1024)
}

export interface TensorType {
  readonly dtype: DType
  readonly shape: readonly number[]
}

export interface Tensor extends TensorType {
  readonly data: Float64Array
}

/** Deferred tensors' float32 values, as little-endian bytes (at any alignment). */
const FLOAT32_BYTES = new WeakMap<Tensor, Uint8Array>()

/** Reused buffer for unaligned bytes; taken (undefined) while a `withAligned` runs. */
let scratch: Uint8Array | undefined = new Uint8Array(0)
const SCRATCH_KEEP = 1 << 26

/**
 * Call `f` with `bytes` at a byte offset divisible by `align` (so typed arrays can view them): the
 * bytes themselves when they already are, else a copy in a reused buffer, which `f` must not keep.
 */
export function withAligned<T>(bytes: Uint8Array, align: number, f: (aligned: Uint8Array) => T): T {
  if (bytes.byteOffset % align === 0) return f(bytes)
  let buf = scratch
  scratch = undefined
  if (!buf || buf.length < bytes.length) buf = new Uint8Array(bytes.length)
  try {
    const copy = buf.subarray(0, bytes.length)
    copy.set(bytes)
    return f(copy)
  } finally {
    scratch = buf.length <= SCRATCH_KEEP ? buf : new Uint8Array(0)
  }
}

const float32s = (b: Uint8Array) => new Float32Array(b.buffer, b.byteOffset, b.length / 4)

/**
 * A float32 tensor whose float64 `data` is made from its float32 bytes (little-endian) on first read.
 * The importer uses it for large weights, so a pass that replaces them (fold-batchnorm scaling a
 * Conv's weights) reads the float32 values through `withValues` and never makes the float64 copy of
 * the old weights. `bytes` must not change afterwards.
 */
export function deferredFloat32(shape: readonly number[], bytes: Uint8Array): Tensor {
  if (bytes.length !== 4 * sizeOf(shape)) throw new Error(`tensor of shape [${shape.join(', ')}] needs ${4 * sizeOf(shape)} bytes, got ${bytes.length}`)
  let data: Float64Array | undefined
  const t = { dtype: 'float32', shape: [...shape] } as { dtype: DType; shape: number[]; data: Float64Array }
  Object.defineProperty(t, 'data', {
    enumerable: true,
    get: () => {
      if (!data) {
        data = withAligned(bytes, 4, (b) => new Float64Array(float32s(b)))
        FLOAT32_BYTES.delete(t)
      }
      return data
    },
  })
  FLOAT32_BYTES.set(t, bytes)
  return t
}

/**
 * The tensor's values as little-endian bytes of its own dtype (float32, float64, int64, bfloat16 as
 * its 16 bits, bool as one byte; a uint64 value float64 does not hold exactly is refused), as .npy and ONNX raw_data store them. A deferred tensor gives its stored float32 bytes.
 */
export function tensorBytes(t: Tensor): Uint8Array {
  const stored = FLOAT32_BYTES.get(t)
  if (stored) return stored
  const ints = (A: { from(a: ArrayLike<number>, f: (v: number) => number): { buffer: ArrayBufferLike } }) => new Uint8Array(A.from(t.data, (v) => castValue(v, t.dtype)).buffer)
  switch (t.dtype) {
    case 'float16':
      return new Uint8Array(Uint16Array.from(t.data, (v) => halfBits(roundHalf(v))).buffer)
    case 'float32':
      return new Uint8Array(Float32Array.from(t.data).buffer)
    case 'float64':
      return new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength)
    case 'int64':
      return new Uint8Array(BigInt64Array.from(t.data, (v) => BigInt(Math.trunc(v))).buffer)
    case 'uint64':
      return new Uint8Array(BigUint64Array.from(t.data, (v) => BigInt(exactUint64(v))).buffer)
    case 'bfloat16':
      return new Uint8Array(Uint16Array.from(t.data, bfloat16Bits).buffer)
    case 'int8':
      return ints(Int8Array)
    case 'int16':
      return ints(Int16Array)
    case 'int32':
      return ints(Int32Array)
    case 'uint8':
      return ints(Uint8Array)
    case 'uint16':
      return ints(Uint16Array)
    case 'uint32':
      return ints(Uint32Array)
    case 'bool':
      return Uint8Array.from(t.data, (v) => (v ? 1 : 0))
  }
}

/**
 * Call `f` with a tensor's values: the float32 ones of a deferred tensor not yet read as float64
 * (possibly in a reused buffer, so `f` must not keep them), else `data`.
 */
export function withValues<T>(t: Tensor, f: (values: Float32Array | Float64Array) => T): T {
  const bytes = FLOAT32_BYTES.get(t)
  return bytes ? withAligned(bytes, 4, (b) => f(float32s(b))) : f(t.data)
}

/** Largest elementwise |a - b| (Infinity when the sizes differ). */
export function maxAbsDiff(a: Tensor, b: Tensor): number {
  if (a.data.length !== b.data.length) return Infinity
  let m = 0
  for (let i = 0; i < a.data.length; i++) m = Math.max(m, Math.abs(a.data[i] - b.data[i]))
  return m
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

/** Round a value to the dtype's representable set (float rounding, integer truncation with wrap-around, bool). */
export function castValue(v: number, dtype: DType): number {
  switch (dtype) {
    case 'float16':
      return roundHalf(v)
    case 'float32':
      return Math.fround(v)
    case 'float64':
      return v
    case 'int64':
      return Math.trunc(v)
    case 'uint64':
      return exactUint64(v)
    case 'bfloat16':
      return roundBfloat16(v)
    case 'bool':
      return v !== 0 ? 1 : 0
    default: {
      const [bits, signed] = NARROW_INTS[dtype]!
      if (!Number.isFinite(v)) return 0
      const m = 2 ** bits
      let w = Math.trunc(v) % m
      if (w < 0) w += m
      return signed && w >= m / 2 ? w - m : w
    }
  }
}

export function isFloat(dtype: DType): boolean {
  return dtype === 'float16' || dtype === 'bfloat16' || dtype === 'float32' || dtype === 'float64'
}
