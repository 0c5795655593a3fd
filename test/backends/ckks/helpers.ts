/** Shared fixtures for the CKKS backend tests: compiled graphs (the ckks pipeline) and test images. */
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { parseNpy } from '../../../compiler/npy.js'
import { importModel } from '../../../compiler/onnx-import.js'
import type { Graph } from '../../../ir/graph.js'
import { interpret } from '../../../ir/interpret.js'
import type { Tensor } from '../../../ir/tensor.js'
import { approximate } from '../../../passes/approximate.js'
import { passContext, runPipeline } from '../../../passes/pass.js'
import { PIPELINES } from '../../../passes/pipelines.js'

export const FIXTURES = join(import.meta.dirname, '..', '..', 'fixtures')

export const MODELS: Record<string, string> = {
  cnn_square: 'digits',
  aespa_cnn: 'digits',
  pkn_cnn: 'digits',
  cryptonets28: 'digits28',
}

export function rawGraph(name: string, dir = MODELS[name]): Graph {
  return importModel(readFileSync(join(FIXTURES, dir, `${name}.onnx`)), { file: `${name}.onnx` })
}

export function compiledGraph(name: string, options: Record<string, unknown> = {}, dir = MODELS[name]): Graph {
  const calib = options.approx ? parseNpy(readFileSync(join(FIXTURES, dir, 'calib_x.npy'))) : undefined
  const pipe = PIPELINES.ckks(options)
  const passes = options.approx && !pipe.some((p) => p.name === approximate.name) ? [...pipe, approximate] : pipe
  return runPipeline(rawGraph(name, dir), passes, passContext(options, { calib }))
}

/** The first n test images of a fixture folder. */
export function testImages(dir: string, n: number): Tensor {
  const x = parseNpy(readFileSync(join(FIXTURES, dir, 'test_x.npy')))
  const per = x.data.length / x.shape[0]
  return { dtype: x.dtype, shape: [n, ...x.shape.slice(1)], data: x.data.slice(0, n * per) }
}

export function reference(g: Graph, x: Tensor): Tensor {
  return interpret(g, [x]).get(g.outputs[0])!
}

export { maxAbsDiff } from '../../helpers.js'
