/**
 * The 32x32 Fashion-MNIST fixtures (test/fixtures/fmnist32, a cut of the shared set): the .onnx files
 * are the ones the manifest names (sha256), the data subsets have the documented shapes, and the
 * interpreter reproduces PyTorch's logits on 8 of the test images (top-1 equal, logits within 1e-3
 * of their scale).
 */
import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { readNpy } from '../compiler/npy.js'
import { importModel } from '../compiler/onnx-import.js'
import { run1 } from '../ir/interpret.js'
import { ROOT } from './helpers.js'

const DIR = path.join(ROOT, 'test/fixtures/fmnist32')
const MODELS = ['resnet20', 'resnet20_senet', 'resnet20_aespa', 'pkn', 'convnext_mini', 'vit_tiny'] as const
const N = 8
const manifest = JSON.parse(readFileSync(path.join(DIR, 'manifest.json'), 'utf8')) as { models: Record<string, { file: string; sha256: string }> }

function argmax(a: ArrayLike<number>, off: number, n: number): number {
  let b = 0
  for (let j = 1; j < n; j++) if (a[off + j] > a[off + b]) b = j
  return b
}

describe('fmnist32 fixtures', () => {
  it('the data subsets have the documented shapes', () => {
    const x = readNpy(path.join(DIR, 'test_x.npy'))
    expect([x.dtype, x.shape]).toEqual(['float32', [32, 1, 32, 32]])
    const y = readNpy(path.join(DIR, 'test_y.npy'))
    expect(y.shape).toEqual([32])
    expect([...y.data].every((v) => Number.isInteger(v) && v >= 0 && v < 10)).toBe(true)
    expect(readNpy(path.join(DIR, 'calib_x.npy')).shape).toEqual([64, 1, 32, 32])
    for (const m of MODELS) expect(readNpy(path.join(DIR, `ref_${m}.npy`)).shape).toEqual([32, 10])
  })

  const x = readNpy(path.join(DIR, 'test_x.npy'))
  const first = { ...x, shape: [N, 1, 32, 32], data: x.data.slice(0, N * 1024) }
  for (const m of MODELS)
    it(`${m}: sha256 matches the manifest; the interpreter matches PyTorch on ${N} images`, () => {
      const bytes = readFileSync(path.join(DIR, `${m}.onnx`))
      expect(manifest.models[m].file).toBe(`${m}.onnx`)
      expect(createHash('sha256').update(bytes).digest('hex')).toBe(manifest.models[m].sha256)
      const g = importModel(bytes, { file: `${m}.onnx` })
      const out = run1(g, first)
      expect(out.shape).toEqual([N, 10])
      const ref = readNpy(path.join(DIR, `ref_${m}.npy`))
      let scale = 0
      let diff = 0
      for (let i = 0; i < N * 10; i++) {
        scale = Math.max(scale, Math.abs(ref.data[i]))
        diff = Math.max(diff, Math.abs(out.data[i] - ref.data[i]))
      }
      expect(diff).toBeLessThanOrEqual(1e-3 * Math.max(1, scale))
      for (let i = 0; i < N; i++) expect(argmax(out.data, i * 10, 10)).toBe(argmax(ref.data, i * 10, 10))
    })
})
