/** Deferred float32 tensors: float64 data made on first read, float32 values lent by withValues. */
import { describe, expect, it } from 'vitest'
import { deferredFloat32, tensor, tensorBytes, withValues } from '../../ir/tensor.js'

/** `n` float32 values as little-endian bytes starting at byte `offset` of a larger buffer. */
function bytesAt(values: number[], offset: number): Uint8Array {
  const buf = new Uint8Array(offset + 4 * values.length)
  const dv = new DataView(buf.buffer)
  values.forEach((v, i) => dv.setFloat32(offset + 4 * i, v, true))
  return buf.subarray(offset)
}

const values = Array.from({ length: 24 }, (_, i) => Math.sin(i) * 10 ** (i % 5))
const expected = Array.from(values, Math.fround)

describe('deferred float32 tensors', () => {
  it.each([0, 1, 2, 3])('reads the same values at byte offset %i as float64 data and through withValues', (offset) => {
    const t = deferredFloat32([2, 3, 4], bytesAt(values, offset))
    expect(t.dtype).toBe('float32')
    expect(withValues(t, (v) => (expect(v).toBeInstanceOf(Float32Array), Array.from(v)))).toEqual(expected)
    expect(Array.from(t.data)).toEqual(expected)
    expect(t.data).toBeInstanceOf(Float64Array)
    expect(t.data).toBe(t.data)
    expect(withValues(t, (v) => v)).toBe(t.data)
    expect({ ...t }.data).toBe(t.data)
  })

  it('gives nested withValues calls their own buffers', () => {
    const a = deferredFloat32([24], bytesAt(values, 1))
    const b = deferredFloat32([24], bytesAt(values.map((v) => -v), 3))
    const sums = withValues(a, (va) => withValues(b, (vb) => Array.from(va, (x, i) => x + vb[i])))
    expect(sums).toEqual(expected.map(() => 0))
  })

  it('gives its stored bytes to writers without making the float64 copy', () => {
    const bytes = bytesAt(values, 2)
    const t = deferredFloat32([24], bytes)
    expect(tensorBytes(t)).toBe(bytes)
    expect(withValues(t, (v) => v instanceof Float32Array)).toBe(true)
    const eager = tensorBytes(tensor('float32', [24], values))
    expect(Array.from(new Float32Array(eager.buffer, eager.byteOffset, 24))).toEqual(expected)
  })

  it('refuses bytes that do not fit the shape', () => {
    expect(() => deferredFloat32([5], new Uint8Array(16))).toThrow('tensor of shape [5] needs 20 bytes, got 16')
  })
})
