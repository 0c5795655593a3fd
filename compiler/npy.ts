/**
 * NumPy .npy files (format versions 1, 2 and 3, C order): float16/32/64, int8/16/32/64,
 * uint8/16/32/64 and bool in either byte order are read and written (little-endian, v1), each as its
 * own dtype; the writer refuses data that does not match the header it writes. uint64 values above
 * 2^53 - 1, which float64 does not hold exactly, are refused both ways. NumPy has no bfloat16, so a
 * bfloat16 tensor is written as float32 ('<f4'), which holds every bfloat16 value exactly (it reads
 * back as float32).
 *
 * Integer dtypes are read as their values (exact below 2^53): an int32 or uint8 array of pixels is a
 * valid model input and is taken as those numbers, the model's float input type notwithstanding.
 * `readFiniteNpy` (every input, calibration and data file of the CLI) also refuses NaN and
 * infinities, naming the first one's flat element, image (axis 0) and index within the image.
 */
import { exactUint64, halfValue, MAX_ELEMENTS, sizeOf, tensor, tensorBytes, type DType, type Tensor } from '../ir/tensor.js'
import { PicError, readUserFile, writeUserFile } from './errors.js'

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]

interface Descr {
  dtype: DType
  bytes: number
  read: (dv: DataView, off: number, le: boolean) => number
}

const DESCRS: Record<string, Descr> = {
  f2: { dtype: 'float16', bytes: 2, read: (dv, o, le) => halfValue(dv.getUint16(o, le)) },
  f4: { dtype: 'float32', bytes: 4, read: (dv, o, le) => dv.getFloat32(o, le) },
  f8: { dtype: 'float64', bytes: 8, read: (dv, o, le) => dv.getFloat64(o, le) },
  i1: { dtype: 'int8', bytes: 1, read: (dv, o) => dv.getInt8(o) },
  i2: { dtype: 'int16', bytes: 2, read: (dv, o, le) => dv.getInt16(o, le) },
  i4: { dtype: 'int32', bytes: 4, read: (dv, o, le) => dv.getInt32(o, le) },
  i8: { dtype: 'int64', bytes: 8, read: (dv, o, le) => Number(dv.getBigInt64(o, le)) },
  u1: { dtype: 'uint8', bytes: 1, read: (dv, o) => dv.getUint8(o) },
  u2: { dtype: 'uint16', bytes: 2, read: (dv, o, le) => dv.getUint16(o, le) },
  u4: { dtype: 'uint32', bytes: 4, read: (dv, o, le) => dv.getUint32(o, le) },
  u8: { dtype: 'uint64', bytes: 8, read: (dv, o, le) => readUint64(dv.getBigUint64(o, le)) },
  b1: { dtype: 'bool', bytes: 1, read: (dv, o) => (dv.getUint8(o) ? 1 : 0) },
}

/** The .npy type code of each dtype (little-endian; one-byte types take '|'). */
const CODE: Record<DType, string> = { float16: '<f2', float32: '<f4', float64: '<f8', int8: '|i1', int16: '<i2', int32: '<i4', int64: '<i8', uint8: '|u1', uint16: '<u2', uint32: '<u4', uint64: '<u8', bfloat16: '<f4', bool: '|b1' }

function readUint64(v: bigint): number {
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) exactUint64(Number(v))
  return Number(v)
}

export function parseNpy(buf: Uint8Array, file = 'array.npy'): Tensor {
  const fail = (why: string) => new PicError(`${file}: ${why}`)
  if (buf.length < 10 || MAGIC.some((b, i) => buf[i] !== b)) throw fail('not a NumPy .npy file')
  const major = buf[6]
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength)
  let headerLen: number
  let start: number
  if (major === 1) {
    headerLen = dv.getUint16(8, true)
    start = 10
  } else if (major === 2 || major === 3) {
    if (buf.length < 12) throw fail('truncated .npy header')
    headerLen = dv.getUint32(8, true)
    start = 12
  } else throw fail(`unsupported .npy format version ${major}`)
  if (start + headerLen > buf.length) throw fail('truncated .npy header')
  const header = Buffer.from(buf.subarray(start, start + headerLen)).toString('latin1')
  const descr = /'descr'\s*:\s*'([<>|=])([a-z]\d+)'/.exec(header)
  const fortran = /'fortran_order'\s*:\s*(True|False)/.exec(header)
  const shapeM = /'shape'\s*:\s*\(([^)]*)\)/.exec(header)
  if (!descr || !fortran || !shapeM) throw fail('malformed .npy header')
  if (fortran[1] === 'True') throw fail('Fortran-order arrays are not supported; save with C order')
  const d = DESCRS[descr[2]]
  if (!d) throw fail(`unsupported dtype '${descr[1]}${descr[2]}' (use a float, integer or bool type up to 64 bits)`)
  const shape = shapeM[1].split(',').map((s) => s.trim()).filter((s) => s.length > 0).map(Number)
  if (shape.some((x) => !Number.isInteger(x) || x < 0)) throw fail('malformed shape in .npy header')
  const n = sizeOf(shape)
  if (n > MAX_ELEMENTS) throw fail(`array of ${n} elements is too large`)
  const off = start + headerLen
  if (buf.length - off < n * d.bytes) throw fail(`truncated: ${n} elements need ${n * d.bytes} bytes, the file has ${buf.length - off}`)
  const le = descr[1] !== '>'
  const data = new Float64Array(n)
  if (d.dtype === 'float32' && le && (buf.byteOffset + off) % 4 === 0) data.set(new Float32Array(buf.buffer, buf.byteOffset + off, n))
  else
    try {
      for (let i = 0; i < n; i++) data[i] = d.read(dv, off + i * d.bytes, le)
    } catch (e) {
      if (e instanceof PicError) throw fail(e.message)
      throw e
    }
  return tensor(d.dtype, shape, data)
}

export function readNpy(file: string): Tensor {
  return parseNpy(readUserFile(file), file)
}

/** Refuse a tensor holding NaN or an infinity: "FILE: element 12 (image 0, index 12) is NaN". */
export function checkFinite(t: Tensor, file: string): Tensor {
  const d = t.data
  for (let i = 0; i < d.length; i++) {
    if (Number.isFinite(d[i])) continue
    const per = t.shape.length > 1 ? d.length / t.shape[0] : 0
    const where = per > 0 ? ` (image ${Math.floor(i / per)}, index ${i % per})` : ''
    throw new PicError(`${file}: element ${i}${where} is ${Number.isNaN(d[i]) ? 'NaN' : d[i] > 0 ? 'infinite (+Infinity)' : 'infinite (-Infinity)'}`)
  }
  return t
}

/** readNpy, then checkFinite: the inputs, calibration and evaluation data the CLI reads. */
export function readFiniteNpy(file: string): Tensor {
  return checkFinite(readNpy(file), file)
}

export function encodeNpy(t: Tensor): Buffer {
  const descr = CODE[t.dtype]
  const n = sizeOf(t.shape)
  if (t.data.length !== n) throw new PicError(`.npy: shape [${t.shape.join(', ')}] holds ${n} elements, the data has ${t.data.length}`)
  const shape = t.shape.length === 1 ? `(${t.shape[0]},)` : `(${t.shape.join(', ')})`
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${shape}, }`
  const total = 10 + header.length + 1
  header += ' '.repeat((64 - (total % 64)) % 64) + '\n'
  const head = Buffer.alloc(10)
  MAGIC.forEach((b, i) => (head[i] = b))
  head[6] = 1
  head[7] = 0
  head.writeUInt16LE(header.length, 8)
  const body = tensorBytes(t.dtype === 'bfloat16' ? { ...t, dtype: 'float32' } : t)
  if (body.length !== n * Number(descr.slice(2))) throw new PicError(`.npy: ${body.length} bytes of data for ${n} elements of ${t.dtype}`)
  return Buffer.concat([head, Buffer.from(header, 'latin1'), body])
}

/** Write a .npy file whole or not at all (errors.ts writeUserFile). */
export function writeNpy(file: string, t: Tensor): void {
  writeUserFile(file, encodeNpy(t))
}
