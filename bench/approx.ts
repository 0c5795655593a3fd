/**
 * Approximation benchmark on the digits fixtures. For every model and spec: test accuracy of the
 * original and the compiled (CKKS pipeline) model, the chosen degrees, the graph's multiplicative
 * depth, the estimated activation cost and the compile time. Costs are the CKKS cost model's
 * milliseconds (`ckksOlaCostModel`, from the node-seal op latencies in backends/ckks/op-costs.json),
 * the model `pic compile --backend ckks` gives OLA. Then, per model with activations to fit, OLA's cost
 * against the cheapest uniform degree (one degree in every layer, through the same pipeline) that
 * reaches OLA's test accuracy, for each fit: minimax (Remez over the calibrated range, the uniform
 * baseline OLA's paper compares with), Chebyshev (least squares over the range) and Hermite (AESPA's
 * per-channel fit to the calibrated Gaussian).
 *
 *   npx vite-node bench/approx.ts                        (every fixture, default specs)
 *   npx vite-node bench/approx.ts -- resnet8 ola:0.01    (models and specs to run)
 *   npx vite-node bench/approx.ts -- --perturbed         (also: ola:0.01 on 3 perturbed copies of each
 *                                                         activation model, as models OLA was not tuned on)
 */
import { readFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { readNpy } from '../compiler/npy.js'
import { importModel } from '../compiler/onnx-import.js'
import { constantOf, type Graph } from '../ir/graph.js'
import { graphDepth } from '../ir/stats.js'
import { sizeOf, type Tensor } from '../ir/tensor.js'
import { ckksOlaCostModel } from '../backends/ckks/cost.js'
import type { LayerReport } from '../passes/approximate.js'
import { argmax, OLA_DEGREES, Replay } from '../passes/ola.js'
import { passContext, runPipeline } from '../passes/pass.js'
import { common, PIPELINES } from '../passes/pipelines.js'

const DIGITS = path.join(path.dirname(fileURLToPath(import.meta.url)), '../test/fixtures/digits')
const MODELS = ['mlp_relu', 'cnn_bn_relu_maxpool', 'resnet8', 'cnn_gelu', 'mlp_sigmoid_tanh', 'senet_partial_relu', 'aespa_cnn', 'pkn_cnn', 'cnn_square']
const SPECS = ['hermite:2', 'hermite:4', 'chebyshev:8', 'minimax:8', 'minimax:15', 'ola:0.01']

const argv = process.argv.slice(2).filter((a) => a !== '--')
const perturbed = argv.includes('--perturbed')
const args = argv.filter((a) => a !== '--perturbed')
const models = args.filter((a) => MODELS.includes(a))
const specs = args.filter((a) => !MODELS.includes(a))
const calib = readNpy(path.join(DIGITS, 'calib_x.npy'))
const testX = readNpy(path.join(DIGITS, 'test_x.npy'))
const testY = readNpy(path.join(DIGITS, 'test_y.npy'))

function accuracyOf(out: Tensor): number {
  const a = argmax(out)
  let right = 0
  a.forEach((v, i) => (right += v === testY.data[i] ? 1 : 0))
  return right / a.length
}

const pct = (v: number) => (100 * v).toFixed(2)
const costModel = ckksOlaCostModel()
const UNIFORM = ['minimax', 'chebyshev', 'hermite']
const rows: string[][] = [['model', 'spec', 'acc orig', 'acc compiled', 'degrees', 'depth', 'cost ms', 'compile ms']]
const olaRows: string[][] = [['model', 'OLA degrees', 'OLA cost', 'OLA acc', ...UNIFORM.flatMap((f) => [`${f} d`, 'cost', 'ratio'])]]

/** The CKKS pipeline with `spec`: compiled graph, its layer reports, test accuracy and activation cost. */
function compileWith(imported: Graph, spec: string): { g: Graph; layers: LayerReport[]; acc: number; cost: number; ms: number; olaCost?: number } {
  const options = { approx: spec, costModel }
  const cx = passContext(options, { calib })
  const t0 = performance.now()
  const g = runPipeline(imported, PIPELINES.ckks(options), cx)
  const ms = performance.now() - t0
  const layers = (cx.report.layers as LayerReport[] | undefined) ?? []
  const byName = new Map(g.nodes.map((n) => [n.origin?.name || n.name, n]))
  const cost = layers.reduce((s, l) => s + costModel.activation(l.degree, sizeOf((byName.get(l.name)?.type.shape ?? [1, 1]).slice(1))), 0)
  const acc = accuracyOf(new Replay(g, testX).values.get(g.outputs[0])!)
  return { g, layers, acc, cost, ms, olaCost: (cx.report.ola as { totalCost: number } | undefined)?.totalCost }
}

for (const model of models.length ? models : MODELS) {
  const imported = importModel(readFileSync(path.join(DIGITS, `${model}.onnx`)), { file: `${model}.onnx` })
  const original = runPipeline(imported, common, passContext())
  const testReplay = new Replay(original, testX)
  const acc0 = accuracyOf(testReplay.values.get(testReplay.g.outputs[0])!)
  let ola: { degrees: number[]; cost: number; acc: number } | undefined
  for (const spec of specs.length ? specs : SPECS) {
    const r = compileWith(imported, spec)
    const degrees = r.layers.map((l) => l.degree)
    rows.push([model, spec, pct(acc0), pct(r.acc), degrees.join('/') || '-', String(graphDepth(r.g)), r.cost.toFixed(0), r.ms.toFixed(0)])
    if (spec.startsWith('ola') && r.layers.length) ola = { degrees, cost: r.olaCost ?? r.cost, acc: r.acc }
  }
  if (!ola) continue
  const cells: string[] = []
  for (const family of UNIFORM) {
    let found: { d: number; cost: number } | undefined
    for (const d of OLA_DEGREES) {
      const r = compileWith(imported, `${family}:${d}`)
      if (r.acc >= ola.acc) {
        found = { d, cost: r.cost }
        break
      }
    }
    cells.push(...(found ? [String(found.d), found.cost.toFixed(0), (ola.cost > 0 ? (found.cost / ola.cost).toFixed(2) : 'inf') + 'x'] : ['none', '-', '-']))
  }
  olaRows.push([model, ola.degrees.join('/'), ola.cost.toFixed(0), pct(ola.acc), ...cells])
}

function table(t: string[][]): string {
  const w = t[0].map((_, j) => Math.max(...t.map((r) => r[j].length)))
  return t.map((r) => r.map((c, j) => c.padEnd(w[j])).join('  ')).join('\n')
}

/** The model with every weight matrix scaled by 1 +- 15% and shifted by +- 0.025, elementwise (seeded). */
function perturb(g: Graph, seed: number): Graph {
  let s = seed * 7919
  const rnd = () => (s = (s * 16807) % 2147483647) / 2147483647
  return {
    ...g,
    nodes: g.nodes.map((n) => {
      if (n.op !== 'Constant' || !/weight/.test(n.name) || n.type.shape.length < 2) return n
      const v = constantOf(n)!
      return { ...n, attrs: { value: { ...v, data: v.data.map((w) => Math.fround(w * (1 + 0.3 * (rnd() - 0.5)) + 0.05 * (rnd() - 0.5))) } } }
    }),
  }
}

const perturbedRows: string[][] = [['model', 'seed', 'acc orig', 'acc ola:0.01', 'drop', 'degrees']]
if (perturbed)
  for (const model of (models.length ? models : MODELS).filter((m) => !['aespa_cnn', 'pkn_cnn', 'cnn_square'].includes(m)))
    for (const seed of [1, 2, 3]) {
      const g = perturb(importModel(readFileSync(path.join(DIGITS, `${model}.onnx`)), { file: `${model}.onnx` }), seed)
      const base = runPipeline(g, common, passContext())
      const cx = passContext({ approx: 'ola:0.01', costModel }, { calib })
      const h = runPipeline(g, PIPELINES.ckks(cx.options), cx)
      const [a0, a1] = [base, h].map((m) => accuracyOf(new Replay(m, testX).values.get(m.outputs[0])!))
      perturbedRows.push([model, String(seed), pct(a0), pct(a1), (100 * (a0 - a1)).toFixed(2), (cx.report.layers as LayerReport[]).map((l) => l.degree).join('/')])
    }

process.stdout.write(`${table(rows)}\n\nOLA against the cheapest uniform degree reaching its test accuracy (cost: CKKS cost model, ms per image)\n${table(olaRows)}\n${perturbed ? `\nola:0.01 on perturbed models\n${table(perturbedRows)}\n` : ''}`)
