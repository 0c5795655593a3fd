/**
 * The examples' oracle: the float64 interpreter's predictions for examples/digits_x.npy against
 * examples/digits_y.npy, and the smallest gap between the top two logits (an encrypted or
 * fixed-point run whose logits are off by less than half of it predicts the same classes).
 */
import { readFileSync } from 'node:fs'
import path from 'node:path'
import { importModel, interpret, readNpy } from '../../index.js'
import { ROOT } from '../helpers.js'

export function plainOracle(): { images: number; correct: number; minGap: number } {
  const ex = (f: string) => path.join(ROOT, 'examples', f)
  const g = importModel(readFileSync(ex('cnn_square.onnx')), { file: 'cnn_square.onnx' })
  const x = readNpy(ex('digits_x.npy'))
  const y = readNpy(ex('digits_y.npy'))
  const logits = interpret(g, [x]).get(g.outputs[0])!
  let correct = 0
  let minGap = Infinity
  for (let i = 0; i < x.shape[0]; i++) {
    const row = Array.from(logits.data.subarray(10 * i, 10 * i + 10))
    const best = row.indexOf(Math.max(...row))
    if (best === y.data[i]) correct++
    const sorted = [...row].sort((a, b) => b - a)
    minGap = Math.min(minGap, sorted[0] - sorted[1])
  }
  return { images: x.shape[0], correct, minGap }
}
