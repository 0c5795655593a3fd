/**
 * Approximation benchmark on the digits fixtures. For every model and spec: test accuracy of the
 * original and the compiled (CKKS pipeline) model, the chosen degrees, the graph's multiplicative
 * depth, the estimated activation cost (OLA's cost model, depth + non-scalar multiplications) and the
 * compile time. Then, per model with activations to fit, OLA's cost against the cheapest uniform
 * degree (one degree in every layer, each layer fitted as OLA would at that degree: weighted least
 * squares, or per-channel Hermite at low degrees when it flips fewer calibration samples) that
 * reaches (a) OLA's test accuracy and (b) OLA's calibration criterion (joint agreement drop within
 * the budget, with OLA's safety margin).
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
import type { Graph } from '../ir/graph.js'
import { graphDepth } from '../ir/stats.js'
import { sizeOf, type Tensor } from '../ir/tensor.js'
import { hermitePoly, targets, type LayerReport } from '../passes/approximate.js'
import { calibrate } from '../passes/calibrate.js'
import { lowerMaxpool } from '../passes/lower-maxpool.js'
import { argmax, depthMulCost, FAMILY_DEGREES, OLA_DEGREES, OLA_KEEP, olaPoly, Replay, replaceWith } from '../passes/ola.js'
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
const rows: string[][] = [['model', 'spec', 'acc orig', 'acc compiled', 'degrees', 'depth', 'cost', 'ms']]
const olaRows: string[][] = [['model', 'OLA degrees', 'OLA cost', 'OLA acc', 'uniform d (test acc)', 'cost', 'ratio', 'uniform d (calib)', 'cost', 'ratio']]

for (const model of models.length ? models : MODELS) {
  const imported = importModel(readFileSync(path.join(DIGITS, `${model}.onnx`)), { file: `${model}.onnx` })
  const original = runPipeline(imported, common, passContext())
  const testReplay = new Replay(original, testX)
  const acc0 = accuracyOf(testReplay.values.get(testReplay.g.outputs[0])!)
  let ola: { degrees: number[]; cost: number; acc: number } | undefined
  for (const spec of specs.length ? specs : SPECS) {
    const options = { approx: spec }
    const cx = passContext(options, { calib })
    const t0 = performance.now()
    const g = runPipeline(imported, PIPELINES.ckks(options), cx)
    const ms = performance.now() - t0
    const layers = (cx.report.layers as LayerReport[] | undefined) ?? []
    const byName = new Map(g.nodes.map((n) => [n.origin?.name || n.name, n]))
    const cost = layers.reduce((s, l) => s + depthMulCost.activation(l.degree, sizeOf((byName.get(l.name)?.type.shape ?? [1, 1]).slice(1))), 0)
    const acc = accuracyOf(new Replay(g, testX).values.get(g.outputs[0])!)
    const degrees = layers.map((l) => l.degree)
    rows.push([model, spec, pct(acc0), pct(acc), degrees.join('/') || '-', String(graphDepth(g)), String(cost), ms.toFixed(0)])
    if (spec.startsWith('ola') && layers.length) ola = { degrees, cost: (cx.report.ola as { totalCost: number }).totalCost, acc }
  }
  if (!ola) continue
  // uniform degrees with OLA's own fit, for the comparison
  const lowered = runPipeline(original, [lowerMaxpool], passContext({ approx: 'ola' }))
  const acts = targets(lowered, false)
  const stats = calibrate(lowered, calib, { nodes: acts.map((a) => a.node.name) })
  const calReplay = new Replay(lowered, calib)
  const testLowered = new Replay(lowered, testX)
  const allowed = Math.floor(0.01 * calib.shape[0] + 1e-9)
  let byAcc: [number, number] | undefined
  let byCalib: [number, number] | undefined
  for (const d of OLA_DEGREES) {
    // per layer, OLA's fit families at this degree: the one with fewer calibration flips
    const reps = new Map(
      acts.map((a) => {
        const st = stats.get(a.node.name)!
        const fits = [olaPoly(a, st, d), ...(d <= FAMILY_DEGREES ? [hermitePoly(a, st, d)] : [])].map((p) => replaceWith(a, p))
        const flips = fits.map((f) => calReplay.flips(calReplay.run(new Map([[a.node.name, f]])), OLA_KEEP))
        return [a.node.name, fits[flips.indexOf(Math.min(...flips))]]
      }),
    )
    const cost = acts.reduce((s, a) => s + depthMulCost.activation(d, sizeOf(a.node.type.shape.slice(1))), 0)
    if (!byAcc && accuracyOf(testLowered.run(reps)) >= ola.acc) byAcc = [d, cost]
    if (!byCalib && calReplay.flips(calReplay.run(reps), OLA_KEEP) <= allowed) byCalib = [d, cost]
    if (byAcc && byCalib) break
  }
  const cell = (u?: [number, number]) => (u ? [String(u[0]), String(u[1]), (u[1] / ola!.cost).toFixed(2) + 'x'] : ['none', '-', '-'])
  olaRows.push([model, ola.degrees.join('/'), String(ola.cost), pct(ola.acc), ...cell(byAcc), ...cell(byCalib)])
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
      const v = (n.attrs as { value: Tensor }).value
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
      const cx = passContext({ approx: 'ola:0.01' }, { calib })
      const h = runPipeline(g, PIPELINES.ckks(cx.options), cx)
      const [a0, a1] = [base, h].map((m) => accuracyOf(new Replay(m, testX).values.get(m.outputs[0])!))
      perturbedRows.push([model, String(seed), pct(a0), pct(a1), (100 * (a0 - a1)).toFixed(2), (cx.report.layers as LayerReport[]).map((l) => l.degree).join('/')])
    }

process.stdout.write(`${table(rows)}\n\nOLA against the cheapest uniform degree (cost = sum over layers of depth + non-scalar multiplications)\n${table(olaRows)}\n${perturbed ? `\nola:0.01 on perturbed models\n${table(perturbedRows)}\n` : ''}`)
