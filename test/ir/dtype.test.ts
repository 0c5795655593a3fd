/**
 * Element types as ONNX and NumPy store them: narrow integers wrap and float16 rounds after each op
 * (closed forms below, and NumPy's own bytes for the .npy round trip), and the .npy writer refuses
 * data that does not match the header it would write. bfloat16 against its known bit patterns and
 * ONNX 1.12's Cast test data (which drops the low 16 bits of the float32); uint64 exact below 2^53
 * and refused above, through TensorProto, .npy and an ONNX export round trip.
 */
import { existsSync, readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { encodeNpy, parseNpy } from '../../compiler/npy.js'
import { writeModel } from '../../compiler/onnx-export.js'
import { importModel } from '../../compiler/onnx-import.js'
import { DT, onnx, readTensorPb, tensorFromProto, tensorToProto } from '../../compiler/onnx-tensor.js'
import { GraphBuilder } from '../../ir/builder.js'
import { interpret } from '../../ir/interpret.js'
import { bfloat16Bits, bfloat16Value, castValue, roundHalf, tensor, tensorBytes, type DType } from '../../ir/tensor.js'

const f32 = (bits: number) => new Float32Array(new Uint32Array([bits]).buffer)[0]
const CAST_BF16 = '/usr/share/libonnx-testdata/data/node/test_cast_FLOAT_to_BFLOAT16/test_data_set_0'

describe('dtypes', () => {
  it('narrow integers wrap around as two\'s complement, float16 rounds half to even', () => {
    expect(castValue(300, 'uint8')).toBe(44)
    expect(castValue(-1, 'uint8')).toBe(255)
    expect(castValue(200, 'int8')).toBe(-56)
    expect(castValue(-129, 'int8')).toBe(127)
    expect(castValue(2 ** 31, 'int32')).toBe(-(2 ** 31))
    expect(castValue(-7.9, 'int16')).toBe(-7)
    expect(castValue(2 ** 32 + 5, 'uint32')).toBe(5)
    // 0.1 in half precision is 1638 / 16384; 2049 is halfway between 2048 and 2050 (ties to even: 2048)
    expect(roundHalf(0.1)).toBe(1638 / 16384)
    expect(roundHalf(2049)).toBe(2048)
    expect(roundHalf(2051)).toBe(2052)
    expect(roundHalf(70000)).toBe(Infinity)
    expect(roundHalf(2 ** -25)).toBe(0)
    expect(roundHalf(3 * 2 ** -25)).toBe(2 ** -23)
  })

  it('.npy files keep every dtype, byte for byte as NumPy writes them', () => {
    const cases: [DType, number[], string, number[]][] = [
      ['int8', [-2, 127], '|i1', [0xfe, 0x7f]],
      ['uint16', [1, 65535], '<u2', [1, 0, 0xff, 0xff]],
      ['int32', [-1, 2], '<i4', [0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0]],
      ['uint32', [4294967295], '<u4', [0xff, 0xff, 0xff, 0xff]],
      ['float16', [1, -2], '<f2', [0x00, 0x3c, 0x00, 0xc0]],
      ['uint8', [255, 0], '|u1', [255, 0]],
    ]
    for (const [dtype, values, code, bytes] of cases) {
      const buf = encodeNpy(tensor(dtype, [values.length], values))
      const header = buf.subarray(10, buf.indexOf(0x0a) + 1).toString('latin1')
      expect(header).toContain(`'descr': '${code}'`)
      expect(Array.from(buf.subarray(buf.length - bytes.length))).toEqual(bytes)
      const back = parseNpy(buf)
      expect(back.dtype).toBe(dtype)
      expect(Array.from(back.data)).toEqual(values)
    }
  })

  it('bfloat16 is the top half of a float32: known bit patterns, the low bits dropped as ONNX 1.12 casts', () => {
    expect(bfloat16Bits(1)).toBe(0x3f80)
    expect(bfloat16Bits(-2)).toBe(0xc000)
    expect(bfloat16Bits(Infinity)).toBe(0x7f80)
    expect(bfloat16Bits(NaN)).toBe(0x7fc0)
    expect(bfloat16Value(0x3f80)).toBe(1)
    expect(bfloat16Value(0x4049)).toBe(3.140625)
    expect(bfloat16Value(0xff80)).toBe(-Infinity)
    expect(bfloat16Value(0x0001)).toBe(2 ** -133)
    // the float32 0x3ef5eeb0 is nearer 0x3ef6 but ONNX 1.12's Cast test data expects 0x3ef5
    expect(bfloat16Bits(castValue(f32(0x3ef5eeb0), 'bfloat16'))).toBe(0x3ef5)
    expect(castValue(1 + 2 ** -7, 'bfloat16')).toBe(1 + 2 ** -7)
    expect(castValue(1 + 2 ** -8, 'bfloat16')).toBe(1)
    expect(castValue(-(1 + 3 * 2 ** -9), 'bfloat16')).toBe(-1)
    expect(Array.from(tensorBytes(tensor('bfloat16', [2], [1, -2])))).toEqual([0x80, 0x3f, 0x00, 0xc0])
  })

  it.runIf(existsSync(CAST_BF16))('Cast float32 -> bfloat16 reproduces ONNX\'s test data bit for bit', () => {
    const x = readTensorPb(readFileSync(`${CAST_BF16}/input_0.pb`))
    const want = readTensorPb(readFileSync(`${CAST_BF16}/output_0.pb`), DT.BFLOAT16)
    const b = new GraphBuilder('g', 13)
    b.input('x', 'float32', x.shape)
    b.add('Cast', ['x'], { to: DT.BFLOAT16 }, { name: 'y' })
    const y = interpret(b.build(['y']), [x]).get('y')!
    expect(y.dtype).toBe('bfloat16')
    expect(Array.from(tensorBytes(y))).toEqual(Array.from(tensorBytes(want)))
  })

  it('uint64 holds integers exactly to 2^53 - 1 and refuses the rest', () => {
    expect(castValue(2 ** 53 - 1, 'uint64')).toBe(2 ** 53 - 1)
    expect(castValue(7.9, 'uint64')).toBe(7)
    expect(() => castValue(2 ** 53, 'uint64')).toThrow(/uint64 value 9007199254740992 is not held exactly/)
    expect(() => castValue(-1, 'uint64')).toThrow(/uint64 value -1/)
    const t = tensor('uint64', [3], [0, 5, 2 ** 53 - 1])
    expect(Array.from(tensorBytes(t).subarray(8, 16))).toEqual([5, 0, 0, 0, 0, 0, 0, 0])
    expect(() => tensorBytes(tensor('uint64', [1], [2 ** 60]))).toThrow(/uint64/)
  })

  it('TensorProto round trips uint64 and bfloat16, raw and typed, and refuses uint64 beyond 2^53 - 1', () => {
    for (const t of [tensor('uint64', [3], [0, 5, 2 ** 53 - 1]), tensor('bfloat16', [2, 2], [1, -2.5, 3.140625, -Infinity])]) {
      const back = readTensorPb(onnx.TensorProto.encode(tensorToProto(t, 't')).finish())
      expect(back.dtype).toBe(t.dtype)
      expect(back.shape).toEqual(t.shape)
      expect(Array.from(back.data)).toEqual(Array.from(t.data))
    }
    const typed = (fields: Partial<onnx.ITensorProto>) => tensorFromProto(onnx.TensorProto.decode(onnx.TensorProto.encode(onnx.TensorProto.create({ name: 't', dims: [2], ...fields })).finish()))
    expect(Array.from(typed({ dataType: DT.UINT64, uint64Data: [3, 2 ** 40] }).data)).toEqual([3, 2 ** 40])
    expect(Array.from(typed({ dataType: DT.BFLOAT16, int32Data: [0x3f80, 0xc000] }).data)).toEqual([1, -2])
    const big = new Uint8Array(new BigUint64Array([1n, 2n ** 63n + 1n]).buffer)
    expect(() => typed({ dataType: DT.UINT64, rawData: big })).toThrow(/uint64 value .* is not held exactly/)
    // ONNX 1.12's test data stores bfloat16 as UINT16 bits: read as bfloat16 when the model declares it
    const bits = onnx.TensorProto.encode(onnx.TensorProto.create({ dims: [2], dataType: DT.UINT16, rawData: new Uint8Array([0x80, 0x3f, 0xc0, 0x7f]) })).finish()
    expect(readTensorPb(bits).dtype).toBe('uint16')
    const bf = readTensorPb(bits, DT.BFLOAT16)
    expect(bf.dtype).toBe('bfloat16')
    expect(bf.data[0]).toBe(1)
    expect(bf.data[1]).toBeNaN()
  })

  it('an ONNX export keeps uint64 and bfloat16 values and Casts to and from them', () => {
    const b = new GraphBuilder('g', 13)
    b.input('x', 'float32', [3])
    b.constant('k', tensor('uint64', [3], [1, 2, 2 ** 52]))
    b.add('Cast', ['x'], { to: DT.BFLOAT16 }, { name: 'h' })
    b.add('Cast', ['h'], { to: DT.FLOAT }, { name: 'y' })
    b.add('Cast', ['x'], { to: DT.UINT64 }, { name: 'u' })
    b.add('Add', ['u', 'k'], {}, { name: 'z' })
    const g = importModel(writeModel(b.build(['y', 'z'])), { file: 'written.onnx' })
    const out = interpret(g, [tensor('float32', [3], [f32(0x3ef5eeb0), 2, 7.5])])
    expect(Array.from(out.get('y')!.data)).toEqual([bfloat16Value(0x3ef5), 2, 7.5])
    expect(out.get('z')!.dtype).toBe('uint64')
    expect(Array.from(out.get('z')!.data)).toEqual([1, 4, 2 ** 52 + 7])
    expect(() => interpret(g, [tensor('float32', [3], [-1, 0, 0])])).toThrow(/uint64 value -1/)
  })

  it('.npy keeps uint64 (refusing values beyond 2^53 - 1) and writes bfloat16 as float32', () => {
    const u = encodeNpy(tensor('uint64', [2], [1, 2 ** 53 - 1]))
    expect(u.subarray(10, u.indexOf(0x0a) + 1).toString('latin1')).toContain(`'descr': '<u8'`)
    const back = parseNpy(u)
    expect(back.dtype).toBe('uint64')
    expect(Array.from(back.data)).toEqual([1, 2 ** 53 - 1])
    u.writeBigUInt64LE(2n ** 53n + 1n, u.length - 8)
    expect(() => parseNpy(u, 'big.npy')).toThrow(/big.npy: uint64 value .* is not held exactly/)
    const h = encodeNpy(tensor('bfloat16', [2], [1, -2.5]))
    expect(h.subarray(10, h.indexOf(0x0a) + 1).toString('latin1')).toContain(`'descr': '<f4'`)
    const f = parseNpy(h)
    expect(f.dtype).toBe('float32')
    expect(Array.from(f.data)).toEqual([1, -2.5])
  })

  it('the .npy writer refuses a shape that does not match the data', () => {
    const bad = { dtype: 'float32' as const, shape: [4, 3, 2], data: new Float64Array(12) }
    expect(() => encodeNpy(bad)).toThrow(/shape \[4, 3, 2\] holds 24 elements, the data has 12/)
  })
})
