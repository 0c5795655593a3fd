/**
 * TensorProto <-> Tensor: every ONNX element type PIC reads (float32, float64, float16, bfloat16,
 * int64, int32, int16, int8, uint64, uint32, uint16, uint8, bool) from raw_data or the typed fields,
 * with lengths checked against the dims before anything is allocated. uint64 values above 2^53 - 1,
 * which float64 does not hold exactly, are refused. Tensors are written back in their own element
 * type (bfloat16 as its 16 bits). Only this module and the importer touch protobuf.
 */
import onnxProto from 'onnx-proto'
import { bfloat16Value, deferredFloat32, dtypeOfElemType, exactUint64, halfValue, MAX_ELEMENTS, ONNX_ELEM_TYPE, sizeOf, tensor, tensorBytes, withAligned, type DType, type Tensor } from '../ir/tensor.js'

export import onnx = onnxProto.onnx

export const DT = onnx.TensorProto.DataType

/** The PIC dtype an ONNX element type is read as, or undefined when unsupported. */
export function dtypeOf(elemType: number): DType | undefined {
  return dtypeOfElemType(elemType)
}

export function elemTypeName(elemType: number): string {
  return (DT as unknown as Record<number, string>)[elemType] ?? `type ${elemType}`
}

type LongLike = number | { toNumber(): number; high: number; low: number }

export function toInt(v: LongLike | null | undefined): number {
  if (v === null || v === undefined) return 0
  if (typeof v === 'number') return v
  const n = v.toNumber()
  if (!Number.isSafeInteger(n)) throw new Error(`integer ${v.toString()} is out of range`)
  return n
}

const BYTES: Record<number, number> = {
  [DT.FLOAT]: 4, [DT.FLOAT16]: 2, [DT.DOUBLE]: 8, [DT.INT64]: 8, [DT.INT32]: 4, [DT.INT16]: 2,
  [DT.INT8]: 1, [DT.UINT8]: 1, [DT.UINT16]: 2, [DT.UINT32]: 4, [DT.UINT64]: 8, [DT.BFLOAT16]: 2, [DT.BOOL]: 1,
}

/** A uint64 as a float64, refused when float64 does not hold it exactly. */
function uint64Of(v: bigint): number {
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) exactUint64(Number(v))
  return Number(v)
}

/** Decode little-endian raw bytes of one element type into float64 values. */
function decodeRaw(elemType: number, raw: Uint8Array, n: number): Float64Array {
  const out = new Float64Array(n)
  switch (elemType) {
    case DT.FLOAT:
      withAligned(raw, 4, (b) => out.set(new Float32Array(b.buffer, b.byteOffset, n)))
      break
    case DT.DOUBLE:
      withAligned(raw, 8, (b) => out.set(new Float64Array(b.buffer, b.byteOffset, n)))
      break
    case DT.INT64:
      withAligned(raw, 8, (b) => {
        const v = new BigInt64Array(b.buffer, b.byteOffset, n)
        for (let i = 0; i < n; i++) out[i] = Number(v[i])
      })
      break
    case DT.UINT64:
      withAligned(raw, 8, (b) => {
        const v = new BigUint64Array(b.buffer, b.byteOffset, n)
        for (let i = 0; i < n; i++) out[i] = uint64Of(v[i])
      })
      break
    default: {
      const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength)
      for (let i = 0; i < n; i++) {
        switch (elemType) {
          case DT.INT32: out[i] = dv.getInt32(4 * i, true); break
          case DT.UINT32: out[i] = dv.getUint32(4 * i, true); break
          case DT.INT16: out[i] = dv.getInt16(2 * i, true); break
          case DT.UINT16: out[i] = dv.getUint16(2 * i, true); break
          case DT.FLOAT16: out[i] = halfValue(dv.getUint16(2 * i, true)); break
          case DT.BFLOAT16: out[i] = bfloat16Value(dv.getUint16(2 * i, true)); break
          case DT.INT8: out[i] = dv.getInt8(i); break
          case DT.UINT8: out[i] = dv.getUint8(i); break
          case DT.BOOL: out[i] = dv.getUint8(i) ? 1 : 0; break
        }
      }
    }
  }
  return out
}

/** float32 raw data of at least this many elements is converted to float64 only when first read. */
const DEFER = 4096

/**
 * Convert a TensorProto. `external` supplies the bytes of externally stored data (the importer
 * resolves and checks the location); it is called only for EXTERNAL tensors.
 */
export function tensorFromProto(t: onnx.ITensorProto, external?: (t: onnx.ITensorProto) => Uint8Array): Tensor {
  const elemType = t.dataType ?? 0
  const dtype = dtypeOf(elemType)
  if (!dtype) throw new Error(`tensor '${t.name ?? ''}' has unsupported element type ${elemTypeName(elemType)}`)
  const dims = (t.dims ?? []).map((d) => {
    const v = typeof d === 'number' ? d : (d as { toNumber(): number }).toNumber()
    if (!Number.isSafeInteger(v) || v > MAX_ELEMENTS) throw new Error(`tensor '${t.name ?? ''}' declares dimension ${String(d)}, more than the ${MAX_ELEMENTS} elements PIC accepts`)
    return v
  })
  if (dims.some((d) => d < 0)) throw new Error(`tensor '${t.name ?? ''}' has a negative dimension`)
  const n = sizeOf(dims)
  if (n > MAX_ELEMENTS) throw new Error(`tensor '${t.name ?? ''}' declares ${n} elements, more than the ${MAX_ELEMENTS} PIC accepts`)
  if (t.segment) throw new Error(`tensor '${t.name ?? ''}' is segmented, which is not supported`)
  let raw: Uint8Array | undefined = t.rawData && t.rawData.length > 0 ? t.rawData : undefined
  if (t.dataLocation === onnx.TensorProto.DataLocation.EXTERNAL) {
    if (!external) throw new Error(`tensor '${t.name ?? ''}' has external data, which cannot be read here`)
    raw = external(t)
  }
  let data: Float64Array
  if (raw) {
    const need = n * BYTES[elemType]
    if (raw.length !== need) throw new Error(`tensor '${t.name ?? ''}' has ${raw.length} bytes of data, expected ${need} for shape [${dims.join(', ')}]`)
    if (elemType === DT.FLOAT && n >= DEFER) return deferredFloat32(dims, raw)
    data = decodeRaw(elemType, raw, n)
  } else {
    let src: ArrayLike<number | LongLike> = []
    switch (elemType) {
      case DT.FLOAT: src = t.floatData ?? []; break
      case DT.DOUBLE: src = t.doubleData ?? []; break
      case DT.INT64: src = (t.int64Data ?? []) as LongLike[]; break
      case DT.UINT32: case DT.UINT64: src = (t.uint64Data ?? []) as LongLike[]; break
      default: src = t.int32Data ?? []
    }
    if (src.length !== n) throw new Error(`tensor '${t.name ?? ''}' has ${src.length} values, expected ${n} for shape [${dims.join(', ')}]`)
    data = new Float64Array(n)
    for (let i = 0; i < n; i++) {
      const v = src[i]
      data[i] =
        elemType === DT.FLOAT16 ? halfValue(v as number)
        : elemType === DT.BFLOAT16 ? bfloat16Value(v as number)
        : elemType === DT.UINT64 ? (typeof v === 'number' ? exactUint64(v) : uint64Of(BigInt(v.toString())))
        : typeof v === 'number' ? v
        : toInt(v)
    }
    if (elemType === DT.BOOL) for (let i = 0; i < n; i++) data[i] = data[i] ? 1 : 0
  }
  return tensor(dtype, dims, data)
}

const PROTO_TYPE = ONNX_ELEM_TYPE

/** A TensorProto with raw_data in the tensor's own dtype. */
export function tensorToProto(t: Tensor, name = ''): onnx.TensorProto {
  return onnx.TensorProto.create({ name, dims: [...t.shape], dataType: PROTO_TYPE[t.dtype], rawData: tensorBytes(t) })
}

export function protoTypeOf(dtype: DType): number {
  return PROTO_TYPE[dtype]
}

/**
 * Read a serialized TensorProto (.pb), as the ONNX conformance cases store inputs and outputs.
 * `declared`, the element type the model declares for the value, reads ONNX 1.12's backend test
 * data, which stores bfloat16 tensors as UINT16 holding the bits: given BFLOAT16, a UINT16 tensor is
 * read as those bfloat16 bits.
 */
export function readTensorPb(bytes: Uint8Array, declared?: number): Tensor {
  const t = onnx.TensorProto.decode(bytes)
  if (declared === DT.BFLOAT16 && t.dataType === DT.UINT16) t.dataType = DT.BFLOAT16
  return tensorFromProto(t)
}
