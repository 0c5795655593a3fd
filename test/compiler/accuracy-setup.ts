/**
 * Shared set-up of the --labels tests (accuracy.test.ts, accuracy-query.test.ts): the first N digits
 * test images and their labels (and one label short) in a temporary directory, cnn_square compiled
 * for CKKS there, background processes killed after the file.
 */
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, expect } from 'vitest'
import { encodeNpy, readNpy } from '../../compiler/npy.js'
import type { Tensor } from '../../ir/tensor.js'
import { argmax } from '../../passes/ola.js'
import { pic, ROOT, started } from '../helpers.js'

export const fx = (...p: string[]) => path.join(ROOT, 'test', 'fixtures', ...p)

/** Images whose argmax matches the label, counted here from a written output file. */
export function correct(out: Tensor, y: ArrayLike<number>): number {
  return Array.from(argmax(out)).filter((v, i) => v === y[i]).length
}

export function accuracySetup(prefix: string) {
  const tmp = mkdtempSync(path.join(tmpdir(), prefix))
  const N = 8
  const xs = path.join(tmp, 'x.npy')
  const ys = path.join(tmp, 'labels.npy')
  const short = path.join(tmp, 'labels7.npy')
  const labels = readNpy(fx('digits', 'test_y.npy'))
  const plan = path.join(tmp, 'cnn.json')
  const model = fx('digits', 'cnn_square.onnx')
  beforeAll(() => {
    const x = readNpy(fx('digits', 'test_x.npy'))
    writeFileSync(xs, encodeNpy({ dtype: x.dtype, shape: [N, 1, 8, 8], data: x.data.slice(0, N * 64) }))
    writeFileSync(ys, encodeNpy({ dtype: labels.dtype, shape: [N], data: labels.data.slice(0, N) }))
    writeFileSync(short, encodeNpy({ dtype: labels.dtype, shape: [N - 1], data: labels.data.slice(0, N - 1) }))
    const c = pic('compile', model, '--backend', 'ckks', '-o', plan, '--quiet')
    expect(c.code).toBe(0)
  })
  afterAll(() => {
    for (const c of started) c.kill()
  })
  return { tmp, N, xs, ys, short, labels, plan, model }
}
