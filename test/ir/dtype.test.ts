/**
 * Element types as ONNX and NumPy store them: narrow integers wrap and float16 rounds after each op
 * (closed forms below, and NumPy's own bytes for the .npy round trip), and the .npy writer refuses
 * data that does not match the header it would write.
 */
import { describe, expect, it } from 'vitest'
import { encodeNpy, parseNpy } from '../../compiler/npy.js'
import { castValue, roundHalf, tensor, type DType } from '../../ir/tensor.js'

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

  it('the .npy writer refuses a shape that does not match the data', () => {
    const bad = { dtype: 'float32' as const, shape: [4, 3, 2], data: new Float64Array(12) }
    expect(() => encodeNpy(bad)).toThrow(/shape \[4, 3, 2\] holds 24 elements, the data has 12/)
  })
})
